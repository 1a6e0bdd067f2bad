"""The stall watchdog: a thread that reports a step holding the loop, while it does.

``loop.set_watchdog(0.1)`` (or ``TIDAL_WATCHDOG=0.1`` in the environment,
read when a loop starts running) gives the loop a thread of its own that
looks at it every quarter of the threshold.  What the loop pays is a
counter (``loop._turn``, a C field when compiled) bumped twice a turn,
around the wait for I/O, so it is odd while the loop waits in the poller
and even while it runs callbacks: the watchdog reads it without asking the
loop thread anything, and never makes it wait.

A *step* is what the watchdog sees running between two samples: the same
turn, the same task (asyncio's current task) and, for a plain callback, the
same outermost frame above the loop's own.  When one step has been seen for
longer than the threshold, the watchdog logs at WARNING on the ``asyncio``
logger (which reaches stderr in a program that configured no logging): how
long so far, the running task's name and its innermost coroutine frame, and
the loop thread's Python stack.  When the step ends (the loop moved on), it
logs once more with the total.  Durations are measured by sampling: short by
at most one sampling interval.

A step that holds the GIL without releasing it (a long C call) holds the
watchdog too: it reports when the GIL comes back, which is still before the
step ends if the step goes on running Python.

The thread holds only a weak reference to its loop, ends when the loop is
closed (``close()`` joins it: no watchdog thread outlives its loop) or the
watchdog is turned off, and sleeps between samples.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import weakref
from types import FrameType
from typing import Any, Callable

from . import _introspect

logger = logging.getLogger("asyncio")

ENV = "TIDAL_WATCHDOG"

# Sampling: every quarter of the threshold, within these bounds (seconds).
_MIN_INTERVAL = 0.001
_MAX_INTERVAL = 0.25

# Called on the watchdog's thread with (loop, report text) when a stall is
# first reported (the trace's flight recorder writes itself out from here).
stall_observers: list[Callable[[Any, str], object]] = []

# Files whose frames are the loop's own machinery, not a callback's.
_LOOP_FILES: set[str] = set()


def _loop_files() -> set[str]:
    if not _LOOP_FILES:
        from . import _handles, _instrument, _loop

        for module in (_loop, _handles, _instrument, sys.modules[__name__]):
            if module.__file__:
                _LOOP_FILES.add(module.__file__)
    return _LOOP_FILES


def threshold_from_env() -> float | None:
    """TIDAL_WATCHDOG's threshold in seconds (None: unset, empty, 0 or unreadable)."""
    value = os.environ.get(ENV, "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        logger.warning("%s=%r is not a number of seconds: no watchdog", ENV, value)
        return None
    return seconds if seconds > 0 else None


def check_threshold(seconds: float | None) -> float | None:
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"the watchdog's threshold must be a number of seconds or None, not {seconds!r}")
    if not seconds > 0:
        raise ValueError(f"the watchdog's threshold must be positive, not {seconds!r}")
    return float(seconds)


class Step:
    """What the watchdog saw running: its identity, and since when."""

    __slots__ = ("turn", "task", "frame", "since", "reported", "label")

    def __init__(self, turn: int, task: Any, frame: FrameType | None, since: float) -> None:
        self.turn = turn
        self.task = task
        self.frame = frame
        self.since = since
        self.reported = False
        self.label = ""

    def same(self, other: Step) -> bool:
        return self.turn == other.turn and self.task is other.task and self.frame is other.frame


class Watchdog:
    """One loop's watchdog thread (started by `start`, ended by `stop`)."""

    def __init__(self, loop: Any, threshold: float) -> None:
        self._loop = weakref.ref(loop)
        self.threshold = threshold
        self.interval = min(max(threshold / 4, _MIN_INTERVAL), _MAX_INTERVAL)
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def running(self) -> None:
        """The loop runs: start watching, if not already."""
        if self._thread is None and not self._stopped.is_set():
            self._thread = threading.Thread(
                target=self._watch, name=f"tidal-watchdog-{id(self._loop()):x}", daemon=True
            )
            self._thread.start()

    def stop(self, join: bool) -> None:
        """Stop watching; `join` waits for the thread (close() does: nothing outlives the loop)."""
        self._stopped.set()
        thread = self._thread
        if join and thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- the watchdog's thread -------------------------------------------

    def _watch(self) -> None:
        step: Step | None = None
        while not self._stopped.wait(self.interval):
            loop = self._loop()
            if loop is None or loop._closed:
                break
            seen = sample_step(loop)
            del loop
            if step is not None and (seen is None or not seen.same(step)):
                if step.reported:
                    self._report_end(step, time.monotonic())
                step = None
            if seen is None:
                continue
            if step is None:
                step = seen
            elif not step.reported and seen.since - step.since >= self.threshold:
                loop = self._loop()
                if loop is not None:
                    self._report_stall(loop, step, seen.since)
                del loop
        if step is not None and step.reported:
            self._report_end(step, time.monotonic())

    def _report_stall(self, loop: Any, step: Step, now: float) -> None:
        frames = _introspect.thread_frames(loop._thread_id)
        # Still the same step?  (It may have ended while the GIL was away.)
        if loop._turn != step.turn or _introspect.current_task(loop) is not step.task:
            return
        step.reported = True
        if step.task is not None:
            inner = _introspect.innermost_coroutine_frame(step.task, frames)
            where = f" in {_introspect.frame_location(inner)}" if inner is not None else ""
            step.label = f"a step of task {_introspect.task_name(step.task)!r}"
            what = f"{step.label}{where}"
        elif step.frame is not None:
            step.label = f"callback {_introspect.frame_location(step.frame)}"
            what = step.label
        else:
            step.label = what = "a callback"
        text = (
            f"tidal watchdog: {what} has blocked the event loop for {now - step.since:.3f} seconds "
            f"so far (threshold {self.threshold:g} s); the loop thread's stack:\n"
            + _introspect.format_frames(frames).rstrip("\n")
        )
        logger.warning("%s", text)
        for observer in list(stall_observers):
            try:
                observer(loop, text)
            except Exception:
                logger.exception("watchdog stall observer %r failed", observer)

    def _report_end(self, step: Step, now: float) -> None:
        logger.warning(
            "tidal watchdog: %s held the event loop for %.3f seconds in total", step.label, now - step.since
        )


# -- what the loop calls ---------------------------------------------------


def set_watchdog(loop: Any, seconds: float | None) -> None:
    """Report any callback or task step that holds the loop longer than `seconds`.

    Reported while it lasts, from a thread of the loop's own, at WARNING on
    the ``asyncio`` logger; None turns the watchdog off (and TIDAL_WATCHDOG
    is then ignored).  See docs/monitoring.md.
    """
    threshold = check_threshold(seconds)
    old = loop._watchdog
    if isinstance(old, Watchdog):
        # Not joined: this may be the loop thread, which never waits for it
        # (it ends within one interval; close() joins it).
        old.stop(join=False)
        _stopped_threads(loop).append(old)
    if threshold is None:
        loop._watchdog = False  # off, whatever TIDAL_WATCHDOG says
        return
    watchdog = Watchdog(loop, threshold)
    loop._watchdog = watchdog
    if loop.is_running():
        watchdog.running()


def sample_step(loop: Any) -> Step | None:
    """What runs on the loop now (None: it waits for I/O, or is not running).

    Read from any thread; the monitor's server samples with it too.
    """
    thread_id = loop._thread_id
    turn = loop._turn
    if thread_id is None or turn & 1:
        return None
    now = time.monotonic()
    task = _introspect.current_task(loop)
    frame = None
    if task is None:
        frame = _callback_frame(_introspect.thread_frames(thread_id), _introspect.loops_seen.get(loop, 0))
    return Step(turn, task, frame, now)


def _callback_frame(frames: list[FrameType], depth: int) -> FrameType | None:
    """The outermost frame above the loop's own: the plain callback's.

    `depth` frames called run_forever; then come the loop's (none compiled).
    """
    own = _loop_files()
    for frame in frames[depth:]:
        if frame.f_code.co_filename not in own:
            return frame
    return None


_stopped: weakref.WeakKeyDictionary[Any, list[Watchdog]] = weakref.WeakKeyDictionary()


def _stopped_threads(loop: Any) -> list[Watchdog]:
    return _stopped.setdefault(loop, [])


def loop_running(loop: Any) -> None:
    """The loop starts running: start its watchdog.

    TIDAL_WATCHDOG is read now, if the loop was given no watchdog.
    """
    watchdog = loop._watchdog
    if watchdog is None:
        threshold = threshold_from_env()
        if threshold is None:
            return
        watchdog = loop._watchdog = Watchdog(loop, threshold)
    if watchdog is not False:
        watchdog.running()


def loop_closed(loop: Any) -> None:
    """The loop is closed: end its watchdog thread(s), and wait for them."""
    watchdog = loop._watchdog
    if isinstance(watchdog, Watchdog):
        watchdog.stop(join=True)
    for old in _stopped.pop(loop, ()):
        old.stop(join=True)
