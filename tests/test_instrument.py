"""Instruments (loop.add_instrument, tidal.run(instruments=...)): what they are told.

Instruments are tidal's: asyncio's loop has no add_instrument, so each test
takes the `loop_name` parametrization and says so for asyncio (as the suite
does for tidal's other seams), after checking that the program under
observation behaves the same there.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time

import pytest

import tidal
from tidal._instrument import HOOKS
from tidal.abc import Instrument

NOT_ON_ASYNCIO = "tidal's instruments: asyncio's loop has no add_instrument"


class Log:
    """Records every hook, with what it was given."""

    def __init__(self):
        self.events = []

    def __getattr__(self, name):
        if name not in HOOKS:
            raise AttributeError(name)
        return lambda *args: self.events.append((name, *args))

    def names(self):
        return [e[0] for e in self.events]




def test_the_hooks_are_the_ones_documented():
    assert set(HOOKS) == {"before_run", "after_run", "task_spawned", "task_scheduled", "before_task_step", "after_task_step", "task_exited", "before_callback", "after_callback", "before_io_wait", "after_io_wait"}  # noqa: E501


def tidal_only(loop_name):
    if loop_name == "asyncio":
        pytest.skip(NOT_ON_ASYNCIO)


async def _child(fut):
    return await fut


async def _program():
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    child = loop.create_task(_child(fut), name="child")
    loop.call_soon(fut.set_result, 7)
    await asyncio.sleep(0.001)
    return await child


def test_the_program_observed_runs_the_same_on_both_loops(loop, loop_name):
    # What the instrument tests below watch, without any instrument.
    assert loop.run_until_complete(_program()) == 7


def test_a_task_life_in_order(loop_name, loop_factory):
    tidal_only(loop_name)
    log = Log()
    assert tidal.run(_program(), instruments=[log]) == 7
    names = log.names()
    # (asyncio.Runner makes the main task before it runs the loop.)
    assert names[:3] == ["task_spawned", "task_scheduled", "before_run"]
    assert names[-1] == "after_run"
    tasks = {e[1] for e in log.events if e[0] == "task_spawned"}
    child = next(t for t in tasks if t.get_name() == "child")
    main = next(t for t in tasks if t.get_coro().__name__ == "_program")
    for task in (main, child):
        mine = [e[0] for e in log.events if len(e) > 1 and e[1] is task]
        # Spawned first, then its first step queued; every step queued
        # before it runs, before/after in pairs; exited once, last.
        assert mine[:2] == ["task_spawned", "task_scheduled"]
        assert mine[-1] == "task_exited" and mine.count("task_exited") == 1
        body = mine[1:-1]
        assert body.count("before_task_step") == body.count("after_task_step") >= 2
        pending = 0
        for name in body:
            if name == "task_scheduled":
                pending += 1
            elif name == "before_task_step":
                assert pending == 1
                pending -= 1
        assert pending == 0
    # Steps are never reported as plain callbacks.
    for e in log.events:
        if e[0] in ("before_callback", "after_callback"):
            assert tidal._instrument.task_of(e[1]) is None


def test_the_waker_runs_when_a_task_is_scheduled(loop_name, loop_factory):
    tidal_only(loop_name)
    log = Log()
    waker_running = []

    class Watch:
        current = None

        def before_callback(self, handle):
            self.current = handle

        def after_callback(self, handle):
            self.current = None

        def task_scheduled(self, task):
            waker_running.append((task.get_name(), self.current))

    watch = Watch()

    async def main():
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        child = loop.create_task(_child(fut), name="child")
        await asyncio.sleep(0)
        handle = loop.call_soon(fut.set_result, 1)
        await child
        return handle

    handle = tidal.run(main(), instruments=[log, watch])
    # The child's wake-up was queued while fut.set_result (a plain callback) ran.
    assert ("child", handle) in waker_running


def test_plain_callbacks_and_io_waits(loop_name, loop_factory):
    tidal_only(loop_name)
    loop = loop_factory()
    try:
        log = Log()
        loop.add_instrument(log)
        fut = loop.create_future()
        timer = loop.call_later(0.02, fut.set_result, None)
        loop.run_until_complete(fut)
        waits = [e[1] for e in log.events if e[0] == "before_io_wait"]
        assert any(t is not None and 0 < t <= 0.02 for t in waits)
        assert ("before_callback", timer) in log.events
        assert ("after_callback", timer) in log.events
        log.events.clear()
        # A bound method of a task is a plain callback unless it is the task's step.
        task = loop.create_task(asyncio.sleep(10))
        cancel = loop.call_soon(task.cancel)
        with pytest.raises(asyncio.CancelledError):
            loop.run_until_complete(task)
        assert ("before_callback", cancel) in log.events
        assert ("task_exited", task) in log.events
        # A wake-up byte from another thread: one ready fd after the wait.
        log.events.clear()
        def later():
            time.sleep(0.01)
            loop.call_soon_threadsafe(loop.stop)

        thread = threading.Thread(target=later)
        thread.start()
        loop.run_forever()
        thread.join()
        assert ("before_io_wait", None) in log.events
        assert ("after_io_wait", 1) in log.events
    finally:
        loop.close()


def test_missing_methods_cost_nothing(loop_name, loop_factory):
    tidal_only(loop_name)
    loop = loop_factory()
    try:

        class OnlySteps(Instrument):  # the protocol's no-op defaults are skipped
            def before_task_step(self, task):
                self.seen = task

        only = OnlySteps()
        loop.add_instrument(only)
        hooks = loop._instruments
        assert hooks.before_task_step == [only.before_task_step]
        for name in ("before_callback", "after_callback", "task_scheduled", "before_io_wait"):
            assert getattr(hooks, name) == []
        # No task_scheduled: call_soon queues straight into the deque.
        assert loop._soon_append == loop._ready.append

        async def main():
            return asyncio.current_task()

        assert loop.run_until_complete(main()) is only.seen
        loop.remove_instrument(only)
        assert loop._instruments is None
        with pytest.raises(KeyError):
            loop.remove_instrument(only)
    finally:
        loop.close()


@pytest.mark.parametrize(
    "hook", ["before_callback", "after_callback", "before_io_wait", "task_scheduled"]
)
def test_an_instrument_that_raises_is_removed_and_nothing_is_lost(
    loop_name, loop_factory, hook, caplog
):
    tidal_only(loop_name)
    loop = loop_factory()
    ran = []

    class Bad:
        calls = 0

        def boom(self, *args):
            Bad.calls += 1
            raise RuntimeError("instrument bug")

    bad = Bad()
    setattr(bad, hook, bad.boom)
    good = Log()
    try:
        loop.add_instrument(bad)
        loop.add_instrument(good)

        async def step():
            # A real wait for the poller (a turn that has callbacks ready and
            # no fd to watch skips the poll: no I/O wait to report).
            await asyncio.sleep(0.001)
            ran.append("task")

        with caplog.at_level(logging.ERROR, logger="asyncio"):
            handles = [loop.call_soon(ran.append, i) for i in range(3)]
            task = loop.create_task(step())
            loop.call_soon(loop.stop)
            loop.run_forever()
            loop.run_until_complete(task)
        # Every callback ran (the one whose hook raised too), the task ran;
        # the instrument was removed after its first error, logged once.
        assert ran[:3] == [0, 1, 2] and "task" in ran
        assert Bad.calls == 1
        records = [r for r in caplog.records if "instrument bug" in str(r.exc_info)]
        assert len(records) == 1 and records[0].name == "asyncio"
        assert "removed" in records[0].getMessage()
        assert loop._instruments.instruments == [good]
        # The other instrument saw everything.
        for h in handles:
            assert ("after_callback", h) in good.events
    finally:
        loop.close()


def test_an_instrument_raising_in_a_task_step_hook_leaves_the_task_running(
    loop_name, loop_factory, caplog
):
    tidal_only(loop_name)

    class Bad:
        def before_task_step(self, task):
            raise ValueError("step hook")

    async def main():
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return 5

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        assert tidal.run(main(), instruments=[Bad()]) == 5
    assert sum("step hook" in str(r.exc_info) for r in caplog.records) == 1


def test_keyboard_interrupt_from_an_instrument_propagates(loop_name, loop_factory):
    tidal_only(loop_name)
    loop = loop_factory()

    class Interrupt:
        def before_callback(self, handle):
            raise KeyboardInterrupt

    try:
        loop.add_instrument(Interrupt())
        loop.call_soon(lambda: None)
        with pytest.raises(KeyboardInterrupt):
            loop.run_forever()
    finally:
        loop.close()


def test_added_twice_is_added_once_and_run_sees_before_and_after(loop_name, loop_factory):
    tidal_only(loop_name)
    loop = loop_factory()
    try:
        log = Log()
        loop.add_instrument(log)
        loop.add_instrument(log)
        loop.run_until_complete(asyncio.sleep(0))
        names = log.names()
        assert names.count("before_run") == 1 and names.count("after_run") == 1
        assert names.count("task_spawned") == 1
    finally:
        loop.close()


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks are new in 3.12")
def test_an_eager_task_that_finishes_in_create_task(loop_name, loop_factory):
    tidal_only(loop_name)
    loop = loop_factory()
    try:
        loop.set_task_factory(asyncio.eager_task_factory)
        log = Log()
        loop.add_instrument(log)

        async def quick():
            return 1

        async def main():
            t = asyncio.get_running_loop().create_task(quick())
            assert t.done()
            return t

        t = loop.run_until_complete(main())
        mine = [e[0] for e in log.events if len(e) > 1 and e[1] is t]
        assert mine == ["task_spawned", "task_exited"]
    finally:
        loop.close()


def test_debug_mode_source_traceback_is_the_callers_with_an_instrument(loop_name, loop_factory):
    tidal_only(loop_name)
    loop = loop_factory()
    try:
        loop.set_debug(True)
        loop.add_instrument(Log())

        async def main():
            return asyncio.get_running_loop().create_task(asyncio.sleep(0))

        task = loop.run_until_complete(main())
        assert task._source_traceback[-1].filename == __file__
        loop.run_until_complete(task)
    finally:
        loop.close()


@pytest.mark.usefixtures("blocking_on_purpose")
def test_debug_slow_callback_warning_stays_with_an_instrument(loop_name, loop_factory, caplog):
    tidal_only(loop_name)
    loop = loop_factory()
    try:
        loop.set_debug(True)
        loop.slow_callback_duration = 0.01
        log = Log()
        loop.add_instrument(log)
        h = loop.call_soon(time.sleep, 0.02)
        loop.call_soon(loop.stop)
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            loop.run_forever()
        assert ("after_callback", h) in log.events
        assert any("took" in r.getMessage() for r in caplog.records)
        # Debug off, instrument removed: the turn's fast path again.
        loop.set_debug(False)
        loop.remove_instrument(log)
        assert not loop._observed
    finally:
        loop.close()


class _SchedulingThreads:
    """Notes the thread each task_scheduled is reported in."""

    def __init__(self):
        self.threads = []

    def task_scheduled(self, task):
        self.threads.append(threading.get_ident())


def test_steps_are_reported_on_the_thread_the_loop_runs_in_each_time(loop, loop_name):
    # One loop run from this thread, then from another, then a task queued
    # while it does not run: each time, the steps queued are reported there.
    assert loop.run_until_complete(_program()) == 7
    if loop_name == "asyncio":
        return  # (the program runs the same; instruments are tidal's)
    seen = _SchedulingThreads()
    loop.add_instrument(seen)
    assert loop.run_until_complete(_program()) == 7
    here = threading.get_ident()
    assert seen.threads and set(seen.threads) == {here}
    del seen.threads[:]
    results, other = [], threading.Thread(target=lambda: results.append(loop.run_until_complete(_program())))
    other.start()
    other.join()
    assert results == [7]
    assert seen.threads and set(seen.threads) == {other.ident}
    del seen.threads[:]
    task = loop.create_task(_child(loop.create_future()))
    assert seen.threads == [here]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)
    loop.remove_instrument(seen)
