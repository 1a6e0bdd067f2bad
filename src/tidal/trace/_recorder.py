"""The Tracer: an instrument that records what one loop runs, cheaply.

Each hook writes one record into preallocated columns and does nothing
else: no strings are made, nothing is looked up that can wait, and no object
is allocated per record.  The columns are arrays of C integers (the
timestamp, the kind, line numbers, flow ids, lags) and lists of object
references (the task, the callback, code objects), ``CHUNK`` records long;
when everything is kept, a full chunk is put aside and a new one begun; a
flight recorder (``maxlen``) has one set of columns and writes round it, the
oldest record overwritten by the newest.  Records being columns, not tuples,
the cyclic GC has nothing new to look at: a tuple per record made every
collection of the young generation walk the records made since, and every
full collection the whole ring (half of what the flight recorder cost).

Turning the records into a timeline (names, tracks, flows, counters) is
``_chrome.py``'s work, done once when the trace is written; ``events`` gives
them back as tuples, oldest first:

Records, all starting with a timestamp (``now_ns()``, or the clock the
Tracer is given: a simulation's virtual ns) and a kind:

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
import os
from array import array
from types import AsyncGeneratorType, CoroutineType, GeneratorType
from typing import Any

try:
    import cython
except ImportError:  # interpreted, without Cython installed
    from types import SimpleNamespace

    cython = SimpleNamespace(
        compiled=False,
        boundscheck=lambda on: lambda func: func,
        wraparound=lambda on: lambda func: func,
    )
if not cython.compiled:
    # Compiled: clock_gettime(CLOCK_MONOTONIC), the clock perf_counter_ns
    # reads on Linux, in C (_syscalls_c.pxd, cimported by _recorder.pxd).
    from time import perf_counter_ns as monotonic_ns

    def PyObject_GC_UnTrack(op: Any) -> None:
        """Compiled, the C API's: see Tracer._new_columns.  Interpreted, a no-op."""

from .._handles import TimerHandle

STEP, STEP_END, CALL, CALL_END, WAIT, WAIT_END, WAKE, SPAWN, EXIT = range(9)
# The same, as C ints where records are written (compiled, _recorder.pxd: a
# comparison or an argument costs no lookup and no int object); the names
# above stay Python ints for _chrome.py and the simulation to import.
_STEP, _STEP_END, _CALL, _CALL_END, _WAIT, _WAIT_END, _WAKE, _SPAWN, _EXIT = range(9)

# Records per set of columns when everything is kept (a chunk: ~1 MiB).
CHUNK = 16384


def now_ns() -> int:
    """The Tracer's default clock, in ns: what a session's start is measured on."""
    return monotonic_ns()  # type: ignore[no-any-return]


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
    (default ``now_ns``; a simulation gives its virtual clock).  ``events``
    gives the records back; ``tidal.trace`` writes them out.
    """

    def __init__(self, loop: Any = None, maxlen: int | None = None, clock: Any = None) -> None:
        self.loop = loop
        # The loop's ready queue (made once with the loop): its length after each wait.
        self._ready = loop._ready if loop is not None else ()
        self._clock = clock
        self._ring = bool(maxlen)
        # A ring keeps one slot free: the one being written (see events).
        self._size = maxlen + 1 if maxlen else CHUNK
        self._chunks: list[tuple[Any, ...]] = []  # full chunks' columns, oldest first
        self._wrapped = False  # the ring has gone round: every slot holds a record
        self._n = 0  # records written in the current columns (the next slot)
        self._new_columns()
        self._flows = 0  # flow ids, per tracer (the writer makes them unique)
        # task -> when its step was queued, and the flow that queued it (if any).
        self._queued_at: dict[Any, int] = {}
        self._queued_flow: dict[Any, int] = {}
        self._running = False  # inside a step or callback: a wake-up has a waker

    def _new_columns(self) -> None:
        size = self._size
        ts, kind = array("q", bytes(8 * size)), array("b", bytes(size))
        x, y, z = array("q", bytes(8 * size)), array("q", bytes(8 * size)), array("q", bytes(8 * size))
        a, b, c = [None] * size, [None] * size, [None] * size
        # Compiled, the object columns are hidden from the cyclic GC: a full
        # collection would otherwise walk every reference of every record
        # (a 100,000-record flight recorder: 300,000 per collection).  What
        # they refer to is kept alive all the same (a reference count), and
        # a cycle through a record is collected once the record is gone.
        PyObject_GC_UnTrack(a)
        PyObject_GC_UnTrack(b)
        PyObject_GC_UnTrack(c)
        self._cols = (ts, kind, a, b, c, x, y, z)
        # Compiled, typed memoryviews of the arrays: a record is C stores.
        self._ts, self._kind, self._x, self._y, self._z = ts, kind, x, y, z
        self._a, self._b, self._c = a, b, c

    @cython.boundscheck(False)
    @cython.wraparound(False)
    def _put(self, kind: int, a: Any, b: Any, c: Any, x: int, y: int, z: int) -> int:
        """Write one record (see the module docstring for each kind's fields).

        Only the object columns the kind uses are written (`_rows` reads no
        other): in a ring, another column may still refer to what an older
        record there did, until a record that uses it comes round.
        """
        i = self._n
        if i == self._size:
            if self._ring:
                # Round again: slot 0 is being written, so not yet a record.
                self._wrapped = True
                self._n = i = 0
            else:
                self._chunks.append(self._cols)
                self._new_columns()
                self._n = i = 0
        if self._clock is None:
            self._ts[i] = monotonic_ns()
        else:
            self._ts[i] = self._clock()
        self._kind[i] = kind
        if kind != _CALL_END and kind != _WAIT_END:
            self._a[i] = a
            if kind == _STEP or kind == _CALL:
                self._b[i] = b
                if kind == _STEP:
                    self._c[i] = c
        self._x[i] = x
        self._y[i] = y
        self._z[i] = z
        self._n = i + 1  # last: a record is in only once it is whole
        return 0

    def _now(self) -> int:
        if self._clock is None:
            return monotonic_ns()  # type: ignore[no-any-return]
        return self._clock()  # type: ignore[no-any-return]

    @property
    def events(self) -> list[tuple[Any, ...]]:
        """The records as tuples, oldest first (a snapshot: safe from a signal
        handler or another thread while the loop records)."""
        n, cols, wrapped = self._n, self._cols, self._wrapped
        out: list[tuple[Any, ...]] = []
        for chunk in self._chunks:
            _rows(chunk, 0, len(chunk[1]), out)
        if wrapped:
            # The slot at n is the next to be written, maybe half written now.
            _rows(cols, n + 1, len(cols[1]), out)
        _rows(cols, 0, n, out)
        return out

    # Tasks

    def task_spawned(self, task: Any) -> None:
        self._put(_SPAWN, task, None, None, 0, 0, 0)

    def task_scheduled(self, task: Any) -> None:
        if self._running:
            self._flows += 1
            self._put(_WAKE, task, None, None, 0, self._flows, 0)
            self._queued_flow[task] = self._flows
        self._queued_at[task] = self._now()

    def before_task_step(self, task: Any) -> None:
        code, line, inner = resumes_at(task)
        queued = self._queued_at.pop(task, None)
        flow = self._queued_flow.pop(task, 0) if self._queued_flow else 0
        if queued is None:
            self._put(_STEP, task, code, inner, line, flow, -1)
        else:
            self._put(_STEP, task, code, inner, line, flow, self._now() - queued)
        self._running = True

    def after_task_step(self, task: Any) -> None:
        self._running = False
        self._put(_STEP_END, task, None, None, 0, 0, 0)

    def task_exited(self, task: Any) -> None:
        self._queued_at.pop(task, None)
        self._queued_flow.pop(task, None)
        self._put(_EXIT, task, None, None, 0, 0, 0)

    # Plain callbacks

    def before_callback(self, handle: Any) -> None:
        h = handle  # compiled: a C view of asyncio's Handle (_recorder.pxd)
        lag = -1
        if type(handle) is TimerHandle and self.loop is not None:
            lag = int((self.loop.time() - handle._when) * 1e9)
        self._put(_CALL, h._callback, h._context, None, 0, 0, lag)
        self._running = True

    def after_callback(self, handle: Any) -> None:
        self._running = False
        self._put(_CALL_END, None, None, None, 0, 0, 0)

    # I/O waits

    def before_io_wait(self, timeout: float | None) -> None:
        self._put(_WAIT, timeout, None, None, 0, 0, 0)

    def after_io_wait(self, nevents: int) -> None:
        self._put(_WAIT_END, None, None, None, nevents, len(self._ready), 0)


def _rows(cols: tuple[Any, ...], start: int, stop: int, out: list[tuple[Any, ...]]) -> None:
    """Records start..stop of a set of columns, as the tuples the module docstring lists."""
    ts, kinds, a, b, c, x, y, z = cols
    for i in range(start, stop):
        kind = kinds[i]
        if kind == STEP:  # task, code, line, inner, flow, lag
            out.append((ts[i], STEP, a[i], b[i], x[i], c[i], y[i], z[i]))
        elif kind == CALL:  # callback, lag, context
            out.append((ts[i], CALL, a[i], z[i], b[i]))
        elif kind == CALL_END:
            out.append((ts[i], CALL_END))
        elif kind == WAIT_END:  # nevents, ready
            out.append((ts[i], WAIT_END, x[i], y[i]))
        elif kind == WAKE:  # task, flow
            out.append((ts[i], WAKE, a[i], y[i]))
        else:  # STEP_END, SPAWN, EXIT: the task; WAIT: the timeout
            out.append((ts[i], kind, a[i]))
