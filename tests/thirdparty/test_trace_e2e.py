"""Real servers traced end to end: TIDAL_TRACE in a child process, the strict checker on the result.

* uvicorn, started the way a deployment starts it (``python -m uvicorn
  app:app --loop tidal:new_event_loop``), serves an ASGI app to httpx
  requests from this process, and is stopped with Ctrl-C (SIGINT): the trace
  is written as the process exits.
* an aiohttp server and its clients (aiohttp's ClientSession) in one
  process, run with ``tidal.run``: the program behind docs/img/trace.png.

Each trace must pass ``tidal.trace.check`` (every slice nests on its track,
every flow has both ends), name the tasks' tracks, show the app's own code
resuming in task steps, and have wake-ups that come from I/O.

Tracing is tidal's: asyncio's loop has no instruments, so these tests run
once, not per loop (the same apps run on both loops in test_uvicorn_httpx.py
and test_aiohttp.py).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tidal.trace import check

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")
pytest.importorskip("aiohttp")

ASGI_APP = textwrap.dedent(
    """
    import asyncio


    async def work(n):
        await asyncio.sleep(0.001)
        return f"hello {n}".encode()


    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                await send({"type": msg["type"] + ".complete"})
                if msg["type"] == "lifespan.shutdown":
                    return
        body = await work(scope["path"].strip("/"))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
    """
)

# The program behind docs/img/trace.png: aiohttp's server and its clients.
AIOHTTP_PROGRAM = Path(__file__).parents[2] / "docs" / "img" / "trace_example.py"


def _environment(trace: Path, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDAL_")}
    # The same tidal as this test's (interpreted or compiled, as it runs).
    if os.environ.get("TIDAL_NO_EXT"):
        env["TIDAL_NO_EXT"] = os.environ["TIDAL_NO_EXT"]
    env["TIDAL_TRACE"] = str(trace)
    env.update(more)
    return env


def _checked(path: Path) -> tuple[list[dict[str, Any]], set[str]]:
    """The trace's events and track names, once the strict checker passes it."""
    data = json.loads(path.read_text())
    assert check(data) == []
    events = data["traceEvents"]
    tracks = {e["args"]["name"] for e in events if e.get("ph") == "M" and e["name"] == "thread_name"}
    flows = [e for e in events if e["ph"] in ("s", "f")]
    assert flows and len(flows) % 2 == 0
    return events, tracks


def _woken_by_reads(events: list[dict[str, Any]]) -> int:
    """How many flows start inside a transport's read callback (a wake-up by I/O)."""
    reads = sorted(
        (e["pid"], e["tid"], e["ts"], e["ts"] + e["dur"])
        for e in events
        if e["ph"] == "X" and e.get("cat") == "callback" and "read_ready" in e["name"]
    )
    return sum(
        1
        for s in events
        if s["ph"] == "s"
        and any(p == s["pid"] and t == s["tid"] and a <= s["ts"] <= b for p, t, a, b in reads)
    )


def test_uvicorn_app_traced_with_tidal_trace(tmp_path: Path) -> None:
    (tmp_path / "asgi_app.py").write_text(ASGI_APP)
    out = tmp_path / "uvicorn.json"
    cmd = [
        sys.executable, "-m", "uvicorn", "asgi_app:app", "--app-dir", str(tmp_path),
        "--loop", "tidal:new_event_loop", "--host", "127.0.0.1", "--port", "0",
        "--http", "h11", "--no-access-log",
    ]
    proc = subprocess.Popen(cmd, env=_environment(out), stderr=subprocess.PIPE, text=True)
    try:
        port = None
        log = []
        deadline = time.monotonic() + 30
        while port is None and time.monotonic() < deadline:
            line = proc.stderr.readline()  # type: ignore[union-attr]
            if not line:
                break
            log.append(line)
            found = re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", line)
            if found:
                port = int(found.group(1))
        assert port, "".join(log)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            for n in range(10):
                assert client.get(f"/{n}").text == f"hello {n}"
        proc.send_signal(signal.SIGINT)  # Ctrl-C: uvicorn shuts down, the process exits
        rest = proc.communicate(timeout=30)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "Shutting down" in rest, rest
    assert out.exists(), "".join(log) + rest
    events, tracks = _checked(out)
    assert {"I/O waits", "callbacks"} <= tracks
    steps = [e for e in events if e["ph"] == "X" and e.get("cat") == "step"]
    # The app's own coroutine, resuming in its own file (after `await work(...)`).
    app_file = str(tmp_path / "asgi_app.py")
    assert any(e["args"]["at"].startswith(app_file) for e in steps), {e["args"]["at"] for e in steps}
    assert _woken_by_reads(events) >= 10  # each request wakes its handler from a read


def test_aiohttp_server_and_clients_traced_with_tidal_trace(tmp_path: Path) -> None:
    script = AIOHTTP_PROGRAM
    out = tmp_path / "aiohttp.json"
    proc = subprocess.run(
        [sys.executable, str(script)], env=_environment(out), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    events, tracks = _checked(out)
    assert {f"client-{i}" for i in range(6)} <= tracks
    steps = [e for e in events if e["ph"] == "X" and e.get("cat") == "step"]
    # The request handler resuming in its own file (after its sleep), in a task of aiohttp's.
    assert any(e["args"]["at"].startswith(f"{script}:") for e in steps)
    # Slices nest on every track (the checker); and on the task tracks they
    # do not even overlap: a loop runs one step at a time.
    by_track: dict[tuple[Any, Any], list[tuple[float, float]]] = {}
    for e in steps:
        by_track.setdefault((e["pid"], e["tid"]), []).append((e["ts"], e["ts"] + e["dur"]))
    for spans in by_track.values():
        spans.sort()
        assert all(a_end <= b_start + 1e-3 for (_, a_end), (b_start, _) in zip(spans, spans[1:]))
    assert _woken_by_reads(events) >= 24  # 6 clients x 4 requests, each answer read
