"""python -m tidal ps / pstree / top against real child processes (tidal only).

Each child runs a known tree of named tasks on a tidal loop and says READY
on stdout; the client runs as another process, as a user would run it.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import signal
import subprocess
import sys
import time
from typing import Iterator

import pytest

NOBODY = 65534

_CHILD = r"""
import asyncio, os, sys, time
if "as-nobody" in sys.argv:
    import tidal, tidal.monitor  # imported as root: nobody may not read the interpreter's files
    os.setuid(65534)
import tidal, tidal.monitor

def blocking_here():
    time.sleep(30)

async def leaf():
    await asyncio.sleep(3600)

async def worker(tg_name):
    async with asyncio.TaskGroup() as tg:
        tg.create_task(leaf(), name=f"{tg_name}-leaf-1")
        tg.create_task(leaf(), name=f"{tg_name}-leaf-2")

async def gatherer():
    await asyncio.gather(asyncio.create_task(leaf(), name="gathered"))

async def ticker():
    while True:  # wakes often
        await asyncio.sleep(0.01)

def make_late():
    asyncio.get_running_loop().create_task(leaf(), name="late")

async def main():
    if "api" in sys.argv:
        tidal.monitor.enable()
    a = asyncio.create_task(worker("a"), name="worker-a")
    asyncio.create_task(gatherer(), name="gatherer")
    if "ticker" in sys.argv:
        asyncio.create_task(ticker(), name="ticker")
        import signal
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, make_late)
    await asyncio.sleep(0.1)
    print("READY", flush=True)
    if "block" in sys.argv:
        await asyncio.sleep(0.05)
        blocking_here()
    await a

asyncio.Runner(loop_factory=tidal.new_event_loop).run(main())
"""


@contextlib.contextmanager
def child(tmp_path: pathlib.Path, *args: str, monitor: bool = True) -> Iterator[int]:
    script = tmp_path / "tree_child.py"
    script.write_text(_CHILD)
    env = dict(os.environ)
    env.pop("TIDAL_MONITOR", None)
    if monitor and "api" not in args:
        env["TIDAL_MONITOR"] = "1"
    with subprocess.Popen(
        [sys.executable, str(script), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if line != "READY\n":
                proc.kill()
                raise AssertionError(f"the child did not start: {line!r} {proc.communicate()[1]}")
            yield proc.pid
        finally:
            proc.kill()
            proc.wait()


def tidal_cmd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tidal", *args], capture_output=True, text=True, timeout=60
    )


def tree_paths(text: str) -> dict[str, list[str]]:
    """Each node's label (its location dropped) -> the labels of the nodes above it."""
    paths: dict[str, list[str]] = {}
    stack: list[str] = []
    for line in text.splitlines():
        found = re.search(r"[├└]── ", line)
        assert found, line
        depth = found.start() // 4
        assert found.start() % 4 == 0 and re.fullmatch(r"(│   |    )*", line[: found.start()]), line
        label = line[found.end() :].split(" /")[0]  # "(T) name" or " qualname"
        del stack[depth:]
        paths.setdefault(label, list(stack))
        stack.append(label)
    return paths


def test_pstree_draws_the_await_tree(tmp_path: pathlib.Path) -> None:
    with child(tmp_path) as pid:
        out = tidal_cmd("pstree", str(pid))
    assert out.returncode == 0, out.stderr
    text = out.stdout
    roots = [line for line in text.splitlines() if re.match(r"^[├└]── ", line)]
    # Two roots: the main task (awaiting worker-a) and gatherer.
    assert [r[4:] for r in roots] == ["(T) Task-1", "(T) gatherer"], text
    paths = tree_paths(text)
    # Each task hangs under the coroutine frame that awaits it, as asyncio's pstree draws it.
    assert paths["(T) worker-a"] == ["(T) Task-1", " main"], text
    for leaf in ("a-leaf-1", "a-leaf-2"):
        assert paths[f"(T) {leaf}"] == ["(T) Task-1", " main", "(T) worker-a", " worker", " TaskGroup.__aexit__"], text
    assert paths["(T) gathered"] == ["(T) gatherer", " gatherer"], text
    # A leaf shows its own stack, down to asyncio's sleep.
    assert re.search(r"└──  leaf .*tree_child\.py:\d+\n.*└──  sleep .*asyncio", text), text


def test_ps_lists_the_tasks(tmp_path: pathlib.Path) -> None:
    with child(tmp_path, "api", "ticker") as pid:
        first = tidal_cmd("ps", str(pid))
        os.kill(pid, signal.SIGUSR1)  # makes "late", after the first look
        time.sleep(1.0)  # the ticker steps meanwhile
        out = tidal_cmd("ps", str(pid))
    assert first.returncode == 0, first.stderr
    assert out.returncode == 0, out.stderr
    text = out.stdout
    rows = {line.split()[1]: line.split(None, 6) for line in text.splitlines() if line.startswith("0x")}
    names = {"Task-1", "worker-a", "a-leaf-1", "a-leaf-2", "gatherer", "gathered", "ticker", "late"}
    assert set(rows) == names, text
    line = {name: " ".join(row) for name, row in rows.items()}
    assert re.search(r"\bpending\b.*\bworker-a\b.*sleep -> leaf", line["a-leaf-1"]), text
    assert re.search(r"\bTask-1\b.*TaskGroup\.__aexit__ -> worker", line["worker-a"]), text
    assert re.search(r"\bgatherer\b.*sleep -> leaf", line["gathered"]), text
    # Figures are collected from the first look on: the ticker's steps since
    # then; the task made after it has an age and a creation site.
    _, _, _, age, steps, step_time, _ = rows["ticker"]
    assert age == "-" and int(steps) >= 10 and step_time != "-", text
    _, _, _, age, steps, _, _ = rows["late"]
    assert age != "-" and int(steps) == 1, text
    assert re.search(r"tree_child\.py:\d+ in make_late$", line["late"]), text
    # Before the first look nothing was collected (the first answer is made
    # as collection begins: at most a step or two of it).
    assert re.search(r"\bticker\s+pending\s+-\s+(-|[0-2])\s", first.stdout), first.stdout


def test_ps_answers_while_the_loop_is_blocked(tmp_path: pathlib.Path) -> None:
    with child(tmp_path, "block") as pid:
        time.sleep(0.6)
        began = time.monotonic()
        out = tidal_cmd("ps", str(pid))
        took = time.monotonic() - began
    assert out.returncode == 0, out.stderr
    text = out.stdout
    found = re.search(r"BLOCKED for ([\d.]+)(ms|s) so far by task 'Task-1'", text)
    assert found, text
    assert "in blocking_here" in text and "time.sleep(30)" in text, text  # the loop thread's stack
    assert re.search(r"Task-1\s+running", text), text
    assert took < 29, took  # answered while the loop was still blocked


def test_top_shows_the_loop(tmp_path: pathlib.Path) -> None:
    with child(tmp_path, "ticker") as pid:
        out = tidal_cmd("top", "-n", "2", "--interval", "0.5", str(pid))
    assert out.returncode == 0, out.stderr
    frames = out.stdout.split("tidal top: process")[1:]
    assert len(frames) == 2, out.stdout
    # (The first look turns the statistics on: from the second on, they show.)
    second = frames[1]
    assert re.search(r"utilisation +[\d.]+%  turns/s [\d,]+  callbacks", second), second
    assert re.search(r"lag p50 \S+  p90 \S+  p99 \S+  max \S+", second), second
    assert "transports open: none" in second, second
    # What the loop's transports moved, and how fast (none here).
    assert "bytes read 0 B (0 B/s)  written 0 B (0 B/s)" in second, second
    # The busiest task first: the ticker steps, the others sleep.
    table = second.split("by time spent in their steps:\n")[1].splitlines()
    assert table[1].split()[0] == "ticker", second


def test_a_process_that_did_not_opt_in_exposes_nothing(tmp_path: pathlib.Path) -> None:
    with child(tmp_path, monitor=False) as pid:
        out = tidal_cmd("ps", str(pid))
    assert out.returncode == 1
    assert "exposes no tidal monitor" in out.stderr, out.stderr
    assert not out.stdout


_CLIENT_AS_NOBODY = r"""
import io, sys, os, contextlib
from tidal.monitor import _client
os.setuid(65534)
err = io.StringIO()
with contextlib.redirect_stderr(err):
    code = _client.main("ps", [sys.argv[1]])
print(code)
print(err.getvalue())
"""


@pytest.mark.skipif(os.getuid() != 0, reason="needs root, to become another user")
def test_another_user_is_refused(tmp_path: pathlib.Path) -> None:
    # The client runs as nobody (setuid in a child started as root).
    with child(tmp_path) as pid:
        out = subprocess.run(
            [sys.executable, "-c", _CLIENT_AS_NOBODY, str(pid)], capture_output=True, text=True, timeout=60
        )
    assert out.returncode == 0, out.stderr
    code, message = out.stdout.split("\n", 1)
    assert code == "1"
    assert f"refused: process {pid} belongs to uid 0" in message, message
    assert f"you are uid {NOBODY}" in message, message


@pytest.mark.skipif(os.getuid() != 0, reason="needs root, to become another user")
def test_the_server_refuses_a_peer_of_another_uid(tmp_path: pathlib.Path) -> None:
    # The monitored process runs as nobody; root can enter nobody's directory
    # and reach the socket, so here the server's SO_PEERCRED check refuses.
    with child(tmp_path, "as-nobody", "api") as pid:
        out = tidal_cmd("ps", str(pid))
    assert out.returncode == 1
    assert f"refused: process {pid} is monitored by uid {NOBODY} only, and this client runs as uid 0" in out.stderr, (
        out.stderr
    )


def test_the_socket_directory_is_private(tmp_path: pathlib.Path) -> None:
    from tidal.monitor import _channel

    open_dir = tmp_path / "open"
    open_dir.mkdir(mode=0o755)
    open_dir.chmod(0o755)
    with pytest.raises(_channel.UnsafeDirectory, match="open to other users"):
        _channel.make_private_dir(str(open_dir))
    private = tmp_path / "private"
    _channel.make_private_dir(str(private))
    assert private.stat().st_mode & 0o777 == 0o700


_ENABLE_AS_NOBODY = r"""
import asyncio, os, sys
import tidal, tidal.monitor, logging  # imported as root, before becoming nobody
os.setuid(65534)
os.environ["TIDAL_MONITOR"] = "1"
tidal.monitor._from_environment()  # what importing tidal does with TIDAL_MONITOR=1
print("enabled" if tidal.monitor.is_enabled() else "off", flush=True)
tidal.run(asyncio.sleep(0))  # and the program runs on
print("ran", flush=True)
"""


@pytest.mark.skipif(os.getuid() != 0, reason="needs root, to become another user")
def test_a_directory_of_another_owner_turns_the_monitor_off(tmp_path: pathlib.Path) -> None:
    run_user = pathlib.Path(f"/run/user/{NOBODY}")
    made = not run_user.exists()
    run_user.mkdir(parents=True, exist_ok=True)
    planted = run_user / "tidal"  # someone else's directory where nobody's sockets would go
    planted.mkdir(mode=0o700)
    try:
        env = dict(os.environ, XDG_RUNTIME_DIR=str(run_user))
        out = subprocess.run(
            [sys.executable, "-c", _ENABLE_AS_NOBODY], capture_output=True, text=True, timeout=60, env=env
        )
    finally:
        planted.rmdir()
        if made:
            run_user.rmdir()
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["off", "ran"], out.stdout
    assert f"the tidal monitor is off: {planted} belongs to uid 0" in out.stderr, out.stderr
