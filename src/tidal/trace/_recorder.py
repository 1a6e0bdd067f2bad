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

A step's flow and lag are not written with it: they are found when the
records are read back, from the task's last wake-up since its previous
step (a WAKE record; one queued outside any step or callback is kept as a
WAKE of flow 0, read back for its time only and never given out).  That
is one record per wake-up, where a table of the queued tasks cost a dict
insertion and removal per step (~400 instructions, the dict churning
through its deleted slots).  What a flight recorder has overwritten is
not known: the oldest steps in a ring may say flow 0 and lag -1.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from array import array
from types import AsyncGeneratorType, CoroutineType, GeneratorType, GetSetDescriptorType
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

    Py_SIZE = len  # compiled: the C macro (see _wait_ended)

    def set_ref(column: list[Any], i: int, value: Any) -> None:
        """``column[i] = value``; compiled, the C macros on a slot known to
        exist (_recorder.pxd), where a subscript is a call of a general helper."""
        column[i] = value

from .._handles import TimerHandle

# (Compiled, C globals: no lookup per record.)
_TimerHandle: Any = TimerHandle
_Deque: Any = deque

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


# File names -> whether they are asyncio's own (cached: one dict lookup per
# frame, by a string whose hash is kept; a code object's hash is computed
# afresh each time, over its bytecode and constants).
_ASYNCIO_DIR = os.path.dirname(asyncio.__file__) + os.sep
_in_asyncio: dict[str, bool] = {}


# The walk down a task's await chain (Tracer._where) reads what awaitables
# hold through their types' descriptors, found once here: compiled,
# ``descr_get`` calls a descriptor's getter as a C call (_recorder.pxd),
# where reading an attribute by name looks the name up along the type's MRO
# first.  Per type it can walk: the descriptors of its code (interpreted
# only: compiled, ``gen_code`` reads it from the object), its frame and what
# it awaits.
_WALKS: dict[type, tuple[Any, ...]] = {
    kind: tuple(vars(kind)[name] for name in names)
    for kind, names in (
        (CoroutineType, ("cr_code", "cr_frame", "cr_await")),
        (GeneratorType, ("gi_code", "gi_frame", "gi_yieldfrom")),
        (AsyncGeneratorType, ("ag_code", "ag_frame", "ag_await")),
    )
}
_CORO_WALK, _GEN_WALK, _AGEN_WALK = _WALKS[CoroutineType], _WALKS[GeneratorType], _WALKS[AsyncGeneratorType]
_Coro, _Gen, _AGen = CoroutineType, GeneratorType, AsyncGeneratorType  # (compiled: C globals)
# asyncio's C Task's coroutine (what get_coro() returns, without a method call).
_CTask: Any = getattr(asyncio.tasks, "_CTask", None)
_TASK_CORO: Any = getattr(_CTask, "_coro", None)  # (on the class: the descriptor)
if not isinstance(_TASK_CORO, GetSetDescriptorType):
    _CTask = None  # (get_coro() for every task)

if not cython.compiled:

    def descr_get(descr: Any, obj: Any) -> Any:
        """``descr.__get__(obj)``: the attribute `descr` gives `obj`."""
        return descr.__get__(obj)

    def gen_code(awaitable: Any) -> Any:
        """The code of a coroutine, generator or async generator.  Compiled,
        read from the object (PyGen_GetCode; 3.11: its gi_code field): no
        lookup, and no audit event (``cr_code`` raises one per read)."""
        return _WALKS[type(awaitable)][0].__get__(awaitable)

    def frame_lasti(frame: Any) -> int:
        """``frame.f_lasti``; compiled, PyFrame_GetLasti (no int object)."""
        return frame.f_lasti  # type: ignore[no-any-return]

    def gen_lasti(awaitable: Any) -> int:
        """Compiled on 3.11, `awaitable`'s frame's f_lasti read from the
        coroutine itself (-2: it has finished); else -3: read its frame."""
        return -3

    def gen_await(awaitable: Any) -> Any:
        """Compiled on 3.11, what `awaitable` awaits (its ``cr_await``) read
        from the coroutine itself: no descriptor call.  Else None: the
        descriptor is read (see _await_known)."""
        return None

    GEN_AWAIT_KNOWN = False  # compiled: whether gen_await reads anything here

    def library_memo(code: Any) -> int:
        """Compiled, whether `code` is asyncio's, if the code object says
        (its co_extra; else -1: _recorder.pxd).  Interpreted, -1."""
        return -1

    def remember_library(code: Any, library: bool) -> None:
        """Compiled, keep the answer on the code object.  Interpreted, nothing."""


def _lasti_agrees() -> bool:
    """Whether gen_lasti says what the frame says, for a coroutine not
    started, one suspended, and one finished (else the frame is read).
    (asyncio.sleep's: a coroutine of this module's, compiled, is Cython's.)"""
    coro: Any = asyncio.sleep(0)
    try:
        if gen_lasti(coro) not in (-3, coro.cr_frame.f_lasti):
            return False
        coro.send(None)
        if gen_lasti(coro) not in (-3, coro.cr_frame.f_lasti):
            return False
        try:
            coro.send(None)
        except StopIteration:
            pass
        return gen_lasti(coro) in (-3, -2) and coro.cr_frame is None
    finally:
        coro.close()


_lasti_known = _lasti_agrees()


# Coroutines three deep, made from source (compiled, one defined in this
# module would be Cython's, not a CoroutineType): what _await_agrees walks.
_AWAIT_PROBE = """
import types

@types.coroutine
def pause():
    yield

async def awaiting():
    await pause()

async def twice():
    await awaiting()
"""


def _await_agrees() -> bool:
    """Whether gen_await says what ``cr_await`` / ``gi_yieldfrom`` say, for
    a coroutine not started, one suspended three deep (a coroutine, the one
    it awaits, and the generator that one awaits), and one finished (else
    the descriptor is read)."""
    if not cython.compiled or not GEN_AWAIT_KNOWN:
        return False
    probe: dict[str, Any] = {}
    exec(_AWAIT_PROBE, probe)
    # Fresh, and again once the interpreter has quickened the code (3.11
    # rewrites the RESUME after an await as RESUME_QUICK).
    return all(_await_agrees_on(probe["twice"]()) for _ in range(20))


def _await_agrees_on(coro: Any) -> bool:
    try:
        if gen_await(coro) is not coro.cr_await:
            return False
        coro.send(None)
        middle = coro.cr_await
        if type(middle) is not CoroutineType or gen_await(coro) is not middle:
            return False
        inner = middle.cr_await
        if type(inner) is not GeneratorType or gen_await(middle) is not inner:
            return False
        if gen_await(inner) is not inner.gi_yieldfrom:
            return False
        try:
            coro.send(None)
        except StopIteration:
            pass
        return gen_await(coro) is coro.cr_await is None
    finally:
        coro.close()


_await_known = _await_agrees()


def _is_library(code: Any) -> bool:
    """Whether `code` is asyncio's own (by its file, cached per file name)."""
    filename = code.co_filename
    library = _in_asyncio.get(filename)
    if library is None:
        library = _in_asyncio[filename] = filename.startswith(_ASYNCIO_DIR)
    remember_library(code, library)
    return library  # type: ignore[no-any-return]


# (code, offset) -> line, for the records read back (see line_at).
_lines: dict[tuple[Any, int], Any] = {}


def line_at(code: Any, offset: int) -> Any:
    """The line of `code` at instruction `offset`, as a suspended frame's
    ``f_lineno`` says it: the first line before the first instruction, None
    where the compiler gave an instruction no line."""
    if code is None:
        return 0  # (no frame: a task whose coroutine is not one)
    key = (code, offset)
    line = _lines.get(key, _lines)
    if line is _lines:
        if len(_lines) > 100_000:
            _lines.clear()  # (it keeps code objects alive: bounded)
        line = code.co_firstlineno if offset < 0 else None
        if offset >= 0:
            for start, end, at in code.co_lines():
                if start <= offset < end:
                    line = at
                    break
        _lines[key] = line
    return line


def _walk_py(awaitable: Any, b: list[Any], c: list[Any], i: int) -> int:
    """Tracer._where's walk down an await chain from `awaitable`: the code
    of the innermost coroutine outside asyncio into ``b[i]``, the innermost
    awaitable's code into ``c[i]``; returns the offset of the first one's
    last instruction (-1: none).  Compiled, ``walk`` does the same in C
    (_recorder.pxd), and this runs only where that cannot."""
    at = code = inner = None
    at_walk = _CORO_WALK  # (read only once `at` is set)
    while True:
        kind = type(awaitable)
        if kind is _Coro:
            walk_of = _CORO_WALK
        elif kind is _Gen:
            walk_of = _GEN_WALK
        elif kind is _AGen:
            walk_of = _AGEN_WALK
        else:
            break  # (a future's iterator: the bottom of the chain)
        inner = gen_code(awaitable)
        if at is None:  # the task's own coroutine, asyncio's or not
            at, at_walk, code = awaitable, walk_of, inner
        else:
            library = library_memo(inner)
            if library < 0:
                library = _is_library(inner)
            if not library:
                at, at_walk, code = awaitable, walk_of, inner
        if _await_known:
            awaitable = gen_await(awaitable)
        else:
            awaitable = descr_get(walk_of[2], awaitable)
    offset = -1
    if at is not None:
        lasti = gen_lasti(at) if _lasti_known else -3
        if lasti == -3:
            frame = descr_get(at_walk[1], at)
            lasti = -2 if frame is None else frame_lasti(frame)
        if lasti == -2:  # (finished: no frame)
            code = inner = None
        else:
            offset = lasti
    set_ref(b, i, code)
    set_ref(c, i, inner)
    return offset


if not cython.compiled:
    walk = _walk_py  # compiled: the C walk (_recorder.pxd)

    def walk_init(awaits: tuple[Any, ...], frames: tuple[Any, ...], await_known: bool, lasti_known: bool) -> None:
        """Compiled, gives the C walk the descriptors it reads through and
        what the checks above found.  Interpreted, nothing."""

    def walk_unknown() -> Any:
        """Compiled, the code the C walk did not know (never, interpreted)."""


walk_init(
    (_CORO_WALK[2], _GEN_WALK[2], _AGEN_WALK[2]), (_CORO_WALK[1], _GEN_WALK[1], _AGEN_WALK[1]),
    _await_known, _lasti_known,
)


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
        self._running = False  # inside a step or callback: a wake-up has a waker
        self._error: BaseException | None = None  # what a hook caught (see _begin)

    def _new_columns(self) -> None:
        size = self._size
        # Made by repetition, not from a bytes of zeros: a freed temporary of
        # this size would raise malloc's mmap threshold, after which the
        # program's own ~1 KiB buffers come from a fuller heap (measured: 350
        # instructions more per echo round trip).
        ts, kind = array("q", [0]) * size, array("b", [0]) * size
        x, y, z = array("q", [0]) * size, array("q", [0]) * size, array("q", [0]) * size
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

    # -- writing a record --------------------------------------------------
    #
    # A hook takes a slot and stamps it (_begin), fills the columns its kind
    # uses (only those: _rows reads no other; in a ring another column may
    # still refer to what an older record there did, until a record that
    # uses it comes round), then counts the record in (_n, last: a record is
    # in only once it is whole).  Hooks do not raise: what can fail (a
    # clock given to the Tracer, the loop's time, memory for new columns) is
    # caught where it is called, kept in ``_error``, and the hook returns -1;
    # the loop's dispatch then removes the Tracer and logs the error
    # (_instrument.py), with no try block per record.

    @cython.boundscheck(False)
    @cython.wraparound(False)
    def _begin(self, kind: int) -> int:
        """The slot for a record of `kind`, stamped now; -1 if that failed (``_error``)."""
        i = self._n
        if i == self._size:
            i = self._turn_page()
            if i < 0:
                return -1
        if self._clock is None:
            self._ts[i] = monotonic_ns()
        else:
            now = self._clock_ns()
            if self._error is not None:
                return -1
            self._ts[i] = now
        self._kind[i] = kind
        return i

    @cython.boundscheck(False)
    @cython.wraparound(False)
    def _record(self, kind: int, a: Any) -> int:
        """A whole record of `kind` whose one field is `a` (SPAWN, STEP_END, EXIT, WAIT)."""
        i = self._begin(kind)
        if i < 0:
            return -1
        set_ref(self._a, i, a)
        self._n = i + 1
        return 0

    def _caught(self, error: BaseException) -> int:
        """Keep `error` for the dispatch (see "writing a record"); -1, a hook's failure."""
        self._error = error
        return -1

    def _turn_page(self) -> int:
        """The columns are full: a ring goes round again, a full trace puts
        them aside for new ones.  The next slot (0), or -1 (``_error``)."""
        if self._ring:
            # Round again: slot 0 is being written, so not yet a record.
            self._wrapped = True
        else:
            full = self._cols
            try:
                self._new_columns()
            except BaseException as exc:  # MemoryError: what is recorded stays
                return self._caught(exc)
            self._chunks.append(full)
        self._n = 0
        return 0

    def _clock_ns(self) -> int:
        """The time from the clock the Tracer was given (a failure: ``_error``)."""
        try:
            return self._clock()  # type: ignore[no-any-return]
        except BaseException as exc:
            self._error = exc
            return 0

    def _raise_error(self) -> None:
        """A hook returned -1: raise what it caught (for callers of the public hooks)."""
        error, self._error = self._error, None
        if error is not None:
            raise error

    @property
    def events(self) -> list[tuple[Any, ...]]:
        """The records as tuples, oldest first (a snapshot: safe from a signal
        handler or another thread while the loop records)."""
        n, cols, wrapped = self._n, self._cols, self._wrapped
        out: list[tuple[Any, ...]] = []
        queued: dict[Any, tuple[int, int]] = {}  # task -> (when, flow) of its next step
        for chunk in self._chunks:
            _rows(chunk, 0, len(chunk[1]), out, queued)
        if wrapped:
            # The slot at n is the next to be written, maybe half written now.
            _rows(cols, n + 1, len(cols[1]), out, queued)
        _rows(cols, 0, n, out, queued)
        return out

    # -- the hooks the loop's dispatch calls (C calls, compiled) ------------
    # Each returns 0, or -1 with the error in _error (see "writing a record").

    @cython.boundscheck(False)
    @cython.wraparound(False)
    def _spawned(self, task: Any) -> int:
        return self._record(_SPAWN, task)

    @cython.boundscheck(False)
    @cython.wraparound(False)
    def _scheduled(self, task: Any) -> int:
        """A WAKE record: a flow starts here if a step or callback runs
        (else flow 0: only the time is kept, for the step's lag)."""
        i = self._begin(_WAKE)
        if i < 0:
            return -1
        set_ref(self._a, i, task)
        if self._running:
            self._flows += 1
            self._y[i] = self._flows
        else:
            self._y[i] = 0
        self._n = i + 1
        return 0

    @cython.boundscheck(False)
    @cython.wraparound(False)
    def _step_began(self, task: Any) -> int:
        i = self._begin(_STEP)
        if i < 0:
            return -1
        try:
            self._where(i, task)
        except BaseException as exc:
            return self._caught(exc)
        set_ref(self._a, i, task)
        self._n = i + 1
        self._running = True
        return 0

    @cython.boundscheck(False)
    @cython.wraparound(False)
    def _where(self, i: int, task: Any) -> int:
        """Where `task`'s next step resumes, into slot `i`: the code (_b) and
        offset (_x) of the innermost coroutine frame outside asyncio's
        package (the program's await: the offset of its last instruction,
        ``f_lasti``; ``line_at`` gives the line), and the innermost
        awaitable's code (_c: asyncio.sleep's, a queue's get: what it awaits).

        The offset, not ``f_lineno``: that one searches the code's line table
        from its start, thousands of instructions per step in a long
        function, where the line is needed only when written out.  Each
        level's code is the awaitable's (``gen_code``), not its frame's: a
        frame object is made the first time it is asked for, and a coroutine
        made per await (each ``readexactly()``) would make one per step; the
        one frame read is that of the level chosen, for its offset.  (A
        closed coroutine has no frame: then nothing is said.)
        """
        if _CTask is not None and type(task) is _CTask:
            awaitable = descr_get(_TASK_CORO, task)
        else:
            awaitable = task.get_coro()
        # (Compiled, a C walk: see walk in _recorder.pxd.)
        offset = walk(awaitable, self._b, self._c, i)
        while offset == -2:  # a code not seen before: whether it is asyncio's, learnt once
            code = walk_unknown()
            _is_library(code)
            if library_memo(code) < 0:
                offset = -4  # (the answer could not be kept on the code)
                break
            offset = walk(awaitable, self._b, self._c, i)
        if offset == -4:  # (compiled, no code extra to keep the answers on: the Python walk)
            offset = _walk_py(awaitable, self._b, self._c, i)
        self._x[i] = offset
        return 0

    @cython.boundscheck(False)
    @cython.wraparound(False)
    def _step_ended(self, task: Any) -> int:
        self._running = False
        return self._record(_STEP_END, task)

    @cython.boundscheck(False)
    @cython.wraparound(False)
    def _exited(self, task: Any) -> int:
        return self._record(_EXIT, task)

    @cython.boundscheck(False)
    @cython.wraparound(False)
    def _callback_began(self, handle: Any) -> int:
        # (Compiled, `handle` is a C view of asyncio's Handle: _recorder.pxd.)
        lag = -1
        if type(handle) is _TimerHandle and self.loop is not None:
            timer: Any = handle  # (a TimerHandle: its _when is no field of the C view)
            try:  # the loop's clock: a simulation's may be anything
                lag = int((self.loop.time() - timer._when) * 1e9)
            except BaseException as exc:
                return self._caught(exc)
        return self._call(handle._callback, handle._context, lag, 0)

    def _read_began(self, transport: Any, context: Any) -> int:
        """A stream transport's read is about to run (what asyncio's loop
        runs as a Handle of its ``_read_ready``, made only when read back)."""
        return self._call(transport, context, -1, 1)

    @cython.boundscheck(False)
    @cython.wraparound(False)
    def _call(self, callback: Any, context: Any, lag: int, read: int) -> int:
        """A CALL record: `callback` runs in `context`; `read`: 1 if
        `callback` is a stream transport, whose ``_read_ready`` runs."""
        i = self._begin(_CALL)
        if i < 0:
            return -1
        set_ref(self._a, i, callback)
        set_ref(self._b, i, context)
        self._x[i] = read
        self._z[i] = lag
        self._n = i + 1
        self._running = True
        return 0

    def _callback_ended(self) -> int:
        self._running = False
        i = self._begin(_CALL_END)
        if i < 0:
            return -1
        self._n = i + 1
        return 0

    @cython.boundscheck(False)
    @cython.wraparound(False)
    def _wait_began(self, timeout: float | None) -> int:
        return self._record(_WAIT, timeout)

    @cython.boundscheck(False)
    @cython.wraparound(False)
    def _wait_ended(self, nevents: int) -> int:
        i = self._begin(_WAIT_END)
        if i < 0:
            return -1
        self._x[i] = nevents
        ready = self._ready
        # A deque's length is its Py_SIZE (as _loop._ready_len reads it).
        self._y[i] = Py_SIZE(ready) if type(ready) is _Deque else len(ready)
        self._n = i + 1
        return 0

    # -- the same hooks as any instrument has (tidal.abc.Instrument) --------
    # The loop calls the ones above; these are for anyone else telling a
    # Tracer what happened (a Tracer subclass is dispatched as any instrument).

    def task_spawned(self, task: Any) -> None:
        if self._spawned(task):
            self._raise_error()

    def task_scheduled(self, task: Any) -> None:
        if self._scheduled(task):
            self._raise_error()

    def before_task_step(self, task: Any) -> None:
        if self._step_began(task):
            self._raise_error()

    def after_task_step(self, task: Any) -> None:
        if self._step_ended(task):
            self._raise_error()

    def task_exited(self, task: Any) -> None:
        if self._exited(task):
            self._raise_error()

    def before_callback(self, handle: Any) -> None:
        if self._callback_began(handle):
            self._raise_error()

    def after_callback(self, handle: Any) -> None:
        if self._callback_ended():
            self._raise_error()

    def before_io_wait(self, timeout: float | None) -> None:
        if self._wait_began(timeout):
            self._raise_error()

    def after_io_wait(self, nevents: int) -> None:
        if self._wait_ended(nevents):
            self._raise_error()


def _rows(
    cols: tuple[Any, ...], start: int, stop: int, out: list[tuple[Any, ...]], queued: dict[Any, tuple[int, int]]
) -> None:
    """Records start..stop of a set of columns, as the tuples the module
    docstring lists; `queued`: what was read before, task -> (when, flow)
    of its last wake-up since its last step (a step's lag and flow)."""
    ts, kinds, a, b, c, x, y, z = cols
    for i in range(start, stop):
        kind = kinds[i]
        if kind == STEP:  # task, code, line, inner, flow, lag (x: the offset of the line)
            task = a[i]
            when, flow = queued.pop(task, (-1, 0))
            lag = -1 if when < 0 else ts[i] - when
            out.append((ts[i], STEP, task, b[i], line_at(b[i], x[i]), c[i], flow, lag))
        elif kind == CALL:  # callback, lag, context (x: a transport's read)
            out.append((ts[i], CALL, a[i]._read_ready if x[i] else a[i], z[i], b[i]))
        elif kind == CALL_END:
            out.append((ts[i], CALL_END))
        elif kind == WAIT_END:  # nevents, ready
            out.append((ts[i], WAIT_END, x[i], y[i]))
        elif kind == WAKE:  # task, flow (0: queued outside any step: not given out)
            task, flow = a[i], y[i]
            if flow:
                queued[task] = (ts[i], flow)
                out.append((ts[i], WAKE, task, flow))
            else:  # (the time of the last queueing, the flow of the last seen)
                queued[task] = (ts[i], queued.get(task, (0, 0))[1])
        else:  # STEP_END, SPAWN, EXIT: the task; WAIT: the timeout
            if kind == EXIT:
                queued.pop(a[i], None)
            out.append((ts[i], kind, a[i]))
