"""The bench's sections: what each measures, on whom, and how one measurement is made.

A section splits its work into *groups*; one group on one contestant is one
fresh server (or worker) process, which then serves that group's *cells*
one after another.  A round visits every group of every section on every
contestant once.  Each cell gives one sample of one number per contestant
(with p50/p99 latency beside it where a load generator measured them).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import loadgen
from .contestants import C_EPOLL, Contestant
from .loadgen import BenchError, Tools

PROCESS_START_S = 0.3  # a Python worker's start-up, for the time estimate

# Whom a section's ratios are measured against, unless it says otherwise.
REFERENCES = ("asyncio", "uvloop", "rloop")


@dataclass
class Config:
    rounds: int = 5
    # Measured seconds per echo/http/scaling cell, and per micro-benchmark.
    # A shared VM's speed swings by up to 1.6x from one fraction of a second
    # to the next (other tenants); a window of a second averages over those
    # swings, where a quarter-second one lands on one of them.
    duration: float = 1.0
    warmup: float = 0.2  # load before the measured window, per cell
    micro_seconds: float = 1.0
    micro_only: tuple[str, ...] = ()
    echo_kinds: tuple[str, ...] = ("protocol", "buffered", "streams", "sock")
    echo_sizes: tuple[int, ...] = (1024, 10 * 1024, 100 * 1024)
    echo_conns: tuple[int, ...] = (10, 100)
    http_conns: tuple[int, ...] = (10, 100)
    http_client: str = "auto"  # auto (wrk if installed), wrk, loadgen
    scaling_conns: tuple[int, ...] = (10, 1_000, 10_000)
    scaling_size: int = 1024
    memory_conns: int = 10_000
    memory_kinds: tuple[str, ...] = ("protocol", "streams")
    sim_seeds: int = 3  # seeds per simulation workload per round
    # The Python the sim section runs under (simloop, simloom and seedloop
    # need 3.12+): None for the bench's own if it is 3.12+, else .venv-3.12's.
    sim_python: str | None = None
    out: Path = Path("bench-results")


@dataclass
class Measurement:
    section: str
    case: str
    contestant: str
    value: float
    extras: dict[str, float] = field(default_factory=dict)


@dataclass
class Context:
    cfg: Config
    tools: Tools
    warn: Callable[[str], None]
    seen_loops: dict[str, str] = field(default_factory=dict)  # contestant -> what ran

    def python_cmd(self, worker: str, contestant: Contestant, *args: str) -> list[str]:
        assert contestant.loop is not None
        return [sys.executable, "-m", f"tidal.bench.{worker}", "--loop", contestant.loop, *args]

    def server_cmd(self, worker: str, contestant: Contestant, *args: str) -> list[str]:
        if contestant.is_python:
            return self.python_cmd(worker, contestant, *args)
        assert contestant.command is not None
        exe = self.tools.get(contestant.command)
        if exe is None:
            raise BenchError(f"{contestant.command} is not built")
        return [str(exe)]

    def load(
        self, server: loadgen.Server, *, conns: int, size: int, duration: float, mode: str = "echo"
    ) -> dict[str, Any]:
        """One C load generator run against `server` (its CPU time read too):
        the generator's JSON, its rate as the measurement's value."""
        r = loadgen.run_loadgen(
            self.tools,
            server.port,
            conns=conns,
            size=size,
            warmup=self.cfg.warmup,
            duration=duration,
            mode=mode,
            cpu_pid=server.proc.pid,
        )
        return {**r, "value": r["msgs_per_s"]}

    def check_server(self, where: str, contestant: Contestant, server: loadgen.Server) -> None:
        """A server that logged or hit its exception handler was not just echoing: say so."""
        if server.done.get("loop"):
            self.seen_loops[contestant.name] = server.done["loop"]
        if server.stderr or server.done.get("errors"):
            said = server.stderr[:1500] or f"DONE {server.done}"
            self.warn(f"{where} on {contestant.name}: {said}")


def size_label(size: int) -> str:
    return f"{size // 1024} KiB" if size >= 1024 and size % 1024 == 0 else f"{size} B"


class Section:
    name = ""
    title = ""
    unit = ""
    higher_is_better = True
    latency = False  # cells carry p50/p99 latency
    rounds = 0  # measured in this many rounds at most (0: every round)
    in_quick = True  # part of a --quick run unless --only names it
    references: tuple[str, ...] = REFERENCES  # ratios: median / each one's median

    def groups(self, cfg: Config) -> list[str]:
        return ["all"]

    def cells(self, cfg: Config, group: str) -> list[Any]:
        raise NotImplementedError

    def case(self, group: str, cell: Any) -> str:
        raise NotImplementedError

    def cases(self, cfg: Config) -> list[str]:
        return [self.case(g, c) for g in self.groups(cfg) for c in self.cells(cfg, g)]

    def contestants(self, group: str, pool: list[Contestant]) -> list[Contestant]:
        return [c for c in pool if c.is_python]

    def unavailable(self, cfg: Config, tools: Tools) -> str | None:
        return None

    def plan(self, cfg: Config, tools: Tools) -> str:
        raise NotImplementedError

    def seconds_per_round(self, cfg: Config, tools: Tools, pool: list[Contestant]) -> float:
        total = 0.0
        for group in self.groups(cfg):
            for contestant in self.contestants(group, pool):
                total += PROCESS_START_S if contestant.is_python else 0.02
                total += sum(self.cell_seconds(cfg, tools, c) for c in self.cells(cfg, group))
        return total

    def cell_seconds(self, cfg: Config, tools: Tools, cell: Any) -> float:
        return cfg.warmup + cfg.duration + 0.05

    def run(self, ctx: Context, group: str, contestant: Contestant) -> list[Measurement]:
        raise NotImplementedError

    def measure(
        self,
        ctx: Context,
        contestant: Contestant,
        group: str,
        cell: Any,
        fn: Callable[[], dict[str, Any]],
    ) -> Measurement | None:
        """One cell: a Measurement, or a warning and None if it could not be made."""
        try:
            r = fn()
        except BenchError as e:
            ctx.warn(f"{self.name} / {self.case(group, cell)} on {contestant.name}: {e}")
            return None
        extras: dict[str, float] = {k: r[k] for k in ("p50_us", "p99_us", "cpu_us") if k in r}
        return Measurement(self.name, self.case(group, cell), contestant.name, r["value"], extras)


# ---------------------------------------------------------------------------


class Micro(Section):
    """Each benchmark is a group of its own: one process per benchmark and
    contestant, the contestants taking turns benchmark by benchmark.  A slow
    spell of a shared machine (seconds long: other tenants) then falls on one
    benchmark of one contestant, not on all six benchmarks of one contestant
    (with the six in one process, six seconds in a row, one seven-round run
    of this bench had tidal's timers at 1.23M-2.54M/s from round to round)."""

    name = "micro"
    title = "scheduler micro-benchmarks"
    unit = "ops/s"

    def _ids(self, cfg: Config) -> list[str]:
        from .micro import BENCHMARKS

        return list(cfg.micro_only or BENCHMARKS)

    def groups(self, cfg: Config) -> list[str]:
        return self._ids(cfg)

    def cells(self, cfg: Config, group: str) -> list[Any]:
        return [group]

    def case(self, group: str, cell: Any) -> str:
        from .micro import BENCHMARKS

        return BENCHMARKS[cell][0]

    def plan(self, cfg: Config, tools: Tools) -> str:
        return f"{len(self._ids(cfg))} benchmarks, {cfg.micro_seconds:g} s each, in ops/s"

    def cell_seconds(self, cfg: Config, tools: Tools, cell: Any) -> float:
        return cfg.micro_seconds + min(0.1, cfg.micro_seconds / 2) + 0.02

    def run(self, ctx: Context, group: str, contestant: Contestant) -> list[Measurement]:
        ids = self.cells(ctx.cfg, group)
        cmd = ctx.python_cmd(
            "micro", contestant, "--seconds", str(ctx.cfg.micro_seconds), "--only", ",".join(ids)
        )
        timeout = 60 + len(ids) * ctx.cfg.micro_seconds * 4
        try:
            proc = subprocess.run(
                cmd,
                check=False,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=contestant.environ(),
            )
        except subprocess.TimeoutExpired:
            ctx.warn(f"micro on {contestant.name}: timed out after {timeout:.0f} s")
            return []
        if proc.returncode != 0 or proc.stderr.strip():
            ctx.warn(f"micro on {contestant.name}: {proc.stderr.strip()[-1500:]}")
        if proc.returncode != 0:
            return []
        data = json.loads(proc.stdout.strip().splitlines()[-1])
        ctx.seen_loops[contestant.name] = data["loop"]
        return [
            Measurement(self.name, self.case(group, i), contestant.name, data["results"][i])
            for i in ids
        ]


class Instructions(Micro):
    """The micro-benchmarks again, counted in instructions instead of timed.

    callgrind counts the instructions a process executes: the same program on
    the same input gives the same count, whatever else the machine does, so
    this is the line a shared, noisy machine cannot move.  Per benchmark and
    contestant, the worker runs a warm-up batch then 2, and then 10, batches
    under valgrind; the difference of the two totals over the operations of
    the extra batches is what one operation costs, start-up and warm-up
    cancelled out.  User space only: time in the kernel is not counted.
    Measured in the first round only: a single-threaded benchmark's count
    moves by well under 1% from one run to the next (where the cyclic GC's
    collections fall, string hashes).  call_soon_threadsafe runs two
    threads, and how they take turns with the GIL follows the real time of
    the wake-ups even under valgrind (tidal's count: 2,896 to 3,254 per
    callback over six runs): it is counted REPEATS times, each a sample.
    """

    name = "instructions"
    title = "the micro-benchmarks in CPU instructions per operation (callgrind)"
    unit = "instr/op"
    higher_is_better = False
    rounds = 1
    in_quick = False
    # Eight batches between the two runs: enough that where the cyclic GC's
    # collections happen to fall hardly moves the figure.
    BATCHES = (2, 10)
    VALGRIND_SECONDS = 12.0  # per valgrind run of the worker, for the estimate
    REPEATS = {"threadsafe": 3}  # samples of a benchmark whose count varies (else 1)

    def unavailable(self, cfg: Config, tools: Tools) -> str | None:
        return None if shutil.which("valgrind") else "valgrind is not installed"

    def plan(self, cfg: Config, tools: Tools) -> str:
        return (
            f"{len(self._ids(cfg))} micro-benchmarks under callgrind, "
            f"{' and '.join(map(str, self.BATCHES))} batches, in the first round only"
            + "".join(f" ({b}: {n} times)" for b, n in self.REPEATS.items() if b in self._ids(cfg))
        )

    def cell_seconds(self, cfg: Config, tools: Tools, cell: Any) -> float:
        return self.VALGRIND_SECONDS * self.REPEATS.get(cell, 1)  # the two runs go side by side

    def _count(self, ctx: Context, contestant: Contestant, bench: str, n: int) -> tuple[int, float]:
        cmd = [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            *ctx.python_cmd("micro", contestant, "--only", bench, "--batches", str(n)),
        ]
        proc = subprocess.run(
            cmd, check=False, capture_output=True, text=True, timeout=600, env=contestant.environ()
        )
        found = re.search(r"Collected : (\d+)", proc.stderr)
        if proc.returncode != 0 or not found:
            raise BenchError(f"callgrind run failed: {proc.stderr.strip()[-800:]}")
        data = json.loads(proc.stdout.strip().splitlines()[-1])
        ctx.seen_loops[contestant.name] = data["loop"]
        if data["errors"]:
            raise BenchError(f"{data['errors']} call(s) to the exception handler")
        return int(found.group(1)), float(data["results"][bench])

    def run(self, ctx: Context, group: str, contestant: Contestant) -> list[Measurement]:
        out: list[Measurement] = []
        for bench in self.cells(ctx.cfg, group):

            def one(bench: str = bench) -> dict[str, Any]:
                with ThreadPoolExecutor(len(self.BATCHES)) as pool:
                    (i1, ops1), (i2, ops2) = pool.map(
                        lambda n: self._count(ctx, contestant, bench, n), self.BATCHES
                    )
                return {"value": (i2 - i1) / (ops2 - ops1)}

            for _ in range(self.REPEATS.get(bench, 1)):
                m = self.measure(ctx, contestant, group, bench, one)
                if m:
                    out.append(m)
        return out


class Echo(Section):
    name = "echo"
    title = "TCP echo on loopback, C load generator, messages/s"
    unit = "msg/s"
    latency = True

    def groups(self, cfg: Config) -> list[str]:
        return list(cfg.echo_kinds)

    def cells(self, cfg: Config, group: str) -> list[Any]:
        return [(size, conns) for size in cfg.echo_sizes for conns in cfg.echo_conns]

    def case(self, group: str, cell: Any) -> str:
        size, conns = cell
        return f"{group} {size_label(size)} x{conns}"

    def contestants(self, group: str, pool: list[Contestant]) -> list[Contestant]:
        # The C reference line is a Protocol-style server: it sits with those.
        return [c for c in pool if c.is_python or (group == "protocol" and c == C_EPOLL)]

    def unavailable(self, cfg: Config, tools: Tools) -> str | None:
        return None if tools.get("loadgen") else "the C load generator could not be built"

    def plan(self, cfg: Config, tools: Tools) -> str:
        return (
            f"servers {'/'.join(cfg.echo_kinds)} x sizes "
            f"{'/'.join(size_label(s) for s in cfg.echo_sizes)} x "
            f"{'/'.join(map(str, cfg.echo_conns))} connections; {cfg.duration:g} s per cell "
            f"after {cfg.warmup:g} s warm-up; C epoll server as the reference"
        )

    def max_seconds(self, cfg: Config, cells: int) -> float:
        return 120 + cells * (cfg.warmup + cfg.duration + 60)

    def run(self, ctx: Context, group: str, contestant: Contestant) -> list[Measurement]:
        cfg = ctx.cfg
        cells = self.cells(cfg, group)
        out: list[Measurement] = []
        cmd = ctx.server_cmd("echo", contestant, "--kind", group)
        with loadgen.server_process(
            cmd, contestant.environ(), self.max_seconds(cfg, len(cells))
        ) as server:
            for size, conns in cells:

                def one(size: int = size, conns: int = conns) -> dict[str, Any]:
                    return ctx.load(server, conns=conns, size=size, duration=cfg.duration)

                m = self.measure(ctx, contestant, group, (size, conns), one)
                if m:
                    out.append(m)
        ctx.check_server(f"echo {group} server", contestant, server)
        return out


class Tracing(Echo):
    """What tracing costs: tidal's echo servers with tidal.trace off, as a
    flight recorder, and keeping everything, side by side in each round.

    One group per mode (a server process runs in one mode); the cells are
    the echo section's smallest, where the loop's own work per message is
    the largest share.  After the table, the bench prints each mode's
    throughput over the same round's "off" (report.trace_costs).
    """

    name = "tracing"
    title = "the cost of tidal.trace: echo throughput, tracing off / flight recorder / full trace"
    MODES = {"off": "tracing off", "flight": "flight recorder", "full": "full trace"}
    KINDS = ("protocol", "streams")

    def groups(self, cfg: Config) -> list[str]:
        return list(self.MODES)

    def cells(self, cfg: Config, group: str) -> list[Any]:
        return [(kind, 1024, 10) for kind in self.KINDS if kind in cfg.echo_kinds]

    def case(self, group: str, cell: Any) -> str:
        kind, size, conns = cell
        return f"{kind} {size_label(size)} x{conns}, {self.MODES[group]}"

    def contestants(self, group: str, pool: list[Contestant]) -> list[Contestant]:
        return [c for c in pool if c.name == "tidal"]

    def plan(self, cfg: Config, tools: Tools) -> str:
        kinds = "/".join(k for k in self.KINDS if k in cfg.echo_kinds)
        return (
            f"tidal's {kinds} echo servers, 1 KiB x10, with tidal.trace off / a flight "
            f"recorder / everything kept; {cfg.duration:g} s per cell"
        )

    def run(self, ctx: Context, group: str, contestant: Contestant) -> list[Measurement]:
        cfg = ctx.cfg
        out: list[Measurement] = []
        for cell in self.cells(cfg, group):
            kind, size, conns = cell
            cmd = ctx.server_cmd("echo", contestant, "--kind", kind, "--trace", group)
            with loadgen.server_process(cmd, contestant.environ(), self.max_seconds(cfg, 1)) as server:

                def one(size: int = size, conns: int = conns) -> dict[str, Any]:
                    return ctx.load(server, conns=conns, size=size, duration=cfg.duration)

                m = self.measure(ctx, contestant, group, cell, one)
                if m:
                    out.append(m)
            ctx.check_server(f"tracing {kind} server ({group})", contestant, server)
        return out


class Http(Section):
    name = "http"
    title = "HTTP/1.1 keep-alive, httptools server, requests/s"
    unit = "req/s"
    latency = True

    def client(self, cfg: Config, tools: Tools) -> str:
        if cfg.http_client == "auto":
            return "wrk" if tools.wrk else "loadgen"
        return cfg.http_client

    def cells(self, cfg: Config, group: str) -> list[Any]:
        return list(cfg.http_conns)

    def case(self, group: str, cell: Any) -> str:
        return f"GET / x{cell}"

    def unavailable(self, cfg: Config, tools: Tools) -> str | None:
        import importlib.util

        if importlib.util.find_spec("httptools") is None:
            return "httptools is not installed (pip install 'tidal[bench]', or make bench)"
        client = self.client(cfg, tools)
        if client == "wrk" and not tools.wrk:
            return "wrk was asked for and is not installed (apt-get install wrk)"
        if client == "loadgen" and not tools.get("loadgen"):
            return "no wrk and the C load generator could not be built"
        return None

    def plan(self, cfg: Config, tools: Tools) -> str:
        client = self.client(cfg, tools)
        if client == "wrk":
            how = f"wrk -t1, {max(1, round(cfg.duration))} s per cell (wrk counts whole seconds)"
        else:
            how = f"the C load generator speaking HTTP/1.1, {cfg.duration:g} s per cell"
            if not tools.wrk:
                how += " (wrk not installed: apt-get install wrk)"
        return f"{'/'.join(map(str, cfg.http_conns))} connections; {how}"

    def cell_seconds(self, cfg: Config, tools: Tools, cell: Any) -> float:
        if self.client(cfg, tools) == "wrk":
            return max(1, round(cfg.duration)) + 0.15
        return super().cell_seconds(cfg, tools, cell)

    def run(self, ctx: Context, group: str, contestant: Contestant) -> list[Measurement]:
        cfg = ctx.cfg
        client = self.client(cfg, ctx.tools)
        out: list[Measurement] = []
        cells = self.cells(cfg, group)
        max_s = 120 + len(cells) * (cfg.duration + 60)
        with loadgen.server_process(
            ctx.python_cmd("http", contestant), contestant.environ(), max_s
        ) as server:
            for conns in cells:

                def one(conns: int = conns) -> dict[str, Any]:
                    if client == "wrk":
                        assert ctx.tools.wrk
                        r = loadgen.run_wrk(
                            ctx.tools.wrk, server.port, conns=conns, duration=cfg.duration
                        )
                        return {**r, "value": r["msgs_per_s"]}
                    return ctx.load(server, conns=conns, size=1, duration=cfg.duration, mode="http")

                m = self.measure(ctx, contestant, group, conns, one)
                if m:
                    out.append(m)
        ctx.check_server("http server", contestant, server)
        return out


class Scaling(Section):
    name = "scaling"
    title = "echo throughput as connections grow (Protocol server), messages/s"
    unit = "msg/s"
    latency = True

    def groups(self, cfg: Config) -> list[str]:
        return ["protocol"]

    def cells(self, cfg: Config, group: str) -> list[Any]:
        return list(cfg.scaling_conns)

    def case(self, group: str, cell: Any) -> str:
        return f"{cell:,} conns"

    def contestants(self, group: str, pool: list[Contestant]) -> list[Contestant]:
        return [c for c in pool if c.is_python or c == C_EPOLL]

    def unavailable(self, cfg: Config, tools: Tools) -> str | None:
        return None if tools.get("loadgen") else "the C load generator could not be built"

    def plan(self, cfg: Config, tools: Tools) -> str:
        return (
            f"{'/'.join(f'{n:,}' for n in cfg.scaling_conns)} connections, "
            f"{size_label(cfg.scaling_size)} messages, {cfg.duration:g} s per cell or 0.2 ms "
            "per connection if longer; RLIMIT_NOFILE raised to the hard limit"
        )

    @staticmethod
    def window(cfg: Config, conns: int) -> float:
        """Measured seconds: long enough that each connection completes several round trips."""
        return max(cfg.duration, conns * 200e-6)

    def cell_seconds(self, cfg: Config, tools: Tools, cell: Any) -> float:
        # Connecting, and the warm-up waiting for every connection's first reply, take time too.
        return cfg.warmup + self.window(cfg, cell) + 0.05 + cell * 250e-6

    def run(self, ctx: Context, group: str, contestant: Contestant) -> list[Measurement]:
        cfg = ctx.cfg
        cells = self.cells(cfg, group)
        out: list[Measurement] = []
        cmd = ctx.server_cmd("echo", contestant, "--kind", group)
        with loadgen.server_process(cmd, contestant.environ(), 120 + len(cells) * 120) as server:
            for conns in cells:

                def one(conns: int = conns) -> dict[str, Any]:
                    return ctx.load(
                        server, conns=conns, size=cfg.scaling_size, duration=self.window(cfg, conns)
                    )

                m = self.measure(ctx, contestant, group, conns, one)
                if m:
                    out.append(m)
        ctx.check_server("scaling server", contestant, server)
        return out


class Memory(Section):
    name = "memory"
    title = "memory per idle connection: server RSS growth / connections"
    unit = "B/conn"
    higher_is_better = False

    def groups(self, cfg: Config) -> list[str]:
        return list(cfg.memory_kinds)

    def cells(self, cfg: Config, group: str) -> list[Any]:
        return [cfg.memory_conns]

    def case(self, group: str, cell: Any) -> str:
        return f"{group}, {cell:,} idle"

    def contestants(self, group: str, pool: list[Contestant]) -> list[Contestant]:
        return [c for c in pool if c.is_python or (group == "protocol" and c == C_EPOLL)]

    def unavailable(self, cfg: Config, tools: Tools) -> str | None:
        if not Path("/proc/self/status").exists():
            return "no /proc/<pid>/status to read VmRSS from"
        return None if tools.get("loadgen") else "the C load generator could not be built"

    def plan(self, cfg: Config, tools: Tools) -> str:
        return (
            f"{'/'.join(cfg.memory_kinds)} servers: VmRSS after {cfg.memory_conns:,} idle "
            "connections (one round trip each) minus before, per connection"
        )

    def cell_seconds(self, cfg: Config, tools: Tools, cell: Any) -> float:
        return 0.6 + cell * 200e-6

    def run(self, ctx: Context, group: str, contestant: Contestant) -> list[Measurement]:
        cfg = ctx.cfg
        conns = cfg.memory_conns
        cmd = ctx.server_cmd("echo", contestant, "--kind", group)
        out: list[Measurement] = []
        with loadgen.server_process(cmd, contestant.environ(), 300) as server:

            def one() -> dict[str, Any]:
                # Warm the server's code paths first, so "before" is a server
                # that has served, and the delta is the connections' alone.
                loadgen.run_loadgen(
                    ctx.tools, server.port, conns=10, size=64, warmup=0.0, duration=0.1
                )
                time.sleep(0.1)
                before = loadgen.rss_bytes(server.proc.pid)
                with loadgen.held_connections(ctx.tools, server.port, conns):
                    time.sleep(0.2)  # let the server finish reacting to the last replies
                    after = loadgen.rss_bytes(server.proc.pid)
                return {"value": (after - before) / conns}

            m = self.measure(ctx, contestant, group, conns, one)
            if m:
                out.append(m)
        ctx.check_server(f"memory {group} server", contestant, server)
        return out


class Sim(Section):
    """tidal.sim beside simloop, simloom and seedloop (PyPI simulators for
    asyncio) on the same workloads: ``tidal.bench.simulation`` run once per
    workload and round, which measures each simulator in a fresh process of
    its own (a warm-up seed, then the round's seeds), the simulators taking
    turns; CPU time per seed.  Its ratios are over tidal.sim's median: a
    simulator at 3.00x takes three times tidal.sim's CPU per seed."""

    name = "sim"
    title = "deterministic simulation, CPU seconds per seed (same workloads, a process each)"
    unit = "s"
    higher_is_better = False
    references = ("tidal.sim",)
    # The workloads (tidal.bench.simulation says which simulators run each:
    # seedloop has no asyncio streams or sockets, so not streams or dht).
    WORKLOADS = {
        "timers": "10,000 tasks x 10 random sleeps",
        "streams": "4 clients x 250 lines echoed over simulated TCP, asyncio streams",
        "messages": "4 clients x 250 messages echoed over simulated datagrams",
        "dht": "20 hosts of the kademlia DHT (PyPI) over simulated UDP",
    }
    # simloom takes ~50 s per seed of timers (51x tidal.sim): left out of the
    # bench's rounds (python -m tidal.bench.simulation measures it).
    WITHOUT = {"timers": ("simloom",)}
    SIMULATORS = ("simloop", "simloom", "seedloop")

    def groups(self, cfg: Config) -> list[str]:
        return list(self.WORKLOADS)

    def cells(self, cfg: Config, group: str) -> list[Any]:
        return [group]

    def case(self, group: str, cell: Any) -> str:
        return f"{group}: {self.WORKLOADS[group]}"

    def contestants(self, group: str, pool: list[Contestant]) -> list[Contestant]:
        # Once per round, under the installed build (the workers' env).
        return [c for c in pool if c.name == "tidal"]

    def python(self, cfg: Config) -> str | None:
        """The interpreter to run the workloads with: 3.12+, or None."""
        if cfg.sim_python:
            return cfg.sim_python
        if sys.version_info >= (3, 12):
            return sys.executable
        venv = Path(".venv-3.12/bin/python")
        return str(venv.absolute()) if venv.exists() else None

    def unavailable(self, cfg: Config, tools: Tools) -> str | None:
        python = self.python(cfg)
        if python is None:
            return (
                "simloop, simloom and seedloop need Python 3.12+, and this bench runs "
                f"{sys.version.split()[0]}: give --sim-python a 3.12+ interpreter with tidal "
                "and them installed (make bench uses .venv-3.12)"
            )
        probe = (
            "import importlib.util, json, tidal; print(json.dumps([n for n in "
            f"{list(self.SIMULATORS)!r} if importlib.util.find_spec(n)]))"
        )
        try:
            proc = subprocess.run(
                [python, "-c", probe], capture_output=True, text=True, check=False, timeout=60
            )
        except OSError as exc:
            return f"cannot run {python}: {exc}"
        if proc.returncode != 0:
            return f"{python} cannot import tidal: {proc.stderr.strip()[-300:]}"
        if not json.loads(proc.stdout):
            return (
                f"none of {', '.join(self.SIMULATORS)} is installed for {python} "
                "(pip install simloop simloom seedloop): nothing to compare tidal.sim with"
            )
        return None

    def plan(self, cfg: Config, tools: Tools) -> str:
        return (
            f"{', '.join(self.WORKLOADS)} on tidal.sim, {', '.join(self.SIMULATORS)} "
            f"(those installed; not simloom on timers, seedloop on messages and timers only), "
            f"{cfg.sim_seeds} seeds each per round, "
            f"under {self.python(cfg)}"
        )

    def cell_seconds(self, cfg: Config, tools: Tools, cell: Any) -> float:
        # All simulators, one seed.
        per_seed = {"timers": 9.0, "streams": 0.6, "messages": 0.6, "dht": 0.5}[cell]
        # A process per simulator (simloop, seedloop and tidal.sim, or two for the DHT).
        return 3 * PROCESS_START_S + per_seed * (cfg.sim_seeds + 1)

    def run(self, ctx: Context, group: str, contestant: Contestant) -> list[Measurement]:
        python = self.python(ctx.cfg)
        assert python is not None
        cmd = [python, "-m", "tidal.bench.simulation", "--json", "--only", group]
        # One fresh process per simulator and round: a warm-up seed, then the round's seeds.
        cmd += ["--seeds", str(ctx.cfg.sim_seeds), "--per-process", str(ctx.cfg.sim_seeds)]
        for name in self.WITHOUT.get(group, ()):
            cmd += ["--without", name]

        def one() -> dict[str, Any]:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, check=False, env=contestant.environ(),
                timeout=1200,
            )  # fmt: skip
            if proc.returncode != 0:
                raise BenchError(f"the simulation bench failed: {proc.stderr.strip()[-800:]}")
            return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]

        try:
            data = one()
        except BenchError as e:
            ctx.warn(f"{self.name} / {group}: {e}")
            return []
        ctx.seen_loops["tidal.sim"] = f"tidal {data['tidal']}, Python {data['python']}" + (
            f"; not installed there: {', '.join(data['missing'])}" if data["missing"] else ""
        )
        out = []
        for name, samples in data["times"].get(group, {}).items():
            label = "tidal.sim" if name == "tidal" else name
            out += [Measurement(self.name, self.case(group, group), label, v) for v in samples]
        return out


SECTIONS: dict[str, Section] = {
    s.name: s
    for s in (Micro(), Instructions(), Echo(), Tracing(), Http(), Scaling(), Memory(), Sim())
}
