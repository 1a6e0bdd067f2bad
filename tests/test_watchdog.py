"""The stall watchdog (tidal only: asyncio has no such thing to compare with).

The child-process tests read the child's stderr while it is still blocked:
the watchdog's report must come *before* the blocking call returns, which
the child announces on the same stream right after it returns.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pathlib
import subprocess
import sys
import threading
import time

import pytest

import tidal

_CHILD = r"""
import asyncio, sys, time
import tidal

def blocking_here():
    print("BLOCK-START", flush=True, file=sys.stderr)
    time.sleep(1.0)
    print(f"BLOCK-END", flush=True, file=sys.stderr)

async def stuck():
    await asyncio.sleep(0.05)
    blocking_here()

async def main():
    if sys.argv[1] == "api":
        asyncio.get_running_loop().set_watchdog(0.1)
    await asyncio.create_task(stuck(), name="the-stuck-task")
    await asyncio.sleep(0.3)  # the end report comes from the watchdog's thread

tidal.run(main())
print("DONE", flush=True, file=sys.stderr)
"""


def _stderr_lines_of(how: str, tmp_path: pathlib.Path) -> list[tuple[float, str]]:
    # A file, not -c: the stack's lines are read from the source.
    script = tmp_path / "blocked_child.py"
    script.write_text(_CHILD)
    env = dict(os.environ)
    env.pop("TIDAL_WATCHDOG", None)
    if how == "env":
        env["TIDAL_WATCHDOG"] = "0.1"
    lines = []
    with subprocess.Popen(
        [sys.executable, str(script), how], stderr=subprocess.PIPE, text=True, env=env
    ) as proc:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append((time.monotonic(), line.rstrip("\n")))
        proc.wait(timeout=60)
    assert proc.returncode == 0, "\n".join(text for _, text in lines)
    return lines


@pytest.mark.parametrize("how", ["env", "api"])
def test_a_blocked_step_is_reported_while_it_blocks(how: str, tmp_path: pathlib.Path) -> None:
    lines = _stderr_lines_of(how, tmp_path)
    text = [line for _, line in lines]
    everything = "\n".join(text)
    start = text.index("BLOCK-START")
    end = text.index("BLOCK-END")
    reports = [i for i, line in enumerate(text) if line.startswith("tidal watchdog:") and "so far" in line]
    assert len(reports) == 1, everything
    report = reports[0]
    # Reported while the call still blocked: after it began, before it returned.
    assert start < report < end, everything
    head = text[report]
    assert "the-stuck-task" in head, head
    assert "in stuck at" in head, head  # the innermost coroutine frame
    seconds = float(head.split("blocked the event loop for ")[1].split()[0])
    assert 0.1 <= seconds < 1.0, head
    # The loop thread's stack follows, down to the blocking function.
    stack = "\n".join(text[report:end])
    assert "in blocking_here" in stack and "time.sleep(1.0)" in stack, everything
    # And the total once the step is over.
    totals = [line for line in text[end:] if "in total" in line]
    assert len(totals) == 1, everything
    assert "the-stuck-task" in totals[0]
    total = float(totals[0].split("for ")[1].split()[0])
    assert 0.9 <= total < 5, totals[0]
    assert text[-1] == "DONE"


def test_without_watchdog_nothing_is_reported(tmp_path: pathlib.Path) -> None:
    text = [line for _, line in _stderr_lines_of("none", tmp_path)]
    assert not [line for line in text if "watchdog" in line], text


class _Messages:
    """The asyncio logger's messages so far (caplog's, read when asked)."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self._caplog = caplog

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._caplog.messages)

    def __repr__(self) -> str:
        return repr(self._caplog.messages)


@pytest.fixture
def warnings_seen(caplog: pytest.LogCaptureFixture) -> _Messages:
    caplog.set_level(logging.WARNING, logger="asyncio")
    return _Messages(caplog)


def _watchdog_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("tidal-watchdog")]


@pytest.mark.usefixtures("blocking_on_purpose")
def test_a_blocking_plain_callback_is_named(warnings_seen: _Messages) -> None:
    def blocking_callback() -> None:
        time.sleep(0.4)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_watchdog(0.05)
        loop.call_soon(blocking_callback)
        await asyncio.sleep(0.6)

    tidal.run(main())
    stalls = [m for m in warnings_seen if "so far" in m]
    assert len(stalls) == 1, warnings_seen
    assert "callback test_a_blocking_plain_callback_is_named.<locals>.blocking_callback" in stalls[0]
    assert [m for m in warnings_seen if "in total" in m], warnings_seen


def test_waiting_for_io_or_timers_is_not_a_stall(warnings_seen: _Messages) -> None:
    async def main() -> None:
        asyncio.get_running_loop().set_watchdog(0.05)
        await asyncio.sleep(0.4)
        for _ in range(20):  # many short steps, none long
            time.sleep(0.01)
            await asyncio.sleep(0)

    tidal.run(main())
    assert not [m for m in warnings_seen if "watchdog" in m], warnings_seen


def test_the_thread_ends_with_the_loop() -> None:
    before = set(_watchdog_threads())
    loop = tidal.new_event_loop()
    loop.set_watchdog(0.05)
    assert set(_watchdog_threads()) == before  # started when the loop runs
    loop.run_until_complete(asyncio.sleep(0.01))
    assert len(set(_watchdog_threads()) - before) == 1
    loop.set_watchdog(0.2)  # replaced: the old thread ends too
    loop.run_until_complete(asyncio.sleep(0.01))
    loop.close()
    assert set(_watchdog_threads()) == before


def test_set_watchdog_none_overrides_the_environment(
    monkeypatch: pytest.MonkeyPatch, warnings_seen: _Messages
) -> None:
    monkeypatch.setenv("TIDAL_WATCHDOG", "0.05")
    loop = tidal.new_event_loop()
    try:
        loop.set_watchdog(None)
        loop.run_until_complete(asyncio.sleep(0))
        assert not [t for t in _watchdog_threads() if t.is_alive() and str(id(loop)) in t.name]
        loop.call_soon(time.sleep, 0.3)
        loop.run_until_complete(asyncio.sleep(0.01))
    finally:
        loop.close()
    assert not [m for m in warnings_seen if "watchdog" in m], warnings_seen


@pytest.mark.parametrize("bad", [0, -1, "0.1", True])
def test_set_watchdog_refuses_what_is_not_a_duration(bad: object) -> None:
    loop = tidal.new_event_loop()
    try:
        with pytest.raises((TypeError, ValueError)):
            loop.set_watchdog(bad)  # type: ignore[arg-type]
    finally:
        loop.close()
