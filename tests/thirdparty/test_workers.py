"""Many processes: ``uvicorn --workers 2`` on the loop under test, both workers serving.

tidal has no cluster manager of its own; people use uvicorn's (or gunicorn's)
worker processes, each running its own loop on the shared listening socket.
This starts the real ``uvicorn`` command with two workers and sees requests
answered by two different processes, each on the loop it was asked for.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

APP = '''
import asyncio
import os


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    # A short wait keeps connections open, so that both workers accept some.
    await asyncio.sleep(0.02)
    loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
    body = f"{os.getpid()} {loop}".encode()
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
'''

LOOPS = {"asyncio": "asyncio", "tidal": "tidal:new_event_loop"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _get(port: int) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        response = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return body.decode()


async def _answers_until_two_pids(port: int, deadline: float) -> set[str]:
    seen: set[str] = set()
    while len({answer.split()[0] for answer in seen}) < 2 and time.monotonic() < deadline:
        # Rounds of concurrent connections: one worker cannot take them all
        # while it waits in each request.
        results = await asyncio.gather(*(_get(port) for _ in range(32)), return_exceptions=True)
        seen.update(r for r in results if isinstance(r, str))
    return seen


@pytest.mark.parametrize("loop_name", list(LOOPS))
def test_two_uvicorn_workers_both_serve(loop_name: str, tmp_path: Path) -> None:
    (tmp_path / "workers_app.py").write_text(APP)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "workers_app:app", "--app-dir", str(tmp_path),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
         "--loop", LOOPS[loop_name], "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, server.communicate()[0].decode()
                time.sleep(0.1)
        answers = asyncio.run(_answers_until_two_pids(port, deadline))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        output = server.communicate(timeout=30)[0].decode()
    pids = {answer.split()[0] for answer in answers}
    assert len(pids) == 2, (answers, output)
    assert str(server.pid) not in pids  # the workers serve, not the supervisor
    assert {answer.split()[1] for answer in answers} == {loop_name}, answers
