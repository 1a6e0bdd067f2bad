"""Simulation speed, side by side: tidal.sim against simloop, simloom and seedloop.

``python -m tidal.bench.simulation [--seeds N]`` runs each workload for N
seeds on every simulator that is installed (the others need Python 3.12+)
and prints the median seconds per seed and each one's ratio to tidal's:

* **timers**: 10,000 tasks, each sleeping ten random virtual delays;
* **dht**: twenty hosts running the kademlia DHT from PyPI (datagram
  endpoints): they join, one stores a value, all look it up (tidal and
  simloop only: seedloop has no datagram endpoints; simloom not tried);
* **streams**: a server and four clients on five hosts, each client sending
  250 lines over TCP and reading each one back (1,000 round trips) with
  asyncio streams (tidal, simloop and simloom: seedloop has no asyncio
  streams or sockets);
* **messages**: the same exchange as datagrams, 250 messages per client each
  awaiting its echo: over UDP (create_datagram_endpoint) on tidal, simloop
  and simloom, through seedloop's own message endpoints there.

The delays and message counts are the same for every simulator (drawn from a
``random.Random`` of the seed, not the simulators' own generators), so each
does the same work.  Each measurement is made in a fresh process, which runs
one seed first, unmeasured (imports, first calls), then the seed it measures
(``--per-process N``: the next N seeds); the simulators take turns, process
by process.  The median CPU time (process time: other processes on a shared
machine do not count) per seed is reported.  Why not one process for all:
a simulator measured after another in the same process runs slower than
alone (see docs/simulation.md, "Measuring"), and not every simulator by as
much, so the ratios would depend on who ran before whom.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import time
from typing import Any, Callable

TASKS = 10_000
SLEEPS = 10
CLIENTS = 4
LINES = 250


# -- timers ------------------------------------------------------------------


def _timer_delays(seed: int) -> list[list[float]]:
    rng = random.Random(seed)
    return [[rng.random() for _ in range(SLEEPS)] for _ in range(TASKS)]


async def _timers(delays: list[list[float]]) -> float:
    async def sleeper(mine: list[float]) -> None:
        for delay in mine:
            await asyncio.sleep(delay)

    await asyncio.gather(*(sleeper(mine) for mine in delays))
    return asyncio.get_running_loop().time()


def timers_tidal(seed: int) -> Any:
    from tidal import sim

    return sim.run(_timers(_timer_delays(seed)), seed=seed)


def timers_simloop(seed: int) -> Any:
    import simloop

    loop = simloop.SimLoop(seed)
    try:
        return loop.run_until_complete(_timers(_timer_delays(seed)))
    finally:
        loop.close()


def timers_simloom(seed: int) -> Any:
    import simloom

    delays = _timer_delays(seed)
    return simloom.run(lambda: _timers(delays), seed=seed, world=False).value


def timers_seedloop(seed: int) -> Any:
    import seedloop

    delays = _timer_delays(seed)

    async def scenario(world: Any) -> None:
        await _timers(delays)

    seedloop.replay(scenario, seed=seed)


# -- streams -------------------------------------------------------------------


async def _echo_server(port: int, listen_host: str | None = None) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            writer.write(line)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, listen_host, port)
    async with server:
        await asyncio.sleep(3600)


async def _echo_client(host: str, port: int, lines: int) -> int:
    await asyncio.sleep(0.01)
    reader, writer = await asyncio.open_connection(host, port)
    total = 0
    for i in range(lines):
        writer.write(b"line %d of the exchange\n" % i)
        total += len(await reader.readline())
    writer.close()
    await writer.wait_closed()
    return total


def streams_tidal(seed: int) -> Any:
    from tidal import sim

    s = sim.Simulation(seed=seed, latency=(0.001, 0.01))
    s.host("server", _echo_server, 7000)
    for i in range(CLIENTS):
        s.host(f"c{i}", _echo_client, "server", 7000, LINES)
    # The server serves forever: the run ends when the clients are done.
    return s.run(until=3000).results


async def _drive_clients(spawn: Callable[[str, Any], Any]) -> list[int]:
    # (simloom's servers listen on their host's name)
    spawn("server", lambda: _echo_server(7000, "server"))
    await asyncio.sleep(0)
    tasks = [spawn(f"c{i}", lambda: _echo_client("server", 7000, LINES)) for i in range(CLIENTS)]
    results = await asyncio.gather(*tasks)
    await asyncio.sleep(1)  # the server's handlers see EOF and finish
    return list(results)


def _on_simloop(seed: int, latency: tuple[float, float], drive: Callable[..., Any]) -> Any:
    """drive(spawn) on a simloop loop: spawn(host name, coroutine function)."""
    import simloop

    loop = simloop.SimLoop(seed)
    loop.net.set_defaults(latency=latency)

    async def main() -> list[int]:
        return await drive(lambda name, make: loop.net.host(name).create_task(make()))  # type: ignore[no-any-return]

    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def streams_simloop(seed: int) -> Any:
    return _on_simloop(seed, (0.001, 0.01), _drive_clients)


def streams_simloom(seed: int) -> Any:
    import simloom

    async def main(world: Any) -> list[int]:
        return await _drive_clients(lambda name, make: world.host(name).spawn(make))

    return simloom.run(main, seed=seed).value


# -- messages ------------------------------------------------------------------
#
# The streams exchange as datagrams: each client sends a message and awaits
# its echo, 250 times.  On the asyncio simulators it is UDP
# (create_datagram_endpoint, no drops or duplicates) with a small protocol
# that hands each datagram to the task awaiting it, shaped as seedloop's
# endpoints are (a deque and a future), so every simulator's tasks take the
# same steps: the server is a task that receives and sends back, as
# seedloop's is.  The latency range is seedloop's (1-20 ms, fixed there).

MESSAGE_LATENCY = (0.001, 0.02)


class _Inbox(asyncio.DatagramProtocol):
    """A datagram endpoint's arrivals, for a task to await one by one."""

    def __init__(self) -> None:
        self.arrived: collections.deque[tuple[bytes, Any]] = collections.deque()
        self.waiter: asyncio.Future[None] | None = None

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.arrived.append((data, addr))
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def recv(self) -> tuple[bytes, Any]:
        while not self.arrived:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        return self.arrived.popleft()


async def _message_server(port: int, listen_host: str = "0.0.0.0") -> None:
    loop = asyncio.get_running_loop()
    transport, inbox = await loop.create_datagram_endpoint(_Inbox, local_addr=(listen_host, port))
    try:
        while True:
            message, sender = await inbox.recv()
            transport.sendto(message, sender)
    finally:
        transport.close()


async def _message_client(host: str, port: int, messages: int) -> int:
    await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    transport, inbox = await loop.create_datagram_endpoint(_Inbox, remote_addr=(host, port))
    total = 0
    for i in range(messages):
        transport.sendto(b"line %d of the exchange\n" % i)
        total += len((await inbox.recv())[0])
    transport.close()
    return total


def messages_tidal(seed: int) -> Any:
    from tidal import sim

    s = sim.Simulation(seed=seed, latency=MESSAGE_LATENCY)
    s.host("server", _message_server, 7000)
    for i in range(CLIENTS):
        s.host(f"c{i}", _message_client, "server", 7000, LINES)
    return s.run(until=3000).results


async def _drive_messages(spawn: Callable[[str, Any], Any]) -> list[int]:
    server = spawn("server", lambda: _message_server(7000, "server"))
    await asyncio.sleep(0)
    tasks = [spawn(f"c{i}", lambda: _message_client("server", 7000, LINES)) for i in range(CLIENTS)]
    results = await asyncio.gather(*tasks)
    server.cancel()
    await asyncio.wait([server])  # (it closes its endpoint)
    return list(results)


def messages_simloop(seed: int) -> Any:
    return _on_simloop(seed, MESSAGE_LATENCY, _drive_messages)


def messages_simloom(seed: int) -> Any:
    import simloom

    async def main(world: Any) -> list[int]:
        world.net.set_latency(*MESSAGE_LATENCY)
        return await _drive_messages(lambda name, make: world.host(name).spawn(make))

    return simloom.run(main, seed=seed).value


def messages_seedloop(seed: int) -> Any:
    """seedloop has no asyncio sockets: its own message endpoints (datagrams
    with its fixed 1-20 ms latency, delivered into a deque and a future)."""
    import seedloop

    async def scenario(world: Any) -> None:
        server = world.net.bind(0)

        async def serve() -> None:
            while True:
                sender, message = await server.recv()
                await server.send(sender, message)

        async def client(address: int) -> int:
            await asyncio.sleep(0.01)
            endpoint = world.net.bind(address)
            total = 0
            for i in range(LINES):
                await endpoint.send(0, b"line %d of the exchange\n" % i)
                total += len((await endpoint.recv())[1])
            return total

        serving = asyncio.ensure_future(serve())
        await asyncio.gather(*(client(i + 1) for i in range(CLIENTS)))
        serving.cancel()

    seedloop.replay(scenario, seed=seed)


# -- a UDP protocol from PyPI: a Kademlia DHT ----------------------------------

DHT_NODES = 20


async def _dht_node(i: int, bootstrap: str | None) -> str | None:
    from kademlia.network import Server

    server = Server()
    await server.listen(8468)
    try:
        if bootstrap is not None:
            await asyncio.sleep(0.1 * i)
            await server.bootstrap([(bootstrap, 8468)])
        await asyncio.sleep(5)
        if i == 3:
            await server.set("answer", "42")
        await asyncio.sleep(5)
        return await server.get("answer")  # type: ignore[no-any-return]
    finally:
        server.stop()


def dht_tidal(seed: int) -> Any:
    from tidal import sim

    s = sim.Simulation(seed=seed, latency=(0.001, 0.02))
    s.host("n0", _dht_node, 0, None)
    for i in range(1, DHT_NODES):
        s.host(f"n{i}", _dht_node, i, s.address("n0"))
    return s.run().results


def dht_simloop(seed: int) -> Any:
    import simloop

    loop = simloop.SimLoop(seed)
    loop.net.set_defaults(latency=(0.001, 0.02))

    async def main() -> list[Any]:
        first = loop.net.host("n0").create_task(_dht_node(0, None))
        address = loop.net.address("n0")
        rest = [
            loop.net.host(f"n{i}").create_task(_dht_node(i, address)) for i in range(1, DHT_NODES)
        ]
        return list(await asyncio.gather(first, *rest))

    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def _quiet_dht_logs() -> None:
    import logging

    for name in ("kademlia", "rpcudp"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


WORKLOADS: dict[str, dict[str, Callable[[int], Any]]] = {
    "timers": {
        "tidal": timers_tidal,
        "simloop": timers_simloop,
        "simloom": timers_simloom,
        "seedloop": timers_seedloop,
    },
    "streams": {
        "tidal": streams_tidal,
        "simloop": streams_simloop,
        "simloom": streams_simloom,
    },
    "messages": {
        "tidal": messages_tidal,
        "simloop": messages_simloop,
        "simloom": messages_simloom,
        "seedloop": messages_seedloop,
    },
    "dht": {"tidal": dht_tidal, "simloop": dht_simloop},
}


def _available(name: str) -> bool:
    if name == "tidal":
        return True
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def measure_here(workload: str, name: str, seeds: list[int], warmup: int) -> list[float]:
    """CPU seconds of each of `seeds` on one simulator, in this process, after
    one unmeasured run of seed `warmup` (imports, first calls)."""
    _quiet_dht_logs()
    run = WORKLOADS[workload][name]
    run(warmup)
    out = []
    for seed in seeds:
        gc.collect()
        t0 = time.process_time()
        run(seed)
        out.append(time.process_time() - t0)
    return out


def _measure_in_child(
    workload: str, name: str, seeds: list[int], warmup: int
) -> tuple[list[float], int]:
    """measure_here in a fresh process (this Python, this environment): its
    times, and the process's id."""
    cmd = [sys.executable, "-m", "tidal.bench.simulation", "--worker", workload, name]
    cmd += ["--worker-seeds", ",".join(map(str, seeds)), "--worker-warmup", str(warmup)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{workload} on {name}, seeds {seeds}: {proc.stderr.strip()[-2000:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return data["times"], data["pid"]


def measure(
    seeds: int,
    only: list[str] | None = None,
    without: list[str] | None = None,
    per_process: int = 1,
    pids: dict[str, dict[str, list[int]]] | None = None,
) -> dict[str, dict[str, list[float]]]:
    """CPU seconds per seed: {workload: {simulator: [one per seed]}}, for the
    simulators installed here (tidal always).  Each fresh process measures
    `per_process` seeds of one simulator (after a warm-up seed); the
    simulators take turns process by process, which one goes first rotating.
    `pids`, if given, gets the id of the process of each sample."""
    out: dict[str, dict[str, list[float]]] = {}
    for workload, runners in WORKLOADS.items():
        if only and workload not in only:
            continue
        if workload == "dht" and not _available("kademlia"):
            continue
        present = [name for name in runners if name not in (without or ()) and _available(name)]
        times: dict[str, list[float]] = {name: [] for name in present}
        where: dict[str, list[int]] = {name: [] for name in present}
        step = max(1, per_process)
        for turn, first in enumerate(range(0, seeds, step)):
            batch = list(range(first, min(first + step, seeds)))
            k = turn % len(present)
            for name in present[k:] + present[:k]:
                samples, pid = _measure_in_child(workload, name, batch, warmup=seeds)
                times[name] += samples
                where[name] += [pid] * len(samples)
        out[workload] = times
        if pids is not None:
            pids[workload] = where
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--only", choices=list(WORKLOADS), action="append", default=[])
    parser.add_argument(
        "--without", action="append", default=[], help="leave a contestant out (repeatable)"
    )
    parser.add_argument(
        "--per-process", type=int, default=1, metavar="N",
        help="seeds one fresh process measures, after its warm-up seed (default 1)",
    )  # fmt: skip
    parser.add_argument(
        "--json", action="store_true", help="print one JSON line (the bench's sim section reads it)"
    )
    # A measuring process (measure's child): one simulator, these seeds.
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--worker-seeds", default="0", help=argparse.SUPPRESS)
    parser.add_argument("--worker-warmup", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        seeds = [int(seed) for seed in args.worker_seeds.split(",")]
        samples = measure_here(args.worker[0], args.worker[1], seeds, args.worker_warmup)
        print(json.dumps({"times": samples, "pid": os.getpid()}))
        return
    import platform

    import tidal

    build = "compiled" if tidal.COMPILED else "interpreted"
    if not args.json:
        print(
            f"tidal {build}, Python {platform.python_version()}; {args.seeds} seeds each, "
            f"{args.per_process} per process"
        )
    pids: dict[str, dict[str, list[int]]] = {}
    results = measure(args.seeds, args.only, args.without, args.per_process, pids)
    if args.json:
        missing = [name for name in ("simloop", "simloom", "seedloop") if not _available(name)]
        info = {"python": platform.python_version(), "tidal": build, "missing": missing}
        print(json.dumps({**info, "times": results, "pids": pids}))
        return
    for workload, times in results.items():
        base = statistics.median(times["tidal"])
        print(f"\n{workload}: median CPU s per seed (ratio: tidal's speed over theirs)")
        for name, measured in times.items():
            median = statistics.median(measured)
            print(f"  {name:10s} {median:8.4f} s   {median / base:6.2f}x")


if __name__ == "__main__":
    main()
