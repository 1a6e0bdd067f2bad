"""The Tracer: an instrument that records what one loop runs, cheaply.

Each hook appends one tuple to a list (or, for a flight recorder, to a
``deque(maxlen=N)``: the last N events) and does nothing else: no strings are
made and nothing is looked up that can wait.  Turning the records into a
timeline (names, tracks, flows, counters) is ``_chrome.py``'s work, done once
when the trace is written.

Records, all starting with a timestamp (``time.perf_counter_ns()``, or the
clock the Tracer is given: a simulation's virtual ns) and a kind:

  STEP      task, code, line, inner,      a task step begins; code/line: where
            flow, lag                     it resumes (the innermost coroutine
                                          frame outside asyncio; inner: the
                                          innermost frame's code);
                                          flow: the id of the wake-up that led
                                          here (0: none seen); lag: ns from
                                          being queued to running (-1: unknown)
  STEP_END  task
  CALL      callback, lag, context        a plain callback begins (lag: a
                                          timer's lateness, else -1; context:
                                          the one it runs in, which says the
                                          simulated host it belongs to)
  CALL_END
  WAIT      timeout                       the loop waits for I/O
  WAIT_END  nevents, ready                ... and is back; ready: the length
                                          of the ready queue then
  WAKE      task, flow                    a task step was queued while a step
                                          or callback ran: a flow starts there
  SPAWN     task                          create_task made `task`
  EXIT      task
"""

from __future__ import annotations

import asyncio
import collections
import os
import time
from types import AsyncGeneratorType, CoroutineType, GeneratorType
from typing import Any

from .._handles import TimerHandle

STEP, STEP_END, CALL, CALL_END, WAIT, WAIT_END, WAKE, SPAWN, EXIT = range(9)

_now_ns = time.perf_counter_ns


# Code objects -> whether they are asyncio's own (cached: one dict lookup per frame).
_ASYNCIO_DIR = os.path.dirname(asyncio.__file__) + os.sep
_in_asyncio: dict[Any, bool] = {}


def _suspended(awaitable: Any) -> tuple[Any, Any]:
    """(frame, what it awaits) of a coroutine, generator or async generator;
    (None, None) for anything else (a future's iterator: the bottom of the
    await chain).  By type, not getattr with a default: a failed getattr
    makes an AttributeError."""
    kind = type(awaitable)
    if kind is CoroutineType:
        return awaitable.cr_frame, awaitable.cr_await
    if kind is GeneratorType:
        return awaitable.gi_frame, awaitable.gi_yieldfrom
    if kind is AsyncGeneratorType:
        return awaitable.ag_frame, awaitable.ag_await
    return None, None


def resumes_at(task: Any) -> tuple[Any, int, Any]:
    """Where `task`'s next step resumes: (code, line) of the innermost coroutine
    frame outside asyncio's package (the program's await), and the innermost
    frame's code (asyncio.sleep's, a queue's get: what it awaits)."""
    frame, inner = _suspended(task.get_coro())
    if frame is None:
        return None, 0, None
    code, line = frame.f_code, frame.f_lineno
    while inner is not None:
        inner_frame, inner = _suspended(inner)
        if inner_frame is None:
            break
        frame = inner_frame
        inner_code = frame.f_code
        library = _in_asyncio.get(inner_code)
        if library is None:
            library = _in_asyncio[inner_code] = inner_code.co_filename.startswith(_ASYNCIO_DIR)
        if not library:
            code, line = inner_code, frame.f_lineno
    return code, line, frame.f_code


class Tracer:
    """Records one loop's task steps, callbacks and I/O waits (``loop.add_instrument``).

    `maxlen`: keep only the last `maxlen` records (a flight recorder);
    None keeps everything.  `clock`: what timestamps the records, in ns
    (default ``time.perf_counter_ns``; a simulation gives its virtual
    clock).  ``events`` holds the records; ``tidal.trace`` writes them out.
    """

    def __init__(
        self, loop: Any = None, maxlen: int | None = None, clock: Any = None
    ) -> None:
        self.loop = loop
        self._now = _now_ns if clock is None else clock
        self.events: Any = collections.deque(maxlen=maxlen) if maxlen else []
        self._add = self.events.append
        self._flows = 0  # flow ids, per tracer (the writer makes them unique)
        self._queued: dict[Any, tuple[int, int]] = {}  # task -> (flow id, when queued)
        self._running = False  # inside a step or callback: a wake-up has a waker

    # Tasks

    def task_spawned(self, task: Any) -> None:
        self._add((self._now(), SPAWN, task))

    def task_scheduled(self, task: Any) -> None:
        now = self._now()
        if self._running:
            self._flows += 1
            flow = self._flows
            self._add((now, WAKE, task, flow))
        else:
            flow = 0
        self._queued[task] = (flow, now)

    def before_task_step(self, task: Any) -> None:
        code, line, inner = resumes_at(task)
        now = self._now()
        queued = self._queued.pop(task, None)
        if queued is None:
            self._add((now, STEP, task, code, line, inner, 0, -1))
        else:
            self._add((now, STEP, task, code, line, inner, queued[0], now - queued[1]))
        self._running = True

    def after_task_step(self, task: Any) -> None:
        self._running = False
        self._add((self._now(), STEP_END, task))

    def task_exited(self, task: Any) -> None:
        self._queued.pop(task, None)
        self._add((self._now(), EXIT, task))

    # Plain callbacks

    def before_callback(self, handle: Any) -> None:
        lag = -1
        if type(handle) is TimerHandle and self.loop is not None:
            lag = int((self.loop.time() - handle._when) * 1e9)
        self._add((self._now(), CALL, handle._callback, lag, handle._context))
        self._running = True

    def after_callback(self, handle: Any) -> None:
        self._running = False
        self._add((self._now(), CALL_END))

    # I/O waits

    def before_io_wait(self, timeout: float | None) -> None:
        self._add((self._now(), WAIT, timeout))

    def after_io_wait(self, nevents: int) -> None:
        ready = self.loop._ready if self.loop is not None else ()
        self._add((self._now(), WAIT_END, nevents, len(ready)))
