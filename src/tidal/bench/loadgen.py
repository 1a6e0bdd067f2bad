"""The bench's outside helpers: C tools built at bench time, wrk, and server processes.

``csrc/loadgen.c`` (the load generator) and ``csrc/echo_server.c`` (the C
epoll reference server) are compiled with the machine's ``cc`` into
``<out>/bin/`` the first time, and again whenever the source is newer.
Without a C compiler the sections that need them say so and are skipped.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CSRC = Path(__file__).parent / "csrc"
TOOLS = ("loadgen", "echo_server")


class BenchError(Exception):
    """A measurement that could not be made; the bench records it and goes on."""


@dataclass
class Tools:
    paths: dict[str, Path] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    wrk: str | None = None
    compiler: str = ""

    def get(self, name: str) -> Path | None:
        return self.paths.get(name)


def build_tools(out: Path) -> Tools:
    """Compile the C tools into out/bin (when stale) and find wrk."""
    tools = Tools(wrk=shutil.which("wrk"))
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        tools.problems.append(
            "no C compiler (cc/gcc): the echo, scaling and memory sections need one"
        )
        return tools
    version = subprocess.run([cc, "--version"], check=False, capture_output=True, text=True)
    tools.compiler = version.stdout.splitlines()[0] if version.stdout else cc
    bindir = out / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    for name in TOOLS:
        src = CSRC / f"{name}.c"
        exe = bindir / name
        if not exe.exists() or exe.stat().st_mtime < src.stat().st_mtime:
            proc = subprocess.run(
                [cc, "-O2", "-Wall", "-o", str(exe), str(src)],
                check=False,
                capture_output=True,
                text=True,
                timeout=120,
            )
            if proc.returncode != 0:
                tools.problems.append(f"{src.name} did not compile:\n{proc.stderr.strip()}")
                continue
        tools.paths[name] = exe
    return tools


def run_loadgen(
    tools: Tools,
    port: int,
    *,
    conns: int,
    size: int,
    warmup: float,
    duration: float,
    mode: str = "echo",
    cpu_pid: int | None = None,
) -> dict[str, Any]:
    """One closed-loop run against 127.0.0.1:port; the load generator's JSON.

    With `cpu_pid` (the server's process), also ``cpu_us``: that process's
    CPU time (user + system) over the measured window, per reply counted.
    """
    exe = tools.get("loadgen")
    if exe is None:
        raise BenchError("the load generator is not built")
    cmd = [
        str(exe),
        "--port",
        str(port),
        "--conns",
        str(conns),
        "--size",
        str(size),
        "--warmup",
        str(warmup),
        "--duration",
        str(duration),
        "--mode",
        mode,
    ]
    if cpu_pid is not None:
        cmd += ["--cpu-pid", str(cpu_pid)]
    # Connecting 10,000 sockets may take seconds on a loaded machine; the run
    # itself is bounded by its own clock (its connect, warm-up and stretched
    # window each give up after 30 s), this is only the backstop.
    timeout = warmup + duration + 100
    try:
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"load generator timed out after {timeout:.0f} s") from None
    if proc.returncode != 0:
        raise BenchError(proc.stderr.strip() or f"load generator exited {proc.returncode}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    if not result["messages"]:
        raise BenchError(f"no reply completed in the {duration:g} s window")
    if result.get("server_cpu_s", -1.0) >= 0:
        result["cpu_us"] = result["server_cpu_s"] / result["messages"] * 1e6
    return result


@contextmanager
def held_connections(tools: Tools, port: int, conns: int, size: int = 64) -> Iterator[None]:
    """Open `conns` connections, one round trip each, and keep them idle inside the block."""
    exe = tools.get("loadgen")
    if exe is None:
        raise BenchError("the load generator is not built")
    cmd = [
        str(exe),
        "--port",
        str(port),
        "--conns",
        str(conns),
        "--size",
        str(size),
        "--mode",
        "hold",
        "--hold-seconds",
        "300",
    ]
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
        try:
            line = _read_line(proc, 120)
            if not line.startswith("HELD"):
                err.seek(0)
                raise BenchError(f"load generator (hold): {err.read().decode(errors='replace')}")
            yield
        finally:
            _stop(proc)


def _read_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    """The next line of proc's stdout, or '' if it exits or `timeout` passes first."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return ""
        chunk = os.read(fd, 4096)
        if not chunk:
            return buf.decode(errors="replace")
        buf += chunk
    return buf.split(b"\n", 1)[0].decode(errors="replace")


def _stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> str:
    """Close its stdin (the signal to stop), wait, then terminate/kill; its remaining stdout."""
    out = b""
    try:
        out, _ = proc.communicate(timeout=grace)  # closes stdin first
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.communicate(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
    return (out or b"").decode(errors="replace")


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    done: dict[str, Any] = field(default_factory=dict)
    stderr: str = ""


@contextmanager
def server_process(cmd: list[str], env: dict[str, str], max_seconds: float) -> Iterator[Server]:
    """Start a server worker, wait for READY; on leaving, stop it and read DONE and stderr.

    stderr goes to a file, never a pipe nobody reads (a chatty server would
    block on a full pipe and the bench would measure that).
    """
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            cmd + ["--max-seconds", f"{max_seconds:.0f}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
        )
        server: Server | None = None
        try:
            line = _read_line(proc, 60)
            if not line.startswith("READY "):
                proc.kill()
                proc.wait()
                err.seek(0)
                raise BenchError(
                    f"server did not start: {line!r} {err.read().decode(errors='replace')[-2000:]}"
                )
            server = Server(proc, int(line.split()[1]))
            yield server
        finally:
            rest = _stop(proc)
            if server is not None:
                for out_line in rest.splitlines():
                    if out_line.startswith("DONE "):
                        server.done = json.loads(out_line[5:])
                err.seek(0)
                server.stderr = err.read().decode(errors="replace").strip()


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc/<pid>/status (VmRSS, in kB)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise BenchError(f"no VmRSS for pid {pid}")


_WRK_UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6}


def _wrk_time_us(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise BenchError(f"cannot read wrk's time {text!r}")
    return float(m.group(1)) * _WRK_UNITS[m.group(2)]


def run_wrk(wrk: str, port: int, *, conns: int, duration: float) -> dict[str, Any]:
    """wrk against 127.0.0.1:port with one thread (the server has the other core)."""
    seconds = max(1, round(duration))  # wrk counts whole seconds
    cmd = [
        wrk,
        "-t1",
        f"-c{conns}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        "5s",
        f"http://127.0.0.1:{port}/",
    ]
    try:
        proc = subprocess.run(
            cmd, check=False, capture_output=True, text=True, timeout=seconds + 60
        )
    except subprocess.TimeoutExpired:
        raise BenchError("wrk timed out") from None
    out = proc.stdout
    if proc.returncode != 0:
        raise BenchError(f"wrk exited {proc.returncode}: {proc.stderr.strip()}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE)
    if not (rate and p50 and p99):
        raise BenchError(f"cannot read wrk's output:\n{out}")
    problems = [
        m.group(0).strip()
        for m in re.finditer(r"^\s*(Socket errors|Non-2xx).*$", out, re.MULTILINE)
    ]
    if problems:
        raise BenchError("wrk: " + "; ".join(problems))
    return {
        "msgs_per_s": float(rate.group(1)),
        "p50_us": _wrk_time_us(p50.group(1)),
        "p99_us": _wrk_time_us(p99.group(1)),
    }


def wrk_version(wrk: str) -> str:
    proc = subprocess.run([wrk, "-v"], check=False, capture_output=True, text=True)
    return (
        (proc.stdout or proc.stderr).splitlines()[0].strip()
        if (proc.stdout or proc.stderr)
        else "wrk"
    )
