"""tidal.trace: the timeline, its strict checker, the flight recorder and the command line.

Tracing is tidal's (it is an instrument: asyncio's loop has none); the tests
that trace take the `loop_name` parametrization and say so for asyncio, after
the programs they trace are checked to behave the same on both loops.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import pytest

import tidal
from tidal import trace
from tidal.trace._chrome import callback_name, chrome_events
from tidal.trace._recorder import CALL, STEP, WAIT, WAIT_END, WAKE

NOT_ON_ASYNCIO = "tidal.trace: asyncio's loop has no instruments"
HERE = os.path.abspath(__file__)


def tidal_only(loop_name):
    if loop_name == "asyncio":
        pytest.skip(NOT_ON_ASYNCIO)


@pytest.fixture(autouse=True)
def _no_session_left():
    yield
    if trace.current() is not None:
        trace.stop()
        pytest.fail("a trace session was left running")


async def _worker(n, q):
    for i in range(n):
        await asyncio.sleep(0.0005)
        await q.put(i)


async def _program():
    q = asyncio.Queue()
    workers = [asyncio.create_task(_worker(10, q), name=f"worker-{k}") for k in range(3)]
    got = [await q.get() for _ in range(30)]
    await asyncio.gather(*workers)
    return sorted(got)


def test_the_program_traced_runs_the_same_on_both_loops(loop, loop_name):
    assert loop.run_until_complete(_program()) == sorted(list(range(10)) * 3)


def _traced(program, **start):
    session = trace.start(**start)
    try:
        result = tidal.run(program())
        data = session.trace()
    finally:
        trace.stop()
    return result, data


def test_a_trace_has_a_track_per_task_and_flows_from_waker_to_woken(loop_name):
    tidal_only(loop_name)
    result, data = _traced(_program)
    assert result == sorted(list(range(10)) * 3)
    assert trace.check(data) == []
    events = data["traceEvents"]
    tracks = {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e.get("name") == "thread_name"}
    assert {"worker-0", "worker-1", "worker-2", "I/O waits", "callbacks"} <= set(tracks.values())
    steps = [e for e in events if e.get("cat") == "step"]
    workers = [e for e in steps if tracks[(e["pid"], e["tid"])].startswith("worker-")]
    # Named by the coroutine; each says where it resumed, in this file
    # (asyncio's own frames, sleep's, are left for "awaiting").
    assert {e["name"] for e in workers} == {"_worker"}
    lines = {e["args"]["at"] for e in workers}
    assert all(at.startswith(HERE + ":") for at in lines), lines
    assert any(e["args"]["awaiting"] == "sleep" for e in workers)
    assert len(workers) >= 3 * 11  # first step, one per sleep
    # Flows: each worker's wake-ups come from the timer callback that ended
    # its sleep, and the first step of each from main's create_task.
    starts = {e["id"]: e for e in events if e["ph"] == "s"}
    finishes = {e["id"]: e for e in events if e["ph"] == "f"}
    assert starts.keys() == finishes.keys() and len(starts) >= 30
    cb_tid = next(t for t, n in tracks.items() if n == "callbacks")
    from_callbacks = [i for i, s in starts.items() if (s["pid"], s["tid"]) == cb_tid]
    assert len(from_callbacks) >= 30
    # Counters.
    names = {e["name"] for e in events if e["ph"] == "C"}
    assert names == {"ready queue", "loop lag (ms)"}
    waits = [e for e in events if e.get("cat") == "io"]
    assert waits and all("timeout" in e["args"] and "events" in e["args"] for e in waits)


def test_the_checker_is_strict():
    named = [
        {"ph": "M", "name": "thread_name", "pid": 1, "tid": t, "args": {"name": str(t)}} for t in (1, 2)
    ]

    def x(ts, dur, tid=1):
        return {"ph": "X", "name": "s", "ts": ts, "dur": dur, "pid": 1, "tid": tid}

    good = [*named, x(0, 10), x(2, 3), x(20, 5, 2),
            {"ph": "s", "id": 1, "ts": 5, "pid": 1, "tid": 1, "name": "w", "cat": "w"},
            {"ph": "f", "id": 1, "ts": 20, "pid": 1, "tid": 2, "name": "w", "cat": "w", "bp": "e"},
            {"ph": "C", "name": "c", "ts": 1, "pid": 1, "args": {"v": 1}}]
    assert trace.check(good) == []
    bad = {
        "overlap": [*named, x(0, 10), x(5, 10)],
        "out of order": [*named, x(10, 1), x(0, 1)],
        "unnamed track": [x(0, 1, tid=3)],
        "flow without finish": [*named, x(0, 10), {"ph": "s", "id": 2, "ts": 1, "pid": 1, "tid": 1}],
        "flow outside a slice": [*named, x(0, 10), x(20, 5, 2),
                                 {"ph": "s", "id": 3, "ts": 15, "pid": 1, "tid": 1},
                                 {"ph": "f", "id": 3, "ts": 20, "pid": 1, "tid": 2}],
        "flow backwards": [*named, x(0, 10), x(20, 5, 2),
                           {"ph": "s", "id": 4, "ts": 21, "pid": 1, "tid": 2},
                           {"ph": "f", "id": 4, "ts": 5, "pid": 1, "tid": 1}],
        "counter back": [{"ph": "C", "name": "c", "ts": 5, "pid": 1, "args": {"v": 1}},
                         {"ph": "C", "name": "c", "ts": 1, "pid": 1, "args": {"v": 2}}],
        "negative dur": [*named, x(0, -1)],
    }
    for what, events in bad.items():
        assert trace.check(events), what


def test_a_flight_recorder_keeps_the_last_records_and_still_checks(loop_name, tmp_path):
    tidal_only(loop_name)
    session = trace.start(flight_recorder=40)
    try:
        tidal.run(_program())
        assert all(len(t.events) <= 40 for t in session.tracers)
        path = trace.dump(str(tmp_path / "flight.json"))
    finally:
        trace.stop()
    with open(path) as f:
        data = json.load(f)
    assert trace.check(data) == []
    assert 0 < sum(e["ph"] == "X" for e in data["traceEvents"]) <= 40


def test_a_flight_recorder_of_any_size_dumps_a_trace_that_checks(loop_name):
    """Wherever the ring begins (inside a step whose beginning it lost,
    with a wake-up made there still in it), every flow has both ends."""
    tidal_only(loop_name)
    for size in range(8, 64):
        _, data = _traced(_program, flight_recorder=size)
        assert trace.check(data) == [], size


def test_a_flight_recorder_dumped_mid_step_closes_the_open_slice(loop_name, tmp_path):
    tidal_only(loop_name)
    session = trace.start(flight_recorder=1000)

    async def main():
        await asyncio.sleep(0)
        return session.trace()  # inside a step: it is still open

    try:
        data = tidal.run(main())
    finally:
        trace.stop()
    assert trace.check(data) == []
    unfinished = [e for e in data["traceEvents"] if e.get("args", {}).get("unfinished")]
    assert [e["name"] for e in unfinished] == ["test_a_flight_recorder_dumped_mid_step_closes_the_open_slice.<locals>.main"]


def test_a_session_traces_the_running_loop_and_every_new_one(loop_name, tmp_path):
    tidal_only(loop_name)
    out = tmp_path / "t.json"

    async def main():
        trace.start(str(out))  # from inside: the running loop is traced from here on
        await asyncio.sleep(0)

    tidal.run(main())
    tidal.run(asyncio.sleep(0))  # a second loop: traced too
    assert trace.stop() == str(out)
    data = json.loads(out.read_text())
    assert trace.check(data) == []
    pids = {e["pid"] for e in data["traceEvents"] if e["ph"] == "X"}
    assert pids == {1, 2}
    trace.start()
    try:
        with pytest.raises(RuntimeError, match="already on"):
            trace.start()
    finally:
        trace.stop()


def test_each_step_says_which_wake_up_queued_it_and_how_long_it_waited(loop_name):
    """A step's flow is its wake-up's, its lag the time from that wake-up;
    a step queued outside any step or callback has a lag and no flow."""
    tidal_only(loop_name)

    async def child():
        await asyncio.sleep(0)

    async def main():
        await asyncio.create_task(child(), name="child")

    loop = tidal.new_event_loop()
    try:
        tracer = trace.Tracer(loop)
        loop.add_instrument(tracer)
        task = loop.create_task(main(), name="main")  # (the loop is not running)
        loop.run_until_complete(task)
    finally:
        loop.close()
    events = tracer.events
    steps = [r for r in events if r[1] == STEP]
    wakes = {r[3]: r for r in events if r[1] == WAKE}
    assert all(wakes)  # (flow 0 is no wake-up given out)
    first, *woken = steps
    assert first[2] is task and first[6] == 0 and first[7] >= 0
    assert len(woken) == 3  # child twice, then main again
    for ts, _, stepped, _, _, _, flow, lag in woken:
        wake = wakes[flow]
        assert wake[2] is stepped and lag == ts - wake[0]


def _python_task_factory(loop, coro, **kwargs):
    # asyncio's Python Task: its steps are bound Python methods, not the C
    # Task's step wrapper (the dispatch tells them from other callbacks).
    return asyncio.tasks._PyTask(coro, loop=loop, **kwargs)


def test_python_tasks_steps_are_traced_as_steps(loop, loop_name):
    loop.set_task_factory(_python_task_factory)
    assert loop.run_until_complete(_program()) == sorted(list(range(10)) * 3)
    if loop_name == "asyncio":
        return  # (the program runs the same; tracing is tidal's)
    loop.set_task_factory(None)
    tracer = trace.Tracer(loop)
    loop.add_instrument(tracer)
    loop.set_task_factory(_python_task_factory)
    loop.run_until_complete(_program())
    loop.remove_instrument(tracer)
    steps = [r for r in tracer.events if r[1] == STEP]
    tasks = {r[2] for r in steps}
    assert all(type(t) is asyncio.tasks._PyTask for t in tasks)
    assert {t.get_name() for t in tasks} >= {"worker-0", "worker-1", "worker-2"}
    # Each sleep's end wakes its worker: a step's flow comes from the timer.
    assert sum(1 for r in steps if r[6]) >= 30
    assert trace.check(chrome_events([tracer])) == []
    callbacks = [r for r in tracer.events if r[1] == CALL]
    assert not any(getattr(r[2], "__self__", None) in tasks for r in callbacks)


@types.coroutine
def _yield_once():
    yield  # a generator-based awaitable (a bare yield: the task steps again at once)


async def _read_four(reader):
    data = await reader.readexactly(4)  # asyncio's coroutines below this frame
    await _yield_once()
    return data


async def _four_back(reader, writer):
    for _ in range(3):
        writer.write(await _read_four(reader))
    writer.close()


async def _stream_program():
    server = await asyncio.start_server(_four_back, "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])
    got = []
    for i in range(3):
        writer.write(b"%04d" % i)
        got.append(await _read_four(reader))
        await asyncio.sleep(0.001)
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()
    return got


class _WhereFromFrames:
    """An instrument that reads, as each step begins, where it resumes from
    the frames themselves (f_lineno): what the trace must say."""

    ASYNCIO_DIR = os.path.dirname(asyncio.__file__) + os.sep

    def __init__(self):
        self.steps = {}

    def before_task_step(self, task):
        awaitable, at, inner = task.get_coro(), None, None
        while True:
            if isinstance(awaitable, types.CoroutineType):
                frame, awaited = awaitable.cr_frame, awaitable.cr_await
            elif isinstance(awaitable, types.GeneratorType):
                frame, awaited = awaitable.gi_frame, awaitable.gi_yieldfrom
            else:
                break
            if frame is None:
                break
            if at is None or not frame.f_code.co_filename.startswith(self.ASYNCIO_DIR):
                at = frame
            inner, awaitable = frame, awaited
        self.steps.setdefault(task.get_name(), []).append(
            (task.get_coro().__qualname__, f"{at.f_code.co_filename}:{at.f_lineno}", inner.f_code.co_qualname)
        )


def _trace_stream_program(loop, other):
    """_stream_program's trace events (checked), with `other` on the loop too."""
    tracer = trace.Tracer(loop)
    loop.add_instrument(tracer)
    loop.add_instrument(other)
    loop.run_until_complete(_stream_program())
    loop.remove_instrument(other)
    loop.remove_instrument(tracer)
    events = chrome_events([tracer])
    assert trace.check(events) == []
    return events


def test_each_step_says_where_it_resumed_as_its_frames_do(loop, loop_name):
    assert loop.run_until_complete(_stream_program()) == [b"0000", b"0001", b"0002"]
    if loop_name == "asyncio":
        return  # (the program runs the same; tracing is tidal's)
    frames = _WhereFromFrames()
    events = _trace_stream_program(loop, frames)
    tracks = {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e.get("name") == "thread_name"}
    steps = {}
    for e in sorted((e for e in events if e.get("cat") == "step"), key=lambda e: e["ts"]):
        steps.setdefault(tracks[(e["pid"], e["tid"])], []).append((e["name"], e["args"]["at"], e["args"]["awaiting"]))
    assert steps == frames.steps
    # Unstarted coroutines, user frames above asyncio's, a generator's: all seen.
    said = [step for task_steps in steps.values() for step in task_steps]
    assert {"sleep", "StreamReader._wait_for_data", "_yield_once"} <= {awaiting for _, _, awaiting in said}
    assert sum(1 for _, at, _ in said if at.startswith(HERE + ":")) >= 12
    # The transports' reads: told to a lone tracer without a Handle, named
    # as the Handle's callback is when another instrument wants callbacks.
    callbacks = {e["name"] for e in events if e.get("cat") == "callback"}
    assert "StreamTransport._read_ready" in callbacks
    seen = _CallbackNames()
    events = _trace_stream_program(loop, seen)
    assert {e["name"] for e in events if e.get("cat") == "callback"} == seen.names == callbacks


async def _inner_wait():
    await asyncio.sleep(0)  # asyncio's coroutine, and its bare-yield generator below


async def _middle(k):
    await _inner_wait()
    return k


async def _many_steps(n):
    return [await _middle(k) for k in range(n)]


def test_where_a_step_resumes_holds_once_the_interpreter_specialised_the_code(loop, loop_name):
    # Forty steps through the same four levels: past the point where 3.11
    # quickens the code (the RESUME after an await is rewritten), which the
    # compiled walk reads (_recorder.gen_await).
    assert loop.run_until_complete(_many_steps(40)) == list(range(40))
    if loop_name == "asyncio":
        return  # (the program runs the same; tracing is tidal's)
    frames = _WhereFromFrames()
    tracer = trace.Tracer(loop)
    loop.add_instrument(tracer)
    loop.add_instrument(frames)
    loop.run_until_complete(loop.create_task(_many_steps(40), name="many"))
    loop.remove_instrument(frames)
    loop.remove_instrument(tracer)
    events = chrome_events([tracer])
    assert trace.check(events) == []
    tracks = {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e.get("name") == "thread_name"}
    steps = [
        (e["name"], e["args"]["at"], e["args"]["awaiting"])
        for e in sorted((e for e in events if e.get("cat") == "step"), key=lambda e: e["ts"])
        if tracks[(e["pid"], e["tid"])] == "many"
    ]
    assert steps == frames.steps["many"]
    assert len(steps) == 41
    assert {awaiting for _, _, awaiting in steps[1:]} == {"__sleep0"}
    assert all(at.startswith(HERE + ":") for _, at, _ in steps)


class _CallbackNames:
    def __init__(self):
        self.names = set()

    def before_callback(self, handle):
        self.names.add(callback_name(handle._callback))


def test_a_tracer_whose_clock_fails_is_removed_and_the_loop_goes_on(loop, loop_name, caplog):
    assert loop.run_until_complete(_program()) == sorted(list(range(10)) * 3)
    if loop_name == "asyncio":
        return  # (the program runs the same; tracing is tidal's)
    ticks = []

    def clock():
        ticks.append(None)
        if len(ticks) == 50:
            raise RuntimeError("clock bug")
        return time.monotonic_ns()

    tracer = trace.Tracer(loop, maxlen=1000, clock=clock)
    loop.add_instrument(tracer)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        assert loop.run_until_complete(_program()) == sorted(list(range(10)) * 3)
    assert loop._instruments is None  # removed after its first error...
    records = [r for r in caplog.records if "clock bug" in str(r.exc_info)]
    assert len(records) == 1 and "removed" in records[0].getMessage()  # ... logged once
    assert len(ticks) == 50
    # What it recorded before is whole, and still checks.
    assert 0 < len(tracer.events) < 50
    assert trace.check(chrome_events([tracer])) == []


async def _echo_streams(rounds):
    async def echo(reader, writer):
        while data := await reader.read(100):
            writer.write(data)
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])
    got = []
    for i in range(rounds):
        writer.write(b"%d;" % i)
        got.append(await reader.readuntil(b";"))
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()
    return got


def test_a_tracer_failing_in_any_hook_is_removed_and_the_streams_go_on(loop, loop_name, caplog):
    """Whichever record fails (an I/O wait's, a read's, a step's...), the
    tracer is removed, its error logged once, and nothing else changes."""
    expected = [b"%d;" % i for i in range(5)]
    assert loop.run_until_complete(_echo_streams(5)) == expected
    if loop_name == "asyncio":
        return  # (the program runs the same; tracing is tidal's)
    for fail_at in range(1, 60, 3):
        ticks = []

        def clock():
            ticks.append(None)
            if len(ticks) == fail_at:
                raise RuntimeError("clock bug")
            return time.monotonic_ns()

        tracer = trace.Tracer(loop, maxlen=1000, clock=clock)
        loop.add_instrument(tracer)
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            assert loop.run_until_complete(_echo_streams(5)) == expected
        assert loop._instruments is None, fail_at
        records = [r for r in caplog.records if "clock bug" in str(r.exc_info)]
        assert len(records) == 1 and "removed" in records[0].getMessage()
        assert len(ticks) == fail_at
        assert trace.check(chrome_events([tracer])) == []



def test_a_tracer_and_an_instrument_see_the_same_io_waits(loop, loop_name):
    """A tracer and a user instrument on one loop, the instrument taken off
    while the loop runs: until then both are told each I/O wait of a streams
    echo, the same waits in the same order, with the same timeout and event
    count (compiled, the wait is the poller's C call); after, the tracer
    alone goes on recording every wait, and the trace checks."""

    async def main(waits):
        first = await _echo_streams(5)
        # (A wait with a timeout, a float: long enough to be one still when
        # the poll comes, on a machine loaded enough to hold the process up.)
        await asyncio.sleep(0.05)
        asyncio.get_running_loop().remove_instrument(waits)
        return first, len(seen), await _echo_streams(5)

    expected = [b"%d;" % i for i in range(5)]
    seen = []

    class Waits:
        def before_io_wait(self, timeout):
            seen.append((WAIT, timeout))

        def after_io_wait(self, nevents):
            seen.append((WAIT_END, nevents))

    if loop_name == "asyncio":
        # (The program runs the same there; instruments are tidal's.)
        assert loop.run_until_complete(_echo_streams(5)) == expected
        return
    tracer = trace.Tracer(loop)
    loop.add_instrument(tracer)
    loop.add_instrument(Waits())
    waits = loop._instruments.instruments[-1]
    first, both, second = loop.run_until_complete(main(waits))
    loop.remove_instrument(tracer)
    assert first == second == expected
    recorded = [(r[1], r[2]) for r in tracer.events if r[1] in (WAIT, WAIT_END)]
    assert recorded[:both] == seen[:both] and len(seen) == both
    assert [kind for kind, _ in recorded] == [WAIT, WAIT_END] * (len(recorded) // 2)
    assert any(isinstance(t, float) and t > 0 for kind, t in seen if kind == WAIT)
    # Ready fds were seen, with the instrument and after it was gone.
    assert any(n for kind, n in recorded[:both] if kind == WAIT_END)
    assert any(n for kind, n in recorded[both:] if kind == WAIT_END)
    assert trace.check(chrome_events([tracer])) == []


SCRIPT = textwrap.dedent(
    """
    import asyncio, sys

    async def pinger(n):
        for _ in range(n):
            await asyncio.sleep(0.001)

    async def main():
        loop = asyncio.get_running_loop()
        print(type(loop).__module__, sys.argv[1:])
        await asyncio.gather(*(asyncio.create_task(pinger(5), name=f"pinger-{i}") for i in range(2)))

    asyncio.run(main())
    sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    """
)


def _python(*args, env=None, **kw):
    full_env = dict(os.environ)
    full_env.pop("TIDAL_TRACE", None)
    full_env.update(env or {})
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=full_env, timeout=60, **kw)


def test_the_command_line_traces_an_unmodified_program(loop_name, tmp_path):
    tidal_only(loop_name)
    script = tmp_path / "prog.py"
    script.write_text(SCRIPT)
    out = tmp_path / "trace.json"
    proc = _python("-m", "tidal", "trace", "-o", str(out), str(script), "3", "--flag")
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.split("\n")[0] == "tidal._loop ['3', '--flag']"
    data = json.loads(out.read_text())
    assert trace.check(data) == []
    names = {e["args"]["name"] for e in data["traceEvents"] if e.get("name") == "thread_name"}
    assert {"pinger-0", "pinger-1"} <= names
    summary = _python("-m", "tidal", "trace", "--summary", str(out))
    assert summary.returncode == 0
    assert "Busiest tasks" in summary.stdout and "pinger-0" in summary.stdout
    assert "Worst lags" in summary.stdout
    checked = _python("-m", "tidal", "trace", "--check", str(out))
    assert checked.returncode == 0 and "0 problem(s)" in checked.stderr


def test_run_runs_an_unmodified_program_on_tidal(loop_name, tmp_path):
    tidal_only(loop_name)
    script = tmp_path / "prog.py"
    script.write_text(SCRIPT)
    proc = _python("-m", "tidal", "run", str(script), "0")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("tidal._loop ['0']")
    # And a module, as python -m runs it.
    proc = _python("-m", "tidal", "run", "-m", "prog", "4", cwd=tmp_path, env={"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})
    assert proc.returncode == 4, proc.stderr
    assert proc.stdout.startswith("tidal._loop ['4']")


def test_tidal_trace_environment_variable(loop_name, tmp_path):
    tidal_only(loop_name)
    script = tmp_path / "prog.py"
    # A program that makes its own tidal loop: TIDAL_TRACE traces it.
    script.write_text("import tidal\n" + SCRIPT.replace("asyncio.run(main())", "tidal.run(main())"))
    out = tmp_path / "env.json"
    proc = _python(str(script), env={"TIDAL_TRACE": str(out)})
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert trace.check(data) == []
    assert any(e.get("args", {}).get("name") == "pinger-1" for e in data["traceEvents"])


def test_a_flight_recorder_dumps_on_a_signal(loop_name, tmp_path):
    tidal_only(loop_name)
    script = tmp_path / "prog.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio, os, signal, sys, tidal

            async def spin():
                while True:
                    await asyncio.sleep(0.001)

            async def main():
                asyncio.create_task(spin(), name="spinner")
                await asyncio.sleep(0.05)
                os.kill(os.getpid(), signal.SIGUSR2)
                await asyncio.sleep(0.05)
                print("ran on")

            tidal.run(main())
            """
        )
    )
    proc = _python(str(script), env={"TIDAL_FLIGHT_RECORDER": "200"}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ran on"
    dumped = tmp_path / f"tidal-flight-{_pid_of(tmp_path)}.json"
    data = json.loads(dumped.read_text())
    assert trace.check(data) == []
    assert any(e.get("args", {}).get("name") == "spinner" for e in data["traceEvents"])


def test_a_flight_recorder_is_written_while_the_watchdog_reports_a_stall(loop_name, tmp_path):
    tidal_only(loop_name)
    script = tmp_path / "prog.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio, glob, time, tidal

            async def blocker():
                await asyncio.sleep(0.01)
                time.sleep(0.5)  # holds the loop
                return glob.glob("tidal-flight-*.json")

            async def main():
                return await asyncio.create_task(blocker(), name="blocker")

            print(tidal.run(main()))
            """
        )
    )
    proc = _python(str(script), env={"TIDAL_FLIGHT_RECORDER": "500", "TIDAL_WATCHDOG": "0.05"}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    # Written while the step was still blocking: the step itself saw the file.
    assert proc.stdout.strip().startswith("['tidal-flight-"), (proc.stdout, proc.stderr)
    assert "flight recorder written to" in proc.stderr
    data = json.loads(next(tmp_path.glob("tidal-flight-*.json")).read_text())
    assert trace.check(data) == []
    unfinished = [e for e in data["traceEvents"] if e.get("args", {}).get("unfinished")]
    assert [e["name"] for e in unfinished if e.get("cat") == "step"] == ["blocker"]


def _pid_of(directory: Path) -> str:
    (only,) = [p.name for p in directory.glob("tidal-flight-*.json")]
    return only[len("tidal-flight-") : -len(".json")]


def test_an_aiohttp_server_and_its_clients_traced_end_to_end(loop_name, loop_factory):
    aiohttp = pytest.importorskip("aiohttp")
    from aiohttp import web

    async def handler(request):
        await asyncio.sleep(0.001)
        return web.Response(text="hi " + request.match_info["n"])

    async def program():
        app = web.Application()
        app.router.add_get("/{n}", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        try:
            async with aiohttp.ClientSession() as client:

                async def fetch(i):
                    async with client.get(f"http://127.0.0.1:{port}/{i}") as resp:
                        return await resp.text()

                return await asyncio.gather(*(asyncio.create_task(fetch(i), name=f"client-{i}") for i in range(8)))
        finally:
            await runner.cleanup()

    expected = [f"hi {i}" for i in range(8)]
    loop = loop_factory()
    try:
        assert loop.run_until_complete(program()) == expected  # the same on both loops
    finally:
        loop.close()
    tidal_only(loop_name)
    result, data = _traced(program)
    assert result == expected
    assert trace.check(data) == []
    events = data["traceEvents"]
    names = {e["args"]["name"] for e in events if e.get("name") == "thread_name"}
    assert {f"client-{i}" for i in range(8)} <= names
    steps = [e for e in events if e.get("cat") == "step"]
    # The request handlers ran as tasks of aiohttp's, each stepping in `handler`.
    assert any(HERE in e["args"]["at"] for e in steps)
    # The clients' wake-ups come from I/O: the transports' read callbacks.
    callbacks = {e["id"]: e for e in events if e["ph"] == "s"}
    read_wakes = [
        s for s in callbacks.values()
        if any(c.get("cat") == "callback" and c["tid"] == s["tid"] and c["ts"] <= s["ts"] <= c["ts"] + c["dur"]
               and "read_ready" in c["name"] for c in events if c["ph"] == "X")
    ]
    assert read_wakes, "no task was woken from a read callback"


def test_png_draws_the_timeline_of_a_real_trace(loop_name, tmp_path):
    tidal_only(loop_name)
    image_module = pytest.importorskip("PIL.Image")
    from tidal.trace._png import IO_WAIT, _colour

    _, data = _traced(_program)
    traced = tmp_path / "trace.json"
    traced.write_text(json.dumps(data))
    out = tmp_path / "trace.png"
    proc = _python("-m", "tidal", "trace", "--png", str(out), "--width", "1000", str(traced))
    assert proc.returncode == 0, proc.stderr
    with image_module.open(out) as image:
        assert image.format == "PNG" and image.width == 1000
        colours = {colour for _, colour in image.convert("RGB").getcolors(1_000_000)}
    # The workers' steps (one colour per slice name), the I/O waits, drawn.
    assert _colour("_worker") in colours and IO_WAIT in colours
    # A window of it, and a window with nothing in it.
    zoom = _python("-m", "tidal", "trace", "--png", str(out), "--window", "1:3", str(traced))
    assert zoom.returncode == 0, zoom.stderr
    empty = _python("-m", "tidal", "trace", "--png", str(out), "--window", "3:1", str(traced))
    assert empty.returncode == 1 and "empty window" in empty.stderr


def test_png_without_pillow_says_how_to_get_it(tmp_path):
    traced = tmp_path / "trace.json"
    traced.write_text(json.dumps({"traceEvents": []}))
    # As if Pillow were not installed: its import fails.
    code = (
        "import sys; sys.modules['PIL'] = None; from tidal.__main__ import main; "
        f"sys.exit(main(['trace', '--png', {str(tmp_path / 'x.png')!r}, {str(traced)!r}]))"
    )
    proc = _python("-c", code)
    assert proc.returncode == 1
    assert "pip install 'tidal[png]'" in proc.stderr, proc.stderr
