"""Debug mode, on asyncio's loop and on tidal's: switches, checks, warnings, tracebacks."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
import sys
import threading
import time

import pytest

HERE = os.path.abspath(__file__)


def noop(*args):
    pass


async def coro_fn():
    pass


def here() -> int:
    """The caller's current line number."""
    return sys._getframe(1).f_lineno


def run_one_turn(loop):
    loop.stop()
    loop.run_forever()


def test_get_set_debug(loop):
    assert loop.get_debug() is False
    assert loop.slow_callback_duration == 0.1
    loop.set_debug(True)
    assert loop.get_debug() is True
    assert "debug=True" in repr(loop)
    loop.set_debug(False)
    assert loop.get_debug() is False


_DEBUG_PROBE = """
import asyncio, sys
import tidal
factory = {"asyncio": asyncio.new_event_loop, "tidal": tidal.new_event_loop}[sys.argv[1]]
loop = factory()
print(loop.get_debug())
loop.close()
"""


@pytest.mark.parametrize(
    "flags, env, expected",
    [
        ([], {}, "False"),
        ([], {"PYTHONASYNCIODEBUG": "1"}, "True"),
        ([], {"PYTHONASYNCIODEBUG": ""}, "False"),
        (["-X", "dev"], {}, "True"),
        (["-E"], {"PYTHONASYNCIODEBUG": "1"}, "False"),  # -E ignores the environment
    ],
    ids=["default", "env", "env-empty", "dev-mode", "env-ignored"],
)
def test_debug_default_from_environment(loop_name, flags, env, expected):
    full_env = {k: v for k, v in os.environ.items() if k != "PYTHONASYNCIODEBUG"}
    full_env.update(env)
    if "-E" in flags:
        # -E also ignores PYTHONPATH: make sure tidal is importable anyway.
        import tidal

        src = os.path.dirname(os.path.dirname(os.path.abspath(tidal.__file__)))
        code = f"import sys; sys.path.insert(0, {src!r})\n" + _DEBUG_PROBE
    else:
        code = _DEBUG_PROBE
    out = subprocess.run(
        [sys.executable, *flags, "-c", code, loop_name],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected


@pytest.mark.usefixtures("blocking_on_purpose")
def test_slow_callback_warning(loop, caplog):
    loop.set_debug(True)
    loop.slow_callback_duration = 0.01
    line = here() + 1
    loop.call_soon(time.sleep, 0.03)
    loop.call_soon(noop)  # fast: no warning
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        run_one_turn(loop)
    [rec] = [r for r in caplog.records if r.name == "asyncio"]
    assert rec.levelno == logging.WARNING
    expected = rf"^Executing <Handle sleep\(0\.03\) created at {re.escape(HERE)}:{line}> took 0\.\d{{3}} seconds$"
    assert re.match(expected, rec.getMessage()), rec.getMessage()


@pytest.mark.usefixtures("blocking_on_purpose")
def test_slow_task_step_warning_shows_the_task(loop, caplog):
    loop.set_debug(True)
    loop.slow_callback_duration = 0.01

    async def slow_step():
        time.sleep(0.03)  # noqa: ASYNC251 - blocking on purpose: that is the slow step

    with caplog.at_level(logging.WARNING, logger="asyncio"):
        loop.run_until_complete(slow_step())
    msgs = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert len(msgs) == 1
    assert re.match(
        r"^Executing <Task finished name='Task-\d+' coro=<.*slow_step\(\) done", msgs[0]
    )
    assert re.search(r" took 0\.\d{3} seconds$", msgs[0])


def test_source_tracebacks_point_at_the_caller(loop):
    loop.set_debug(True)
    lines = []
    handles = []
    lines.append(here() + 1)
    handles.append(loop.call_soon(noop))
    lines.append(here() + 1)
    handles.append(loop.call_later(10, noop))
    lines.append(here() + 1)
    handles.append(loop.call_at(loop.time() + 10, noop))
    lines.append(here() + 1)
    handles.append(loop.call_soon_threadsafe(noop))
    for h, line in zip(handles, lines):
        frame = h._source_traceback[-1]
        assert (frame.filename, frame.lineno, frame.name) == (
            HERE,
            line,
            "test_source_tracebacks_point_at_the_caller",
        )
        assert repr(h).endswith(f" created at {HERE}:{line}>")
        before = repr(h)
        h.cancel()
        # In debug mode a cancelled handle keeps its callback in its repr.
        assert repr(h) == before.replace("Handle ", "Handle cancelled ", 1)
    line = here() + 1
    task = loop.create_task(coro_fn())
    assert task._source_traceback[-1].lineno == line
    loop.run_until_complete(task)


def test_no_source_traceback_without_debug(loop):
    h = loop.call_soon(noop)
    t = loop.call_later(1, noop)
    assert h._source_traceback is None and t._source_traceback is None
    assert " created at " not in repr(h)
    h.cancel()
    t.cancel()


def _raise_value_error():
    raise ValueError("in debug")


def test_callback_error_context_has_source_traceback(loop, loop_errors):
    loop.set_debug(True)
    line = here() + 1
    loop.call_soon(_raise_value_error)
    run_one_turn(loop)
    [ctx] = loop_errors
    assert ctx["source_traceback"][-1].lineno == line
    assert ctx["source_traceback"][-1].filename == HERE
    loop_errors.clear()


def test_default_handler_logs_object_and_handle_tracebacks(loop, caplog):
    loop.set_debug(True)
    loop.set_exception_handler(None)

    def report_from_callback():
        loop.call_exception_handler({"message": "reported from a callback"})

    line_bad = here() + 1
    loop.call_soon(_raise_value_error)
    line_report = here() + 1
    loop.call_soon(report_from_callback)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        run_one_turn(loop)
    first, second = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert "\nsource_traceback: Object created at (most recent call last):\n" in first
    assert f'File "{HERE}", line {line_bad}, in ' in first
    # No source_traceback in the context: the running handle's is added.
    assert second.startswith("reported from a callback\n")
    assert "\nhandle_traceback: Handle created at (most recent call last):\n" in second
    assert f'File "{HERE}", line {line_report}, in ' in second


def test_non_threadsafe_calls_from_another_thread_raise_in_debug(loop, arun):
    loop.set_debug(True)
    errors = []

    fut = loop.create_future()
    fut.add_done_callback(noop)

    def worker():
        for call in (
            lambda: loop.call_soon(noop),
            lambda: loop.call_later(1, noop),
            lambda: loop.call_at(loop.time() + 1, noop),
            # asyncio's C Future calls call_soon(callback, fut, context=...)
            lambda: fut.set_result(1),
        ):
            try:
                call()
            except RuntimeError as exc:
                errors.append(str(exc))
        # The threadsafe one is allowed.
        loop.call_soon_threadsafe(noop)

    async def main():
        thread = threading.Thread(target=worker)
        thread.start()
        await loop.run_in_executor(None, thread.join)

    arun(main())
    msg = "Non-thread-safe operation invoked on an event loop other than the current one"
    assert errors == [msg] * 4


def test_non_threadsafe_call_from_another_thread_unchecked_without_debug(loop, arun):
    handles = []

    async def main():
        thread = threading.Thread(target=lambda: handles.append(loop.call_later(10, noop)))
        thread.start()
        await loop.run_in_executor(None, thread.join)

    arun(main())
    assert len(handles) == 1
    handles[0].cancel()


def test_callbacks_checked_in_debug(loop):
    loop.set_debug(True)
    coro = coro_fn()
    checks = [
        (lambda: loop.call_soon(coro_fn), r"^coroutines cannot be used with call_soon\(\)$"),
        (lambda: loop.call_soon(coro), r"^coroutines cannot be used with call_soon\(\)$"),
        (lambda: loop.call_later(1, coro_fn), r"^coroutines cannot be used with call_at\(\)$"),
        (lambda: loop.call_at(1, coro_fn), r"^coroutines cannot be used with call_at\(\)$"),
        (
            lambda: loop.call_soon_threadsafe(coro_fn),
            r"^coroutines cannot be used with call_soon_threadsafe\(\)$",
        ),
        (
            lambda: loop.run_in_executor(None, coro_fn),
            r"^coroutines cannot be used with run_in_executor\(\)$",
        ),
        (
            lambda: loop.call_soon(1),
            r"^a callable object was expected by call_soon\(\), got 1$",
        ),
        (
            lambda: loop.call_later(1, "x"),
            r"^a callable object was expected by call_at\(\), got 'x'$",
        ),
    ]
    try:
        for call, msg in checks:
            with pytest.raises(TypeError, match=msg):
                call()
    finally:
        coro.close()
    assert len(loop._ready) == 0 and len(loop._scheduled) == 0


def test_callbacks_not_checked_without_debug(loop):
    # asyncio only checks in debug mode: the mistake surfaces when it runs.
    h = loop.call_soon(coro_fn)
    t = loop.call_later(1, 1)
    h.cancel()
    t.cancel()


def test_coroutine_origin_tracking_follows_debug(loop):
    saved = sys.get_coroutine_origin_tracking_depth()
    loop.set_debug(True)

    async def depth():
        return sys.get_coroutine_origin_tracking_depth()

    assert loop.run_until_complete(depth()) == 10
    assert sys.get_coroutine_origin_tracking_depth() == saved

    async def toggle():
        loop.set_debug(False)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        off = sys.get_coroutine_origin_tracking_depth()
        loop.set_debug(True)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return off, sys.get_coroutine_origin_tracking_depth()

    assert loop.run_until_complete(toggle()) == (saved, 10)
    assert sys.get_coroutine_origin_tracking_depth() == saved


def test_close_logs_in_debug(loop_factory, caplog):
    lp = loop_factory()
    lp.set_debug(True)
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        lp.close()
    msgs = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert f"Close {lp!r}" in msgs


@pytest.mark.parametrize("mode", [True, False])
def test_debug_default_asks_asyncio_at_creation(loop_factory, monkeypatch, mode):
    """A new loop's debug flag is asyncio.coroutines._is_debug_mode(), looked up then."""
    monkeypatch.setattr(asyncio.coroutines, "_is_debug_mode", lambda: mode)
    lp = loop_factory()
    try:
        assert lp.get_debug() is mode
    finally:
        lp.close()
    monkeypatch.setattr(asyncio.coroutines, "_is_debug_mode", lambda: not mode)
    lp = loop_factory()
    try:
        assert lp.get_debug() is (not mode)
    finally:
        lp.close()


def test_slow_task_step_warning_names_the_innermost_coroutine(loop, loop_name, caplog):
    """asyncio's message first (CPython's test matches it whole); tidal adds
    the innermost coroutine frame, where the slow step left the task."""
    loop.set_debug(True)
    loop.slow_callback_duration = 0.01

    async def innermost():
        time.sleep(0.03)  # noqa: ASYNC251 - blocking on purpose: that is the slow step
        await asyncio.sleep(0)  # the step ends here

    async def outer_task():
        await innermost()

    with caplog.at_level(logging.WARNING, logger="asyncio"):
        loop.run_until_complete(outer_task())
    msgs = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert len(msgs) == 1, msgs
    assert re.match(r"^Executing <Task.*outer_task.*> took .* seconds$", msgs[0]), msgs[0]
    if loop_name == "tidal":
        line = here() - 11
        assert f" in <{innermost.__qualname__}() at {HERE}:{line}> took " in msgs[0], msgs[0]


class _HandleSeer(asyncio.Protocol):
    """Echoes, and notes the Handle debug mode says is running at each read."""

    def __init__(self, loop):
        self.loop = loop
        self.handles = []
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.handles.append(self.loop._current_handle)
        self.transport.write(data)


def test_a_transport_reads_under_one_handle_per_registration(loop):
    """As asyncio's loop holds one reader Handle per add_reader, a stream
    transport's reads are observed as one Handle until reading stops (a new
    one after resume_reading), and a closed transport is not kept."""
    import gc
    import weakref

    loop.set_debug(True)
    loop.slow_callback_duration = 60.0
    servers = []

    def factory():
        servers.append(_HandleSeer(loop))
        return servers[-1]

    async def main():
        server = await loop.create_server(factory, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        seer = servers[0]

        async def round_trips(n):
            for i in range(n):
                writer.write(b"x%d" % i)
                await reader.readexactly(len(b"x%d" % i))

        await round_trips(3)
        first = list(seer.handles)
        seer.transport.pause_reading()
        seer.transport.resume_reading()
        await round_trips(2)
        second = seer.handles[len(first):]
        assert second[0]._callback.__func__.__name__ == "_read_ready"
        assert second[0]._callback.__self__ is seer.transport
        ref = weakref.ref(seer.transport)
        seer.transport = None
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        for _ in range(3):
            await asyncio.sleep(0)
        return first, second, ref

    first, second, ref = loop.run_until_complete(main())
    assert len(first) == 3 and len(second) == 2
    assert all(h is first[0] for h in first)
    assert all(h is second[0] for h in second)
    assert second[0] is not first[0]
    servers.clear()
    del first, second
    gc.collect()
    assert ref() is None
