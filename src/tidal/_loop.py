"""THE loop: tidal's scheduler, in one file you can read in a sitting.

How one turn works
------------------
A loop holds three kinds of pending work:

* the **ready queue**: a FIFO deque of handles that can run right now
  (``call_soon``, a task's next step, an I/O callback whose fd is ready);
* the **timer heap**: handles due at a loop time (``call_later``/``call_at``);
* the **I/O interest**: fds with a reader and/or writer waiting on them, kept
  in the poller.

``_run_once`` is one turn, in three phases and always in this order:

1. **Poll I/O.**  Drop cancelled timers from the top of the heap, then ask
   the poller for ready fds, waiting no longer than the first timer (and not
   at all if something is already ready; while callbacks are ready and no fd
   but the loop's own wake-up pipe is watched, the poll is skipped: it could
   find nothing that is not already queued).  Each ready fd's reader/writer
   handle is appended to the ready queue.  These handles are made once, when
   the reader/writer is registered, so an I/O event allocates nothing; a
   stream transport that reads is its own reader entry, and is queued
   itself (``_add_transport_reader``).
2. **Handle time.**  Timers whose time has come move to the ready queue.
3. **Run ready.**  Exactly the handles that were ready when this phase began
   run, in FIFO order.  Whatever they schedule runs next turn, so a callback
   that reschedules itself forever cannot starve I/O.  (A next turn that
   would be this phase alone, with no timer due or to drop and the poll
   skipped, is run by the same ``_run_once``, unless an override of it
   wants each turn.)

This is the only place where callbacks are called.  A callback's exception
goes to the exception handler, never out of the loop (except SystemExit and
KeyboardInterrupt, which asyncio lets through too); an instrument's is
logged, and the instrument removed (``_instrument.py``).

Seams, for the visible and testable loop: the loop reads time only through
``_now`` (its clock's ``now()``; for the default clock on Linux, the C
``clock_gettime`` that ``time.monotonic`` reads), waits only through
``self._poller``, picks what runs next only in ``_run_ready``, and reports
to its instruments (``add_instrument``; the seams' types are in
``tidal.abc``).  With no instrument and debug mode off, observing costs two
field tests per turn (``_instruments`` at the poll, ``_observed`` before the
run phase), and one in ``create_task``; the watchdog's turn counter, two C
increments per turn, or one add of 2 when the poll is skipped
(``_watchdog.py``).  The instrumented and debug paths
are separate branches chosen once per turn, not tested per callback.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextvars
import logging
import operator
import socket
import sys
import threading
import time
import traceback
import warnings
import weakref
from asyncio import coroutines, events, futures, tasks

# run_until_complete's done callback is asyncio's own function, not a copy:
# libraries find the task asyncio.run() or run_until_complete() runs by it
# (AnyIO's root task: `cb is asyncio.base_events._run_until_complete_cb`,
# with uvloop's special-cased), and a copy made them fall back to guessing.
from asyncio.base_events import _run_until_complete_cb  # type: ignore[attr-defined]
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    # For annotations only: typeshed's names, so that the overrides below
    # have AbstractEventLoop's signatures.
    from asyncio import _AwaitableLike
    from concurrent.futures import Executor
    from typing import TypeVar, TypeVarTuple, Unpack

    from _typeshed import FileDescriptorLike

    from .abc import Clock, Instrument, Poller, Resolver, SocketFactory

    _T = TypeVar("_T")
    _Ts = TypeVarTuple("_Ts")

from . import (
    _connect,
    _dns,
    _introspect,
    _observe,
    _patched,
    _sendfile,
    _server,
    _shutdown,
    _signals,
    _sock,
    _stats,
    _watchdog,
)
from ._clock import ManualClock, MonotonicClock
from ._handles import Handle, TimerHandle
from ._handles import report as _report_callback_error
from ._instrument import Instruments
from ._iocount import IOCounts

try:
    # Compiled, `cython` is Cython's compile-time module and the `if not
    # cython.compiled:` block below is dropped: its names are the C
    # functions _loop.pxd cimports from _handle_layout.pxd instead.
    import cython
except ImportError:  # interpreted, without Cython installed
    from types import ModuleType

    # A module, as Cython's own shadow module is: the turn and call_soon
    # test `cython.compiled` per callback, and the interpreter reads a
    # module's attribute through its specialized path (a SimpleNamespace's
    # took ~80 ns more per read: ~5% of an interpreted call_soon chain).
    cython = ModuleType("cython")
    vars(cython).update(
        compiled=False, locals=lambda **types: lambda func: func, double=float, cast=lambda type_, value: value
    )
if not cython.compiled:
    from ._handles import new_handle, new_timer, reraise, run_handle, use_fast_sleep, use_freelist
    from ._handles import use_timer_freelist
    from ._handles import hook_subclass, set_cancel_hook
    from ._syscalls import event_fd, event_mask, monotonic
    from ._syscalls import send as send_keeping_gil

    # Compiled, the C function _loop.pxd cimports, and the C struct view
    # of a stream transport's fields (_stream_layout.pxd).
    from .transports._stream import read_event
    from .transports._stream_slots import StreamSlots as CStream

    # Compiled, the C API functions of these names (used only where compiled).
    def PyObject_Call(callable: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:  # noqa: N802
        return callable(*args, **kwargs)

    # Compiled, _bound_call.h's; interpreted, operator's C function, so the
    # call adds no Python frame of ours.
    call_one = operator.call
    call_none = operator.call

    Py_SIZE = len

    def PyContext_Enter(ctx: contextvars.Context) -> None:  # noqa: N802
        raise AssertionError("compiled only")  # (Python can only ctx.run())

    PyContext_Exit = PyContext_Enter

    # Compiled, _new_future.h's (create_future): interpreted, every Future
    # is made by calling the class.
    def use_fast_future(future_cls: type) -> bool:
        return False

    def new_future(loop: Any) -> Any:
        raise AssertionError("compiled only")

    def new_task(task_cls: Any, coro: Any, kwargs: dict[str, Any]) -> Any:
        raise AssertionError("compiled only")

    def unmake_empty_dict(obj: Any) -> None:
        raise AssertionError("compiled only")

    def has_own_time(core: Any) -> bool:
        raise AssertionError("compiled only")

    # Compiled, _handle_layout.h's (used only where compiled).
    def as_handle(op: Any) -> Any:
        return op

    as_timer = as_handle

    # Compiled, _call_soon_entry.h's: interpreted, call_soon is the method.
    def install_call_soon(function: Any, core: type, bound_of: Any, soon_plain: Any) -> bool:
        return False

    def new_bound_call_soon(loop: Any) -> Any:
        raise AssertionError("compiled only")

    # Compiled, _coroutine_finalize.h's: interpreted, coroutines are CPython's.
    def wrap_coroutine_finalize(coro: Any) -> None:
        raise AssertionError("compiled only")
from ._poller import DirectPoller, EpollPoller, default_poller, polls_directly
from ._timerheap import TimerHeap
from .transports import _datagram, _pipe, _subprocess, _tls
from .transports._stream import StreamTransport

logger = logging.getLogger("asyncio")  # asyncio's logger: users filter on it

# Compiled, call_soon reuses tidal Handles that ran and that nothing else
# holds, and call_later TimerHandles that were freed (see
# _handle_layout.pxd); interpreted, these do nothing.
use_freelist(Handle)
use_timer_freelist(TimerHandle)

_Future = futures.Future  # asyncio's C Future; bound once (create_future is per await)
# The module asyncio's C Future and Task come from, weakly: at interpreter exit
# it can be freed before a task it made (_repr_for_log says why that matters).
_asyncio_c_module = sys.modules.get("_asyncio")
_asyncio_c_alive = weakref.ref(_asyncio_c_module) if _asyncio_c_module is not None else None
del _asyncio_c_module
_Task = tasks.Task  # asyncio's C Task; bound once (create_task is per task)
# Compiled: whether create_future may allocate asyncio's Future with its
# loop set instead of calling the class (_new_future.h checks it can).
_FAST_FUTURE = use_fast_future(_Future)
# Compiled, the timer of an asyncio.sleep sets its future's result without
# the Python frame of futures._set_result_unless_cancelled (_handle_layout.h
# says when); interpreted, this does nothing.
use_fast_sleep(futures._set_result_unless_cancelled, _Future)  # type: ignore[attr-defined]
_Deque = collections.deque  # the ready queue's type (_ready_len)
# A reader entry or a ready item of exactly this class is a stream transport
# (see _add_transport_reader), anything else a Handle.
_StreamTransport = StreamTransport
_copy_context = contextvars.copy_context

# Compiled, the loop's methods push no Python frame: a stack captured inside
# them (debug-mode source tracebacks) already starts at the caller, and there
# is no frame of ours to trim.
_COMPILED = not __file__.endswith(".py")
_instrument_file = sys.modules[Instruments.__module__].__file__

# Files whose frames a debug-mode task's source traceback leaves out (_make_task).
_OWN_FILES = frozenset({__file__, _instrument_file})

# Tuning values (same meaning and defaults as asyncio's, so behaviour matches).

# Below this many timers, cancelled ones are left in the heap and popped
# lazily when they reach the top: cheaper than rebuilding a small heap.
_MIN_SCHEDULED_TIMER_HANDLES = 100
# Above that size, rebuild the heap once this fraction of it is cancelled
# timers, so memory is bounded when most timeouts are cancelled (the usual
# fate of a timeout).
_MIN_CANCELLED_TIMER_HANDLES_FRACTION = 0.5
# Poll at least this often, whatever the timers say: guards against clock
# oddities and keeps signal handling responsive.
_MAXIMUM_SELECT_TIMEOUT = 24 * 3600
_MAXIMUM_WAIT_S = float(_MAXIMUM_SELECT_TIMEOUT)  # (compiled, a C double: the turn compares with it)
# How deep coroutine origins are tracked in debug mode.
_DEBUG_STACK_DEPTH = 10


def _make_task(
    loop: _LoopCore, coro: Any, name: str | None, context: contextvars.Context | None
) -> asyncio.Task[Any]:
    """create_task's work: asyncio's Task (or the task factory's), scheduled."""
    if loop._task_factory is None:
        task = _Task(coro, loop=loop, name=name, context=context)  # type: ignore[arg-type]
        # Debug mode: where the task was made is the user's call, not the
        # frames of tidal's own under it (compiled, _loop has none; the
        # instruments' dispatch is Python either way).  The Task recorded
        # it if get_debug() said so: ours says _debug (no attribute read
        # per task otherwise).
        if loop._debug or not loop._get_debug_is_ours:
            source = task._source_traceback  # type: ignore[attr-defined]
            while source and source[-1].filename in _OWN_FILES:
                del source[-1]
    else:
        if context is None:
            task = loop._task_factory(loop, coro)
        else:
            task = loop._task_factory(loop, coro, context=context)
        if name is not None:
            task.set_name(name)
    return task


def _fileobj_fileno(fileobj: Any) -> int:
    """An int, or what `fileobj.fileno()` says (-1 for a closed or detached socket)."""
    if isinstance(fileobj, int):
        return fileobj
    try:
        return int(fileobj.fileno())
    except (AttributeError, TypeError, ValueError):
        raise ValueError(f"Invalid file object: {fileobj!r}") from None


def _fileobj_to_fd(fileobj: Any) -> int:
    """The fd to poll for `fileobj`, with the selectors module's ValueErrors."""
    fd = _fileobj_fileno(fileobj)
    if fd < 0:
        raise ValueError(f"Invalid file descriptor: {fd}")
    return fd


def _now(core: _LoopCore) -> float:
    """The loop's time: the one place the loop reads its clock.

    Compiled, an inline C function (_loop.pxd).  The default clock on Linux
    is time.monotonic, read here as the C clock_gettime it calls (the same
    float, without a Python call); any other clock is asked for its now()
    (or a subclass's time(), which the loop honours as asyncio's does).  A
    `time` patched on the loop instance is read instead, as asyncio's loop
    reads self.time() (tests patch it to move a loop's time).
    """
    if cython.compiled:
        own = has_own_time(core)
    else:
        # (Not through the instance dict: on 3.12 and later a made one, even
        # empty, stops Python specializing method loads on the loop.)
        try:
            own = core.time.__self__ is not core  # type: ignore[attr-defined]
        except AttributeError:  # a function or a mock
            own = True
    if not own:
        if core._clock_is_monotonic:
            return monotonic()
        if core._clock_field is not None:
            return core._clock_field.seconds
    return _time_by_call(core, own)


def _time_by_call(core: _LoopCore, own: bool) -> float:
    """_now's Python calls: the `time` patched on the instance if `own`, else
    the clock's now().  Compiled, out of _now's inline body, which then
    stays small enough for the compiler to inline at each use."""
    if own:
        return core.time()  # type: ignore[no-any-return]
    return core._clock_now()


def _ready_len(ready: collections.deque[Any]) -> int:
    """How many handles are ready: asked two or three times a turn.

    Compiled, an inline C function (_loop.pxd): a deque keeps its length in
    its object header (CPython's deque_len returns Py_SIZE), so for the
    loop's own deque this is one load, where `len()` or a truth test goes
    through the type's slots (about 30 instructions each).  Interpreted,
    ``len`` itself (bound below).
    """
    if type(ready) is _Deque:
        return Py_SIZE(ready)
    return len(ready)


if not cython.compiled:
    _ready_len = len  # type: ignore[assignment]  # noqa: F811  # (no Python frame per call)


def _timers_at_rest(core: _LoopCore, scheduled: list[Any]) -> bool:
    """Whether a turn's phases 1a and 2 would leave the timers as they are.

    That is: none is due, the first is not cancelled (1a pops it), and the
    cancelled ones are not many enough to be swept (1a's other branch).
    _run_once's merged turns ask this: a task's step after its timer (a
    sleep's wake-up) is then run in the same call, timers pending.
    """
    sched_count = len(scheduled)
    if not sched_count:
        return True
    if (
        sched_count > _MIN_SCHEDULED_TIMER_HANDLES
        and core._timer_cancelled_count / sched_count > _MIN_CANCELLED_TIMER_HANDLES_FRACTION
    ):
        return False
    if cython.compiled:
        timer = as_timer(scheduled[0])  # (as in _run_once's phase 1a)
    else:
        timer = scheduled[0]
    if timer._cancelled:
        return False
    when = timer._when
    return when >= _now(core) + core._clock_resolution


def _run_one(handle: Handle) -> None:
    """Run one ready handle: asyncio's Handle._run, inlined.

    Compiled, an inline C function (_loop.pxd): the fields are C loads, the
    call is enter-context, call, exit-context, and a handle no one else
    holds is kept for the next call_soon; the error, if any, is handled
    out of line.  Interpreted, Handle._run's one line, here: no second
    Python frame per callback.
    """
    if cython.compiled:
        if run_handle(handle) < 0:
            _callback_raised(handle)
        return
    try:
        handle._context.run(handle._callback, *handle._args)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        _report_callback_error(handle, exc)


def _callback_raised(handle: Handle) -> None:
    """Compiled: the handle's callback raised (its exception is set): as in
    _run_one's except clauses.  Out of line, because a try statement costs
    a save and restore of the handled-exception state each time it is
    entered (~20 instructions a handle run)."""
    try:
        reraise()
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        _report_callback_error(handle, exc)


def _run_transport(core: _LoopCore, transport: Any) -> None:
    """Run a readable stream transport's read_event, as _run_one runs a Handle.

    Compiled, an inline C function (_loop.pxd): two field tests, then
    enter the transport's reader context, a C call, exit.  The transport is
    its fd's reader entry (_add_transport_reader): no Handle, no bound
    method, no Python call per event.
    """
    tr = transport  # compiled: its fields are C struct members
    ctx = tr._read_ctx
    if ctx is None or tr._read_queued is not ctx:
        # Reading stopped, or stopped and started again, since this read was
        # queued: skipped, as a cancelled reader Handle is.
        return
    try:
        if cython.compiled:
            PyContext_Enter(ctx)
            try:
                read_event(transport)
            finally:
                PyContext_Exit(ctx)
        else:
            ctx.run(read_event, transport)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        # (read_event reports its own errors: only a failure to report one
        # gets here, told as asyncio tells a reader callback's.)
        _report_callback_error(_transport_handle(core, transport), exc)


def _queue_events(core: _LoopCore, event_list: list[tuple[int, int]]) -> None:
    """Phase 1c: queue the reader/writer entries of the fds the poll found ready.

    The handles already exist (made at registration): no allocation here.
    One call a turn that polled something: compiled, a C function of its own
    (_loop.pxd), so that its locals do not weigh on every turn of _run_once
    (42 instructions a turn, inline).
    """
    readable = core._poll_readable
    readers: dict[int, Any] = core._readers  # (a Handle or a StreamTransport each)
    # Bound once a turn, not looked up per event: interpreted, a call
    # through an instance attribute is a lookup the interpreter cannot
    # specialize (it is no method of the class).
    append = core._ready_append
    for fd, mask in event_list:
        _queue_fd(core, fd, mask, readable, readers, append)


def _queue_epoll_events(core: _LoopCore, events: bytearray, nevents: int) -> None:
    """Compiled only: _queue_events for the `nevents` events an EpollPoller's
    wait_events left in `events`, read where the kernel wrote them.

    A loop of its own: its events are a C array, which Python code cannot
    read.  Saves the list, a tuple and a mask int per event, and unpacking
    them.
    """
    readable = core._poll_readable
    readers: dict[int, Any] = core._readers
    append = core._ready_append
    for i in range(nevents):
        _queue_fd(core, event_fd(events, i), event_mask(events, i), readable, readers, append)


def _queue_fd(
    core: _LoopCore, fd: int, mask: int, readable: int, readers: dict[int, Any], append: Any
) -> None:
    """Queue what waits on one ready fd: both loops of phase 1c, one body.

    Compiled, inline (_loop.pxd), as if written out in each loop.
    """
    if mask & readable:
        entry = readers.get(fd)
        if type(entry) is _StreamTransport:
            # The transport itself is queued, marked with the
            # registration it was queued under (_run_transport).
            tr = entry
            tr._read_queued = tr._read_ctx
            call_one(append, entry)  # (deque.append's C function)
            core._queued_reads += 1
        elif entry is not None:
            handle = entry
            if handle._cancelled:
                core._remove_reader(fd)
            else:
                call_one(append, handle)
    # (The writer side read from `core` per event: most turns that poll
    # find only readable fds.)
    if mask & core._poll_writable:
        writer = core._writers.get(fd)
        if writer is not None:
            if writer._cancelled:
                core._remove_writer(fd)
            else:
                call_one(append, writer)


def _transport_handle(core: _LoopCore, transport: Any) -> Handle:
    """The reader Handle asyncio's loop would hold for `transport`, made
    when one is asked for (debug mode, instruments, an error report).

    One per read registration, as asyncio's one per add_reader: kept in
    ``core._read_handles`` while the registration lasts (its context is the
    registration's, new at each start), dropped when it ends
    (_reader_removed, _drop_registration).  A Handle and a bound method
    made per read event cost ~8,600 instructions a 1 KiB echo round trip
    under the flight recorder (callgrind), and an unobserved connection
    costs nothing: the dict is filled only here.
    """
    tr = transport  # compiled: its fields are C struct members
    ctx = tr._read_ctx
    handle = core._read_handles.get(transport)
    if handle is None or handle._context is not ctx:
        handle = Handle(transport._read_ready, (), core, ctx)
        if ctx is not None:
            core._read_handles[transport] = handle
    return handle


class _LoopCore:
    """The loop's hot state and its per-callback methods.

    Compiled, this is a ``cdef class`` (declared in ``_loop.pxd``): its state
    is a C struct, so ``self._ready``, ``self._closed``, ``self._debug`` ... are
    field reads rather than dict lookups, and the turn's helpers are C calls.
    ``EventLoop`` cannot itself be a cdef class (it must derive from
    ``asyncio.AbstractEventLoop``, a Python class), so it derives from both, as
    uvloop's loop does: ``class EventLoop(_LoopCore, AbstractEventLoop)``.
    Interpreted, it is an ordinary base class: the same source, the same MRO.
    Only methods that run per callback, per task or per turn live here;
    everything else is on EventLoop.  Its fields (all of the loop's state) are
    set by ``EventLoop.__init__``.
    """

    # The fields (C fields when compiled, declared in _loop.pxd; annotated
    # here for mypy and readers).
    _clock: Clock
    _clock_now: Callable[[], float]
    _clock_resolution: float
    _clock_is_monotonic: bool  # _clock_now is time.monotonic (read as monotonic() instead)
    _clock_field: ManualClock | None  # the clock if its time is a field (read as the field)
    _poller: Poller
    _ready: collections.deque[Any]  # Handles and TimerHandles
    _ready_append: Callable[[Any], None]  # _ready's methods, bound once (see __init__)
    # What call_soon and call_soon_threadsafe queue through: _ready_append, or
    # while an instrument wants task_scheduled, _instrument.py's report_append
    # (a turn's own I/O handles and timers are never task steps: they go to
    # _ready_append unreported).
    _soon_append: Callable[[Any], None]
    _ready_popleft: Callable[[], Any]
    _poll: Callable[[float | None], Any]  # _poller.poll, bound once
    _direct_poller: DirectPoller | None  # _poller, if the turn may call its poll_wait as C
    _epoll_poller: EpollPoller | None  # _poller, if exactly an EpollPoller (the turn makes its wait)
    _poll_readable: int  # _poller.READABLE and WRITABLE, read once (a turn's _queue_events
    _poll_writable: int  # tests each event's mask against them)
    _park: Callable[[int], None] | None  # _poller.park, bound once, if it has one
    _timers: TimerHeap  # the timer heap (_timerheap.py)
    _scheduled: list[TimerHandle]  # _timers.items: the heap's list, as asyncio's loop has it
    _timer_cancelled_count: int
    # Stream transports in the ready queue (queued for a read by the turn's
    # phase 1c, which alone queues them): while there are none, the run
    # phase takes every item for a Handle.
    _queued_reads: int
    _wakeup_pending: bool
    # fd -> its reader: a Handle, or a stream transport that reads it (see
    # _add_transport_reader).
    _readers: dict[int, Handle | StreamTransport]
    _read_handles: dict[StreamTransport, Handle]  # observed reads' Handles (_transport_handle)
    _writers: dict[int, Handle]
    # fd -> the object (not an int) a registration was made with, so that a
    # socket closed or detached since is still found by the object.
    _fileobjs: dict[int, Any]
    _closed: bool
    _stopping: bool
    _debug: bool
    _instruments: Instruments | None  # None: no instrument (what the turn tests)
    _observed: bool  # debug mode or instruments: the run phase takes _run_ready_observed
    # Bumped before and after each wait for I/O (odd while waiting): what
    # the watchdog's thread watches (_watchdog.py).
    _turn: int
    _run_once_is_ours: bool  # no override of _run_once / _run_ready: called as C
    _run_ready_is_ours: bool  # (_note_overrides)
    _watchdog: Any  # None: TIDAL_WATCHDOG decides at run start; False: off; a _watchdog.Watchdog
    _thread_id: int | None
    _current_handle: Any
    slow_callback_duration: float
    # The rest of the loop's state, C fields too though no turn reads them:
    # with every attribute here, an EventLoop's instance __dict__ stays
    # empty, so the method lookups asyncio's C Task and Future make on the
    # loop (call_soon, get_debug: several per task step) find nothing there
    # to probe before the class.
    _transports: weakref.WeakValueDictionary[int, Any]
    _io_counts: IOCounts  # bytes the transports read and wrote (loop.stats())
    _exception_handler: Any
    _task_factory: Any
    _default_executor: concurrent.futures.ThreadPoolExecutor | None
    _executor_shutdown_called: bool
    _asyncgens: weakref.WeakSet[Any]
    _asyncgens_shutdown_called: bool
    _old_agen_hooks: Any
    _coroutine_origin_tracking_enabled: bool
    _coroutine_origin_tracking_saved_depth: int | None
    _signal_handlers: dict[int, Handle]
    _ssock: socket.socket  # (None once closed)
    _csock: socket.socket
    # The network seam (tidal.abc): every socket the loop opens for the
    # program comes from _socket_factory, every name from _resolver.
    _socket_factory: Any
    _resolver: Any
    _loop_kwargs: dict[str, Any] | None  # {"loop": self} for asyncio's Future and Task; None once closed
    _call_soon_bound: Any  # compiled: loop.call_soon as asyncio's C Task gets it (_call_soon_of)
    _get_debug_is_ours: bool  # no override of get_debug (_note_overrides; create_future)

    def time(self) -> float:
        """The loop's notion of now, from its clock (monotonic by default).

        The clock's own reading, never through _now: this method is also
        what a subclass's time() calls as super().time(), and what a `time`
        patched on the instance may call (mock's ``wraps=loop.time``), which
        _now would call back.  (_now's two fast paths, then the clock.)
        """
        if self._clock_is_monotonic:
            return monotonic()
        if self._clock_field is not None:
            return self._clock_field.seconds
        return self._clock.now()  # type: ignore[no-any-return]

    def call_soon(
        self,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> Handle:
        if self._closed:
            raise RuntimeError("Event loop is closed")
        if self._debug:
            self._check_thread()
            self._check_callback(callback, "call_soon")
            # The handle records its creator's caller: the user's frame.
            handle = Handle(callback, args, self, context, True)
        else:
            handle = new_handle(Handle, callback, args, self, context)
        call_one(self._soon_append, handle)
        return handle

    def call_soon_threadsafe(
        self,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> Handle:
        if self._closed:
            raise RuntimeError("Event loop is closed")
        if self._debug:
            self._check_callback(callback, "call_soon_threadsafe")
            handle = Handle(callback, args, self, context, True)
        else:
            handle = new_handle(Handle, callback, args, self, context)
        # deque.append is atomic under the GIL: no lock needed to enqueue.
        call_one(self._soon_append, handle)
        # One wake-up byte per wait of the loop, not per call: a thread
        # scheduling a burst of callbacks writes once, and the loop clears
        # the flag only when it is about to wait, before it looks at the
        # ready queue a last time (see _run_once).
        if not self._wakeup_pending:
            self._wakeup_pending = True
            self._write_to_self()  # type: ignore[attr-defined]  # EventLoop's
        return handle

    @cython.locals(seconds=cython.double)
    def call_later(
        self,
        delay: float,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> TimerHandle:
        if delay is None:
            raise TypeError("delay must not be None")
        if type(delay) is float:
            # Compiled, C doubles (the same IEEE sum): one float made, the
            # due time, rather than the clock's reading and the sum.
            seconds = delay
            return self._call_at(_now(self) + seconds, callback, args, context)
        return self._call_at(_now(self) + delay, callback, args, context)

    def call_at(
        self,
        when: float,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> TimerHandle:
        if when is None:
            raise TypeError("when cannot be None")
        return self._call_at(when, callback, args, context)

    def _call_at(
        self, when: float, callback: Callable[..., object], args: tuple[Any, ...], context: Any
    ) -> TimerHandle:
        if self._closed:
            raise RuntimeError("Event loop is closed")
        if self._debug:
            self._check_thread()
            self._check_callback(callback, "call_at")
            timer = TimerHandle(when, callback, args, self, context, True)
            # Recorded from call_at/call_later's frame: drop that one.
            if timer._source_traceback and not _COMPILED:
                del timer._source_traceback[-1]
        else:
            timer = new_timer(TimerHandle, when, callback, args, self, context)
        # Ordered as heapq orders asyncio's TimerHandles, ties included, at
        # the cost of C double comparisons (_timerheap.py).
        self._timers.push(timer)
        timer._scheduled = True
        return timer

    def _bind_poller(self) -> None:
        """Bind the poller's poll once; note whether the turn may call its
        poll_wait as C instead (compiled, a field Python cannot see: set
        here, in _LoopCore's own code)."""
        self._poll = self._poller.poll
        self._direct_poller = self._poller if polls_directly(self._poller) else None
        # An EpollPoller's wait the turn makes itself (_run_once).  Compiled,
        # into the poller's C array of events, which phase 1c reads in place
        # (_queue_epoll_events): no list, tuple or int made per event.
        # Interpreted, its epoll's poll call: poll()'s own Python frame costs
        # ~800 instructions a turn, 3% of a 1 KiB echo round trip (callgrind,
        # 3.11).
        poller = self._direct_poller
        self._epoll_poller = poller if type(poller) is EpollPoller else None
        self._poll_readable = self._poller.READABLE
        self._poll_writable = self._poller.WRITABLE

    def _init_timers(self) -> None:
        """Give the loop its timer heap, once (compiled, both fields are read-only to Python)."""
        self._timers = TimerHeap()
        self._scheduled = self._timers.items  # (the same list for the loop's life)

    def _timer_handle_cancelled(self, handle: TimerHandle) -> None:
        """Called by TimerHandle.cancel(): count it for lazy heap pruning."""
        if handle._scheduled:
            self._timer_cancelled_count += 1

    def _check_closed(self) -> None:
        if self._closed:
            raise RuntimeError("Event loop is closed")

    def get_debug(self) -> bool:
        return self._debug

    def is_running(self) -> bool:
        return self._thread_id is not None

    def is_closed(self) -> bool:
        return self._closed

    def stop(self) -> None:
        """Finish the current turn (and one more if called before running), then return."""
        self._stopping = True

    def create_future(self) -> asyncio.Future[Any]:
        if cython.compiled:
            if _FAST_FUTURE and self._get_debug_is_ours and not self._debug:
                # What Future(loop=self) makes, without its __init__: that
                # parses its keyword and asks get_debug() by a method call,
                # whose answer (False) is known here (_new_future.h).
                return new_future(self)  # type: ignore[no-any-return]
            # `_Future(loop=self)` would build a dict for its keyword per
            # call; this one is made once, in __init__ (and dropped by
            # close(): see there).  Future's C __init__ only reads it.
            kwargs = self._loop_kwargs
            if kwargs is None:
                kwargs = {"loop": self}
            return PyObject_Call(_Future, (), kwargs)  # type: ignore[no-any-return]
        return _Future(loop=self)  # type: ignore[arg-type]  # self is always an EventLoop

    def create_task(
        self, coro: Any, *, name: str | None = None, context: contextvars.Context | None = None
    ) -> asyncio.Task[Any]:
        """Wrap a coroutine in asyncio's Task (or the task factory's), and schedule it."""
        if self._closed:
            raise RuntimeError("Event loop is closed")
        if (
            self._instruments is None
            and self._task_factory is None
            and name is None
            and context is None
            and not self._debug
            and self._get_debug_is_ours
        ):
            # The usual task, made here rather than by _make_task (one Python
            # frame fewer, interpreted): no source traceback to trim (no
            # debug mode), no name to pass (asyncio's Task-N).
            if cython.compiled:
                # As in create_future: the {"loop": self} made once, not a
                # dict per task, and the (coro,) reused (_new_future.h).
                return new_task(_Task, coro, self._loop_kwargs)  # type: ignore[no-any-return,arg-type]  # (open: a dict)
            return _Task(coro, loop=self)  # type: ignore[arg-type]
        if self._instruments is not None:
            # Reported spawned, then its first step queued (_instrument.py).
            return self._instruments.spawn(_make_task, self, coro, name, context)  # type: ignore[no-any-return]
        return _make_task(self, coro, name, context)

    def _check_callback(self, callback: Any, method: str) -> None:
        if coroutines.iscoroutine(callback) or coroutines.iscoroutinefunction(callback):
            raise TypeError(f"coroutines cannot be used with {method}()")
        if not callable(callback):
            raise TypeError(f"a callable object was expected by {method}(), got {callback!r}")

    def _check_thread(self) -> None:
        """Debug-mode guard against calling non-threadsafe methods from another thread."""
        if self._thread_id is None:
            return
        if threading.get_ident() != self._thread_id:
            raise RuntimeError(
                "Non-thread-safe operation invoked on an event loop other than the current one"
            )

    def _registered_fd(self, fileobj: Any) -> int:
        """The fd of `fileobj`, found as asyncio's selector finds it.

        Its fileno() when that is valid; otherwise (a socket closed or
        detached since it was registered: fileno() is -1) the fd it was
        registered with, looked up by the object itself; otherwise the
        selectors module's ValueError.
        """
        try:
            return _fileobj_to_fd(fileobj)
        except ValueError:
            for fd, registered in self._fileobjs.items():
                if registered is fileobj:
                    return fd
            raise

    def _note_registered(self, fd: int, fileobj: Any) -> None:
        """A new registration of fd: remember the object it was made with (not an int)."""
        if not isinstance(fileobj, int):
            self._fileobjs[fd] = fileobj

    def _drop_registration(self, fd: int) -> None:
        """The poller refused a change to fd's interest: forget fd entirely, as
        asyncio's selector does when epoll_ctl fails (its handles are left
        uncancelled there too)."""
        entry = self._readers.pop(fd, None)
        if type(entry) is _StreamTransport:
            self._transports[fd] = entry  # (see _reader_removed)
            self._read_handles.pop(entry, None)
        self._writers.pop(fd, None)
        self._fileobjs.pop(fd, None)
        self._poller.set_interest(fd, False, False)

    @cython.locals(tr=CStream)
    def _add_transport_reader(self, transport: Any, start: bool) -> None:
        """Make a stream transport its fd's reader, with no Handle.

        The reader entry (``_readers[fd]``) is the transport itself: when the
        fd is readable, the turn queues the transport, and the run phase
        calls its read_event (_run_transport), a C call when compiled, in a
        context copied here when reading starts, as a Handle's is.  So an
        idle connection costs no reader Handle (96 bytes), bound method (64)
        or weak reference in ``_transports`` (88, and its dict entry).

        The entry is made with the transport (`start` False: its fd is
        polled, but with no context a read is skipped) and reading starts a
        turn later, when its _start_reading runs (`start` True), as asyncio's
        transport starts then.  From the transport's making until reading
        stops, this entry is what says that the fd is a transport's
        (_ensure_fd_no_transport); from then on, ``_transports`` does.
        """
        self._check_closed()
        fd = transport._sock_fd
        if type(transport) is not _StreamTransport:
            # (A subclass: the run phase recognises only the class itself.)
            if start:
                self._add_reader(fd, transport._read_ready)
            else:
                self._transports[fd] = transport
            return
        tr = transport
        old = self._readers.get(fd)
        # A new context for each start: a read queued before it (none
        # then) is skipped (_run_transport), as a cancelled Handle is.
        tr._read_ctx = _copy_context() if start else None
        if old is transport:
            return
        self._readers[fd] = transport
        if old is None:
            writing = fd in self._writers
            try:
                self._poller.set_interest(fd, True, writing)
            except BaseException:
                del self._readers[fd]
                tr._read_ctx = None
                if writing:
                    self._drop_registration(fd)
                raise
        else:
            self._reader_removed(fd, old)
        if start:
            # Reading again (after pause_reading or a kept-open EOF): the
            # entry says whose fd it is, not _transports any more.
            owner = self._transports.pop(fd, None)
            if owner is not None and owner is not transport:
                self._transports[fd] = owner  # (not this fd's entry to drop)

    @cython.locals(tr=CStream)
    def _reader_removed(self, fd: int, entry: Any) -> None:
        """`entry` is no longer fd's reader: cancel it, or, for a stream
        transport, void any read queued for it (its context goes: the read
        is skipped) and note it in ``_transports`` again, weakly, where
        asyncio's loop keeps every transport."""
        if type(entry) is _StreamTransport:
            tr = entry
            tr._read_ctx = None
            tr._read_queued = None
            self._transports[fd] = entry
            if self._read_handles:
                self._read_handles.pop(entry, None)
        else:
            entry.cancel()

    # _add_reader/_add_writer and _remove_reader/_remove_writer are mirror
    # images written out: one shared body cost 1-10% more instructions per
    # registration compiled (callgrind), and sock_* registers per wait.

    def _add_reader(self, fileobj: Any, callback: Callable[..., object], *args: Any) -> Handle:
        """Register a reader without the transport check: transports use this directly."""
        self._check_closed()
        # Transports pass their fd: no method call for them.
        fd = fileobj if type(fileobj) is int and fileobj >= 0 else self._registered_fd(fileobj)
        handle = Handle(callback, args, self, None, self._debug)
        old = self._readers.get(fd)
        self._readers[fd] = handle
        if old is not None:
            self._reader_removed(fd, old)
        else:
            writing = fd in self._writers
            try:
                self._poller.set_interest(fd, True, writing)
            except BaseException:
                del self._readers[fd]
                if writing:
                    self._drop_registration(fd)
                raise
            if not writing:
                self._note_registered(fd, fileobj)
        return handle

    def _remove_reader(self, fileobj: Any) -> bool:
        if self._closed:
            return False
        fd = fileobj if type(fileobj) is int and fileobj >= 0 else self._registered_fd(fileobj)
        entry = self._readers.pop(fd, None)
        if entry is None:
            return False
        writing = fd in self._writers
        if writing:
            try:
                self._poller.set_interest(fd, False, True)
            except BaseException:
                if type(entry) is _StreamTransport:
                    self._transports[fd] = entry  # (as in _drop_registration)
                self._drop_registration(fd)
                raise
        else:
            self._poller.set_interest(fd, False, False)
            if self._fileobjs:
                self._fileobjs.pop(fd, None)
        # Cancel: the handle (or transport) may already sit in this turn's
        # ready queue.
        self._reader_removed(fd, entry)
        return True

    def _add_writer(self, fileobj: Any, callback: Callable[..., object], *args: Any) -> Handle:
        self._check_closed()
        fd = fileobj if type(fileobj) is int and fileobj >= 0 else self._registered_fd(fileobj)
        handle = Handle(callback, args, self, None, self._debug)
        old = self._writers.get(fd)
        self._writers[fd] = handle
        if old is not None:
            old.cancel()
        else:
            reading = fd in self._readers
            try:
                self._poller.set_interest(fd, reading, True)
            except BaseException:
                del self._writers[fd]
                if reading:
                    self._drop_registration(fd)
                raise
            if not reading:
                self._note_registered(fd, fileobj)
        return handle

    def _remove_writer(self, fileobj: Any) -> bool:
        if self._closed:
            return False
        fd = fileobj if type(fileobj) is int and fileobj >= 0 else self._registered_fd(fileobj)
        handle = self._writers.pop(fd, None)
        if handle is None:
            return False
        reading = fd in self._readers
        if reading:
            try:
                self._poller.set_interest(fd, True, False)
            except BaseException:
                self._drop_registration(fd)
                raise
        else:
            self._poller.set_interest(fd, False, False)
            if self._fileobjs:
                self._fileobjs.pop(fd, None)
        handle.cancel()
        return True

    def _park_reader(self, fd: int) -> None:
        """_remove_reader for a sock_* read that completed: the next read on
        the same socket usually comes a moment later, so the fd stays known
        to the poller, only silenced (poller.park), if no writer is on it."""
        handle = self._readers.pop(fd)
        handle.cancel()  # type: ignore[union-attr]  # (a sock_* read's: a Handle)
        writing = fd in self._writers
        if writing or self._park is None:
            self._poller.set_interest(fd, False, writing)
        else:
            self._park(fd)
        if not writing and self._fileobjs:
            self._fileobjs.pop(fd, None)

    def _note_overrides(self) -> None:
        """Note whether _run_once and _run_ready are tidal's own, for this loop's runs.

        Both stay replaceable, by a subclass or on the instance (CPython's
        tests count turns that way), as on asyncio's loop.  Compiled, a call
        to a replaceable (cpdef) method looks it up on the instance first, on
        3.12 and later by name every time (the dict version tags that made it
        a comparison on 3.11 are gone): two lookups and a bound method per
        turn, ~5% of a turn that runs one callback.  So the question is asked
        here, when a loop is made and when it starts running, and the turns
        then call tidal's own as C functions.  (A replacement made while the
        loop runs takes effect at its next run.)
        """
        # Tidal's own is a bound method of _LoopCore's function: anything
        # else (a subclass's method, a callable put on the instance) is not.
        # The instance's __dict__ is not looked at: once it exists (reading
        # it makes it, on 3.11), Python stops specializing method calls on
        # the loop (loop.call_soon from Python code: a full lookup per call).
        # (Compiled, `_LoopCore._run_once` would be a new wrapper each time:
        # the function is taken from the class's namespace.)
        core = vars(_LoopCore)
        self._run_once_is_ours = getattr(self._run_once, "__func__", None) is core["_run_once"]
        self._run_ready_is_ours = getattr(self._run_ready, "__func__", None) is core["_run_ready"]
        # What asyncio's Future asks the loop (create_future).
        self._get_debug_is_ours = getattr(self.get_debug, "__func__", None) is core["get_debug"]

    def _run_turns(self) -> None:
        """run_forever's loop, here so that each turn is a C call and the stop test a field read."""
        if self._run_once_is_ours:
            while True:
                _LoopCore._run_once(self)
                if self._stopping:
                    break
        else:
            while True:
                self._run_once()
                if self._stopping:
                    break

    def _run_once(self) -> None:
        """One turn: poll I/O, handle time, run ready (see the module essay); and
        the turns after it that would only run what is ready (phase 3)."""
        timers = self._timers
        scheduled = timers.items
        ready = self._ready

        # Phase 1a: drop cancelled timers.
        sched_count = len(scheduled)
        if (
            sched_count > _MIN_SCHEDULED_TIMER_HANDLES
            and self._timer_cancelled_count / sched_count > _MIN_CANCELLED_TIMER_HANDLES_FRACTION
        ):
            live = []
            for timer in scheduled:
                if timer._cancelled:
                    timer._scheduled = False
                else:
                    live.append(timer)
            timers.replace(live)
            self._timer_cancelled_count = 0
        else:
            while scheduled:
                if cython.compiled:
                    timer = as_timer(scheduled[0])  # (no MRO walk: _handle_layout.h)
                else:
                    timer = scheduled[0]
                if not timer._cancelled:
                    break
                self._timer_cancelled_count -= 1
                timers.pop()
                timer._scheduled = False

        # Phase 1b: wait for I/O, no longer than the first timer; and not at
        # all when the poll could only find the loop's own wake-up bytes.
        # That is when callbacks are ready (the poll would not wait) and no
        # fd but the wake-up pipe is watched (the self-pipe is the one reader
        # from __init__ to close) with no signal handler on it: a thread's
        # call_soon_threadsafe has already put its handle in the ready queue,
        # and its byte only exists to end a wait.  Such a poll is a system
        # call costing more than the rest of a turn of a call_soon, future or
        # task-step chain.  With any other fd watched, every turn polls, as
        # asyncio's loop does: I/O that is ready when a turn begins is seen
        # by that turn.  A stopping loop polls too.
        event_list = None
        nevents = 0  # compiled: how many events an EpollPoller's wait_events left
        nready = _ready_len(ready)
        if not (
            nready
            and len(self._readers) <= 1
            and not self._writers
            and not self._signal_handlers
            and not self._stopping
        ):
            if not (nready or self._stopping):
                # About to wait.  A thread's call_soon_threadsafe only writes
                # a wake-up byte while none is pending: clearing the flag
                # *before* looking at the ready queue again means a handle
                # appended after this line either is seen below or comes
                # with a fresh byte that ends the poll.  A poll that does
                # not wait leaves the flag alone: a loop that does not wait
                # needs no byte to wake it, so the threads then write none.
                self._wakeup_pending = False
                nready = _ready_len(ready)
            # The wait in seconds, -1.0 for "no limit".  Compiled, the
            # arithmetic is C doubles (the heap already holds due times as
            # floats).
            if nready or self._stopping:
                wait = 0.0
            elif scheduled:
                timer = scheduled[0]
                when = timer._when
                wait = when - _now(self)
                if wait > _MAXIMUM_WAIT_S:
                    wait = _MAXIMUM_WAIT_S
                elif wait < 0.0:
                    wait = 0.0
            else:
                wait = -1.0

            instruments = self._instruments
            self._turn += 1  # odd: waiting (the watchdog's counter, a C increment)
            if cython.compiled and instruments is None and self._direct_poller is not None:
                # A C call, the wait a C double (see _poller.DirectPoller).
                if self._epoll_poller is not None:
                    nevents = self._epoll_poller.wait_events(wait)
                else:
                    event_list = self._direct_poller.poll_wait(wait)
            else:
                # poll's timeout: None, or asyncio's ints at the bounds, or a float.
                # (`wait` is a float: compared with floats, the interpreter's
                # specialized comparison, no call.)
                if wait < 0.0:
                    timeout: float | None = None
                elif wait == 0.0:
                    timeout = 0
                elif wait == _MAXIMUM_WAIT_S:
                    timeout = _MAXIMUM_SELECT_TIMEOUT
                else:
                    timeout = wait
                if instruments is not None:
                    # Compiled, the wait a C call here too (a direct poller),
                    # the timeout object made only for the hooks.
                    if cython.compiled and self._epoll_poller is not None:
                        # The events left where the kernel wrote them, as
                        # uninstrumented (phase 1c): no list of them.
                        nevents = instruments.wait_events(self._epoll_poller, timeout, wait)
                    elif cython.compiled:
                        event_list = instruments.io_wait(self._poll, timeout, self._direct_poller, wait)
                    else:
                        event_list = instruments.io_wait(self._poll, timeout, None, wait)
                elif not cython.compiled and self._epoll_poller is not None:
                    # EpollPoller.poll's call, made here (see _bind_poller).
                    epoll = self._epoll_poller
                    event_list = epoll._epoll.poll(timeout, len(epoll._masks) or 1)
                else:
                    event_list = self._poll(timeout)
            self._turn += 1
        else:
            self._turn += 2  # a new turn all the same, to the watchdog

        # Phase 1c: queue the reader/writer handles of ready fds.
        if event_list:
            _queue_events(self, event_list)
            # The callbacks run below this frame: their tracebacks keep it,
            # and so its locals.  (Only set here: a turn that polled nothing
            # or skipped the poll has nothing to drop.)
            event_list = None
        elif nevents and cython.compiled:  # (interpreted: 0, one local tested)
            # (nevents is only ever set by an EpollPoller's wait.)
            _queue_epoll_events(self, self._epoll_poller._events, nevents)  # type: ignore[union-attr]

        # Phase 2: due timers join the ready queue.  Timers within one clock
        # tick of now count as due, or a timer could be polled for 0 s forever.
        # (No timers, no clock read: a busy turn of call_soon never asks.)
        if scheduled:
            end_time = _now(self) + self._clock_resolution
            while scheduled:
                if cython.compiled:
                    timer = as_timer(scheduled[0])  # (as in phase 1a)
                else:
                    timer = scheduled[0]
                when = timer._when
                if when >= end_time:
                    break
                timers.pop()
                timer._scheduled = False
                call_one(self._ready_append, timer)

        timer = None  # (as event_list above)

        # Phase 3: run what is ready now.
        nready = _ready_len(ready)
        if self._run_ready_is_ours:
            _LoopCore._run_ready(self, nready)
            # The next turns, here for as long as each would be phase 3
            # alone: the poll skipped (phase 1b's test), not stopping
            # (run_forever's test between turns), this method not
            # overridden (an override, calling it through super(), sees
            # every turn), and phases 1a and 2 with nothing to do (no
            # timer, or none due: _timers_at_rest, tested last, as it may
            # read the clock).  Such a turn is what the next _run_once would
            # do, without its call and set-up (~100 instructions a turn,
            # compiled): a Queue ping-pong or a chain of task steps runs one
            # callback a turn, and so does the turn after a sleep's timer.
            # Whatever needs more returns, and the next _run_once does it.
            # (Compiled only: interpreted, these tests cost more than the
            # call they save, +1,600 instructions a turn of a call_soon chain.)
            while (
                cython.compiled
                and not self._stopping
                and self._run_once_is_ours
                and _ready_len(ready)
                and len(self._readers) <= 1
                and not self._writers
                and not self._signal_handlers
                and (not scheduled or _timers_at_rest(self, scheduled))
            ):
                self._turn += 2  # (as for a skipped poll)
                _LoopCore._run_ready(self, _ready_len(ready))
        else:
            self._run_ready(nready)

    def _run_ready(self, ntodo: int) -> None:
        """Run the first `ntodo` ready handles: the one place that picks what runs next.

        A seeded scheduler (for replayable tests) permutes the ready queue
        here, and nowhere else.
        """
        if self._observed:
            self._run_ready_observed(ntodo)
            return
        popleft = self._ready_popleft
        if not self._queued_reads:
            # Handles only (the turns of a call_soon chain, of task steps):
            # no test per handle.
            for _ in range(ntodo):
                if cython.compiled:
                    # (The handle's class known by a comparison, not an MRO
                    # walk: _handle_layout.h's as_handle.)
                    handle = as_handle(call_none(popleft))
                else:
                    handle = popleft()
                if handle._cancelled:
                    continue
                _run_one(handle)
        else:
            for _ in range(ntodo):
                item = call_none(popleft)
                if type(item) is _StreamTransport:
                    self._queued_reads -= 1
                    _run_transport(self, item)
                    continue
                handle = item
                # One reference while it runs, not two: a handle that only
                # this frame holds is kept for reuse once it has run.
                item = None
                if handle._cancelled:
                    continue
                _run_one(handle)
        # A callback's traceback may keep this frame: not the last handle
        # (asyncio's _run_once does the same).
        handle = None

    def _run_ready_observed(self, ntodo: int) -> None:
        """The debug/instrumented twin of the fast path: slow-callback warnings, hooks."""
        popleft = self._ready_popleft
        instruments = self._instruments
        debug = self._debug
        task = None
        for _ in range(ntodo):
            item = call_none(popleft)  # (as in _run_ready)
            transport = None
            if type(item) is _StreamTransport:
                self._queued_reads -= 1
                # (Its type known: a cast, not a type test walking the MRO.)
                tr = cython.cast(CStream, item)
                if tr._read_ctx is None or tr._read_queued is not tr._read_ctx:
                    continue  # (as in _run_transport)
                if instruments is not None and instruments.bare_reads and not debug:
                    # Only a tracer listens: told the transport, no Handle
                    # (its records as C calls, as for the I/O wait).
                    if instruments._tracer._read_began(item, tr._read_ctx):  # type: ignore[union-attr]  # (bare_reads: a tracer)
                        instruments._tracer_failed("before_callback")
                    _run_transport(self, item)
                    if instruments._tracer is not None and instruments._tracer._callback_ended():
                        instruments._tracer_failed("after_callback")
                    continue
                # What is observed is a Handle, as on asyncio's loop; what
                # runs is the read itself, as unobserved (below).
                transport = item
                item = _transport_handle(self, item)
            if cython.compiled:
                handle = as_handle(item)  # (as in _run_ready)
            else:
                handle = item
            item = None  # (as in _run_ready)
            if handle._cancelled:
                continue
            # (The hooks report and never raise: an instrument that does is
            # removed, and the handle taken off the queue runs all the same.)
            if instruments is not None:
                task = instruments.before(handle)
            if debug:
                _run_debug(self, handle)
            elif transport is not None:
                # read_event as a C call, not the Handle's bound _read_ready
                # through a Python call (~1,000 instructions a read, compiled).
                _run_transport(self, transport)
            else:
                _run_one(handle)
            if instruments is not None:
                instruments.after(handle, task)
        handle = task = tr = transport = None  # type: ignore[assignment]  # (as in _run_ready)


if not cython.compiled:
    # Interpreted, the loop's fields are slots, as compiled they are C
    # fields: ~56 attributes in an instance dict (past the 30 keys a dict
    # shares with its class's other instances) and 3.12 specializes no
    # method load on the loop (asyncio.sleep's loop.call_later: a full
    # lookup each time).  The instance dict stays for anything else.
    _LoopCore = type(  # type: ignore[misc,assignment]
        _LoopCore.__name__,
        _LoopCore.__bases__,
        {
            **{k: v for k, v in vars(_LoopCore).items() if k not in ("__dict__", "__weakref__")},
            "__slots__": (*_LoopCore.__annotations__, "__dict__", "__weakref__"),
        },
    )


def _run_debug(core: _LoopCore, handle: Handle) -> None:
    """Run `handle` in debug mode: asyncio's slow-callback warning.  Out of
    _run_ready_observed: its locals (a try block, the warning's call) made
    every traced turn pay for their set-up and clean-up (~150 instructions)."""
    try:
        core._current_handle = handle
        t0 = _now(core)
        handle._run()
        dt = _now(core) - t0
        if dt >= core.slow_callback_duration:
            logger.warning("Executing %s took %.3f seconds", _format_handle(handle), dt)
    finally:
        core._current_handle = None


def _call_soon_of(loop: Any) -> Any:
    """Compiled: `loop.call_soon` got as an attribute (asyncio's C Task and
    Future on 3.11 do, per call): the loop's one bound builtin method of
    call_soon's C entry, made the first time (_call_soon_entry.h)."""
    # (The descriptor has checked that it is one: no second type test.)
    core = cython.cast(_LoopCore, loop)
    bound = core._call_soon_bound
    if bound is None:
        bound = new_bound_call_soon(loop)
        if not core._closed:  # (kept by an open loop only: see close())
            core._call_soon_bound = bound
    return bound


def _soon_plain(loop: Any, callback: Any, args: tuple[Any, ...], context: Any) -> Any:
    """Compiled: call_soon(callback, *args, context=context) as asyncio's C
    Task and Future call it, from _call_soon_entry.h without Cython's
    argument parsing: the handle queued, or None for a closed or debug
    loop (the entry then takes call_soon's own path, which raises or
    records)."""
    # (The entry has checked that it is a loop: no second type test.)
    core = cython.cast(_LoopCore, loop)
    if core._closed or core._debug:
        return None
    handle = new_handle(Handle, callback, args, loop, context)
    call_one(core._soon_append, handle)
    return handle


# Compiled: call_soon is entered through a C function that takes the C
# Task's calls to _soon_plain directly (and swaps the keyword name of any
# other for the interned one Cython's parsing matches first), and got from
# a loop as a bound method made once per loop, not per call
# (_call_soon_entry.h).
install_call_soon(vars(_LoopCore)["call_soon"], _LoopCore, _call_soon_of, _soon_plain)


class _LoopDict(_LoopCore):
    """_LoopCore with an instance dict of its own (see _loop.pxd: why, and
    why only from 3.12).  Interpreted, nothing more than _LoopCore."""


if sys.version_info >= (3, 12):
    _LoopBase = _LoopDict
else:
    _LoopBase = _LoopCore


class EventLoop(_LoopBase, asyncio.AbstractEventLoop):  # type: ignore[misc]
    """A complete asyncio event loop: pass ``tidal.new_event_loop`` as loop_factory."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass that keeps _timer_handle_cancelled and get_debug (the
        simulated loop) gets the C path of handle.cancel() too (_handles)."""
        super().__init_subclass__(**kwargs)
        own = cls.__mro__[: cls.__mro__.index(EventLoop)]
        if cython.compiled and not any(
            name in vars(klass) for klass in own for name in ("_timer_handle_cancelled", "get_debug")
        ):
            hook_subclass(cls)

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        poller: Poller | None = None,
        socket_factory: SocketFactory | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        """The seams (DESIGN.md): each defaults to the real thing.

        `clock` (``now()``, ``resolution``) is what the loop reads time from,
        `poller` what it waits with (``tidal._poller``'s interface);
        `socket_factory` makes every socket the loop opens for the program and
        `resolver` answers its getaddrinfo/getnameinfo (``tidal.abc``).
        """
        if cython.compiled:
            # No instance dict until something is stored in one: while there
            # is none, Python specializes method calls on the loop (_loop.pxd).
            unmake_empty_dict(self)
        self._clock = MonotonicClock() if clock is None else clock
        self._clock_now = self._clock.now
        self._clock_resolution = self._clock.resolution
        # Linux only: elsewhere time.monotonic() may read another clock than
        # the C monotonic() (macOS: mach_absolute_time).
        self._clock_is_monotonic = self._clock_now is time.monotonic and sys.platform == "linux"
        # A ManualClock's time is a field: read as such, no call.
        self._clock_field = self._clock if isinstance(self._clock, ManualClock) else None
        if type(self).time is not vars(_LoopCore)["time"]:
            # A subclass's own time() is what asyncio's loop reads for every
            # due time and every timeout: so is it here.
            self._clock_now = self.time
            self._clock_is_monotonic = False
            self._clock_field = None
        self._poller = default_poller() if poller is None else poller
        self._socket_factory = socket.socket if socket_factory is None else socket_factory
        self._resolver = _dns.ThreadResolver() if resolver is None else resolver
        # create_future's and create_task's keyword argument to asyncio's
        # Future and Task, made once (compiled, see create_future).
        self._loop_kwargs = {"loop": self}
        self._ready = collections.deque()
        # Bound once, here: a deque has no C API, and looking a method up on
        # it (or on the poller) per call or per turn costs more than the call.
        # Neither object is replaced after this.
        self._ready_append = self._ready.append
        self._soon_append = self._ready_append
        self._ready_popleft = self._ready.popleft
        self._bind_poller()
        # park is optional in the poller interface (set_interest does its job).
        self._park = getattr(self._poller, "park", None)
        self._init_timers()
        self._note_overrides()
        self._timer_cancelled_count = 0
        self._queued_reads = 0
        self._wakeup_pending = False
        # fd -> reader/writer Handle, made once at registration.
        self._readers = {}
        self._read_handles = {}
        self._writers = {}
        self._fileobjs = {}
        # fd -> transport, so add_reader/sock_* refuse an fd a transport owns.
        self._transports = weakref.WeakValueDictionary()
        self._io_counts = IOCounts()
        self._closed = False
        self._stopping = False
        self._thread_id = None
        self._debug = False
        self._instruments = None
        self._observed = False
        self._turn = 0
        self._watchdog = None
        self._exception_handler = None
        self._task_factory = None
        self._current_handle = None
        self._default_executor = None
        self._executor_shutdown_called = False
        self._asyncgens = weakref.WeakSet()
        self._asyncgens_shutdown_called = False
        self._old_agen_hooks = None
        self._coroutine_origin_tracking_enabled = False
        self._coroutine_origin_tracking_saved_depth = None
        self.slow_callback_duration = 0.1
        # Signal state (see _signals.py).
        self._signal_handlers = {}
        self._ssock, self._csock = socket.socketpair()
        self._ssock.setblocking(False)
        self._csock.setblocking(False)
        self._add_reader(self._ssock.fileno(), self._read_from_self)
        # asyncio's rule (-X dev or PYTHONASYNCIODEBUG), asked as asyncio's
        # loop asks it, at creation: a test or tool that patches the helper
        # changes both loops' default.
        self.set_debug(coroutines._is_debug_mode())  # type: ignore[attr-defined]  # typeshed omits it

    def __repr__(self) -> str:
        return (
            f"<{self.__class__.__name__} running={self.is_running()} "
            f"closed={self.is_closed()} debug={self.get_debug()}>"
        )

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        if not self.is_closed():
            _warn(f"unclosed event loop {self!r}", ResourceWarning, source=self)
            if not self.is_running():
                self.close()

    # ------------------------------------------------------------------
    # Waking the loop from other threads and from signals
    # ------------------------------------------------------------------

    def _write_to_self(self) -> None:
        csock = self._csock
        if csock is None:
            return
        try:
            if cython.compiled:
                # The GIL is kept (_syscalls_c): the socket is non-blocking.
                # Letting it go here hands it to the loop's thread, woken by
                # this very byte, so a thread calling call_soon_threadsafe
                # in a loop would give the GIL away at every wake-up and
                # the loop would run its callbacks one at a time; kept, the
                # thread queues until the interpreter's switch interval and
                # the loop then runs the batch (rloop's wake-up keeps it
                # too).  With the flag cleared only before a wait, the
                # threadsafe micro makes 18 wake-up writes a second where
                # it made 189 (strace); its rate moved within the noise.
                send_keeping_gil(csock, csock.fileno(), b"\0")
            else:
                csock.send(b"\0")
        except OSError:
            # The buffer is full: the loop has wake-ups pending already.
            if self._debug:
                logger.debug("Fail to write a null byte into the self-pipe socket", exc_info=True)

    def _read_from_self(self) -> None:
        while True:
            try:
                data = self._ssock.recv(4096)
                if not data:
                    break
                if self._signal_handlers:
                    _signals.process_signal_bytes(self, data)
            except InterruptedError:
                continue
            except BlockingIOError:
                break

    # ------------------------------------------------------------------
    # Running and stopping (the turn itself is _LoopCore._run_once)
    # ------------------------------------------------------------------

    def _check_running(self) -> None:
        if self.is_running():
            raise RuntimeError("This event loop is already running")
        if events._get_running_loop() is not None:
            raise RuntimeError("Cannot run the event loop while another loop is running")

    def _run_forever_setup(self) -> None:
        self._check_closed()
        self._check_running()
        self._set_coroutine_origin_tracking(self._debug)
        self._old_agen_hooks = sys.get_asyncgen_hooks()
        self._thread_id = threading.get_ident()
        sys.set_asyncgen_hooks(
            firstiter=self._asyncgen_firstiter_hook, finalizer=self._asyncgen_finalizer_hook
        )
        events._set_running_loop(self)

    def _run_forever_cleanup(self) -> None:
        self._stopping = False
        self._thread_id = None
        events._set_running_loop(None)
        self._set_coroutine_origin_tracking(False)
        if self._old_agen_hooks is not None:
            sys.set_asyncgen_hooks(*self._old_agen_hooks)
            self._old_agen_hooks = None

    def run_forever(self) -> None:
        """Run turns until stop() is called."""
        # Check before the try: a refused run (closed loop, or called while a
        # loop runs) must not reach the cleanup, which would un-set the outer
        # run's running loop and thread id (CPython gh-130145).
        self._check_closed()
        self._check_running()
        try:
            self._run_forever_setup()
            self._note_overrides()
            _observe.loop_running(self)
            if self._instruments is not None:
                self._instruments.run_began()
            try:
                self._run_turns()
            finally:
                if self._instruments is not None:
                    self._instruments.run_ended()
        finally:
            self._run_forever_cleanup()

    # typeshed's signature: on 3.11 a plain generator is accepted too (3.11's
    # ensure_future wraps it in a Task), though typeshed's ensure_future says
    # awaitables only, hence the ignore on that call.
    def run_until_complete(self, future: _AwaitableLike[_T]) -> _T:
        """Run until `future` (a coroutine is wrapped in a Task) is done; return its result."""
        self._check_closed()
        self._check_running()
        new_task = not futures.isfuture(future)
        fut = tasks.ensure_future(future, loop=self)  # type: ignore[arg-type]  # see above
        if new_task:
            # A task we made ourselves: if the loop is interrupted, asyncio
            # does not warn that it was destroyed pending.
            fut._log_destroy_pending = False  # type: ignore[attr-defined]
        fut.add_done_callback(_run_until_complete_cb)
        try:
            self.run_forever()
        except BaseException:
            if new_task and fut.done() and not fut.cancelled():
                # Mark the exception retrieved: it is being raised right now.
                fut.exception()
            raise
        finally:
            fut.remove_done_callback(_run_until_complete_cb)
        if not fut.done():
            raise RuntimeError("Event loop stopped before Future completed.")
        return fut.result()

    def close(self) -> None:
        """Drop pending callbacks, shut the default executor down (without waiting), free fds."""
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self._closed:
            return
        if self._debug:
            logger.debug("Close %r", self)
        self._closed = True
        self._ready.clear()
        self._queued_reads = 0
        self._timers.replace([])
        self._executor_shutdown_called = True
        executor = self._default_executor
        if executor is not None:
            self._default_executor = None
            executor.shutdown(wait=False)
        _signals.remove_all(self)
        if self._ssock is not None:
            self._remove_reader(self._ssock.fileno())
            self._ssock.close()
            self._ssock = None  # type: ignore[assignment]
            self._csock.close()
            self._csock = None  # type: ignore[assignment]
        for fd, entry in list(self._readers.items()):
            self._reader_removed(fd, entry)
        for handle in self._writers.values():
            handle.cancel()
        self._readers.clear()
        self._writers.clear()
        self._fileobjs.clear()
        self._poller.close()
        # What the loop holds that holds it back: a closed loop is freed
        # by reference counting alone once nothing else holds it, as
        # asyncio's is, not at the cyclic GC's next full pass (a thread
        # still holding it while a collection runs would otherwise keep
        # it past that collection).
        self._loop_kwargs = None
        cython.cast(_LoopCore, self)._call_soon_bound = None  # (a C field, not public)
        _observe.loop_closed(self)

    # ------------------------------------------------------------------
    # Instruments (_instrument.py)
    # ------------------------------------------------------------------

    def add_instrument(self, instrument: Instrument) -> None:
        """Have `instrument` told what the loop runs (see tidal.abc.Instrument).

        Any object with some of the hook methods will do; adding one twice
        adds it once.  Takes effect from the loop's next turn.
        """
        if self._instruments is None:
            self._instruments = Instruments(self)
        self._instruments.add(instrument)
        self._observed = True

    def remove_instrument(self, instrument: Instrument) -> None:
        """Stop telling `instrument`; KeyError if it is not on this loop."""
        instruments = self._instruments
        if instruments is None:
            raise KeyError(instrument)
        instruments.remove(instrument)
        if not instruments.instruments:
            # None again: the turn's hot path is back to its field tests.
            self._instruments = None
            self._observed = self._debug

    # ------------------------------------------------------------------
    # Futures and tasks
    # ------------------------------------------------------------------

    def set_task_factory(self, factory: Any) -> None:
        if factory is not None and not callable(factory):
            raise TypeError("task factory must be a callable or None")
        self._task_factory = factory

    def get_task_factory(self) -> Any:
        return self._task_factory

    # ------------------------------------------------------------------
    # Errors
    # ------------------------------------------------------------------

    def get_exception_handler(self) -> Any:
        return self._exception_handler

    def set_exception_handler(self, handler: Any) -> None:
        if handler is not None and not callable(handler):
            raise TypeError(f"A callable object or None is expected, got {handler!r}")
        self._exception_handler = handler

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        """Log the context on asyncio's logger, with tracebacks, as asyncio does."""
        message = context.get("message")
        if not message:
            message = "Unhandled exception in event loop"
        exception = context.get("exception")
        exc_info: Any
        if exception is not None:
            exc_info = (type(exception), exception, exception.__traceback__)
        else:
            exc_info = False
        if (
            "source_traceback" not in context
            and self._current_handle is not None
            and self._current_handle._source_traceback
        ):
            context["handle_traceback"] = self._current_handle._source_traceback
        log_lines = [message]
        for key in sorted(context):
            if key in {"message", "exception"}:
                continue
            value = context[key]
            if key == "source_traceback":
                tb = "".join(traceback.format_list(value))
                value = "Object created at (most recent call last):\n" + tb.rstrip()
            elif key == "handle_traceback":
                tb = "".join(traceback.format_list(value))
                value = "Handle created at (most recent call last):\n" + tb.rstrip()
            else:
                value = _repr_for_log(value)
            log_lines.append(f"{key}: {value}")
        logger.error("\n".join(log_lines), exc_info=exc_info)

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        """Report an error that has no caller to raise to; never raises itself."""
        if self._exception_handler is None:
            try:
                self.default_exception_handler(context)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                logger.error("Exception in default exception handler", exc_info=True)
            return
        try:
            # Run the handler in the context of the object that failed, so a
            # handler reading contextvars sees the failing task's values.
            ctx = None
            thing = context.get("task")
            if thing is None:
                thing = context.get("future")
            if thing is None:
                thing = context.get("handle")
            if thing is not None and hasattr(thing, "get_context"):
                ctx = thing.get_context()
            if ctx is not None and hasattr(ctx, "run"):
                ctx.run(self._exception_handler, self, context)
            else:
                self._exception_handler(self, context)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            try:
                self.default_exception_handler(
                    {
                        "message": "Unhandled error in exception handler",
                        "exception": exc,
                        "context": context,
                    }
                )
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                logger.error(
                    "Exception in default exception handler while handling an "
                    "unexpected error in custom exception handler",
                    exc_info=True,
                )

    # ------------------------------------------------------------------
    # Debug mode
    # ------------------------------------------------------------------

    def set_debug(self, enabled: bool) -> None:
        self._debug = enabled
        self._observed = bool(enabled) or self._instruments is not None
        if self.is_running():
            self.call_soon_threadsafe(self._set_coroutine_origin_tracking, enabled)

    def _set_coroutine_origin_tracking(self, enabled: bool) -> None:
        if bool(enabled) == bool(self._coroutine_origin_tracking_enabled):
            return
        if enabled:
            self._coroutine_origin_tracking_saved_depth = sys.get_coroutine_origin_tracking_depth()
            sys.set_coroutine_origin_tracking_depth(_DEBUG_STACK_DEPTH)
        else:
            sys.set_coroutine_origin_tracking_depth(
                self._coroutine_origin_tracking_saved_depth or 0
            )
        self._coroutine_origin_tracking_enabled = enabled

    # ------------------------------------------------------------------
    # Async generators
    # ------------------------------------------------------------------

    def _asyncgen_finalizer_hook(self, agen: Any) -> None:
        self._asyncgens.discard(agen)
        if not self.is_closed():
            self.call_soon_threadsafe(self.create_task, agen.aclose())

    def _asyncgen_firstiter_hook(self, agen: Any) -> None:
        if self._asyncgens_shutdown_called:
            warnings.warn(
                f"asynchronous generator {agen!r} was scheduled after "
                f"loop.shutdown_asyncgens() call",
                ResourceWarning,
                source=self,
            )
        self._asyncgens.add(agen)

    # The end of a run (_shutdown.py: plain Python, asyncio's names).
    shutdown_asyncgens = _shutdown.shutdown_asyncgens
    shutdown_default_executor = _shutdown.shutdown_default_executor

    # ------------------------------------------------------------------
    # Executor
    # ------------------------------------------------------------------

    def run_in_executor(
        self, executor: Executor | None, func: Callable[[Unpack[_Ts]], _T], *args: Unpack[_Ts]
    ) -> asyncio.Future[_T]:
        self._check_closed()
        if self._debug:
            self._check_callback(func, "run_in_executor")
        if executor is None:
            executor = self._default_executor
            if self._executor_shutdown_called:
                raise RuntimeError("Executor shutdown has been called")
            if executor is None:
                executor = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="asyncio")
                self._default_executor = executor
        return futures.wrap_future(executor.submit(func, *args), loop=self)

    def set_default_executor(self, executor: Any) -> None:
        if not isinstance(executor, concurrent.futures.ThreadPoolExecutor):
            raise TypeError("executor must be ThreadPoolExecutor instance")
        self._default_executor = executor

    # ------------------------------------------------------------------
    # Readers and writers (the registration itself, _add_reader and co.,
    # is per event or flow-control cycle: it lives in _LoopCore)
    # ------------------------------------------------------------------

    def _ensure_fd_no_transport(self, fd: Any) -> None:
        # fileno() -1 (closed, detached) passes: the registration decides.
        fileno = _fileobj_fileno(fd)
        # A reading stream transport is its fd's reader entry; any other
        # transport is in _transports (_add_transport_reader).
        transport = self._readers.get(fileno)
        if type(transport) is not _StreamTransport:
            transport = self._transports.get(fileno)
        if transport is not None and not transport.is_closing():
            raise RuntimeError(f"File descriptor {fd!r} is used by transport {transport!r}")

    def _open_transports(self) -> list[Any]:
        """The loop's transports whose socket may still be open (as asyncio's
        ``_transports`` holds them): those in ``_transports`` and the stream
        transports that are their fd's reader entry.  Callable from another
        thread: it may then raise RuntimeError (a dict changed meanwhile)."""
        found = {id(t): t for t in list(self._transports.values())}
        for entry in list(self._readers.values()):
            if type(entry) is _StreamTransport:
                found[id(entry)] = entry
        return list(found.values())

    def add_reader(
        self, fd: FileDescriptorLike, callback: Callable[[Unpack[_Ts]], Any], *args: Unpack[_Ts]
    ) -> None:
        """Call `callback(*args)` whenever `fd` is readable."""
        self._ensure_fd_no_transport(fd)
        self._add_reader(fd, callback, *args)

    def remove_reader(self, fd: Any) -> bool:
        self._ensure_fd_no_transport(fd)
        return self._remove_reader(fd)

    def add_writer(
        self, fd: FileDescriptorLike, callback: Callable[[Unpack[_Ts]], Any], *args: Unpack[_Ts]
    ) -> None:
        """Call `callback(*args)` whenever `fd` is writable."""
        self._ensure_fd_no_transport(fd)
        self._add_writer(fd, callback, *args)

    def remove_writer(self, fd: Any) -> bool:
        self._ensure_fd_no_transport(fd)
        return self._remove_writer(fd)

    # ------------------------------------------------------------------
    # The watchdog and stats (_watchdog.py, _stats.py), signals (_signals.py),
    # DNS (_dns.py), sockets (_sock.py),
    # connections (_connect.py), servers (_server.py), datagrams.
    # Each lives in its own module; the functions take the loop as `self`
    # and are bound here as methods, so the loop's class stays one class.
    # ------------------------------------------------------------------

    # tidal's own: a thread that reports a step blocking the loop, while it
    # does; the loop's figures (docs/monitoring.md).
    set_watchdog = _watchdog.set_watchdog
    stats = _stats.stats
    collect_stats = _stats.collect_stats

    add_signal_handler = _signals.add_signal_handler
    remove_signal_handler = _signals.remove_signal_handler

    getaddrinfo = _dns.getaddrinfo
    getnameinfo = _dns.getnameinfo

    # `n`, as asyncio's own loops name it; typeshed's ABC says `nbytes`.
    sock_recv = _sock.sock_recv  # type: ignore[assignment]
    sock_recv_into = _sock.sock_recv_into
    sock_recvfrom = _sock.sock_recvfrom
    sock_recvfrom_into = _sock.sock_recvfrom_into
    sock_sendall = _sock.sock_sendall
    sock_sendto = _sock.sock_sendto
    sock_connect = _sock.sock_connect
    sock_accept = _sock.sock_accept
    sock_sendfile = _sendfile.sock_sendfile
    sendfile = _sendfile.sendfile
    # asyncio's private hooks, same names and signatures: called through the
    # loop, so replacing one on an instance (CPython's tests do) takes effect.
    _sock_sendfile_native = _sendfile.sock_sendfile_native
    _sendfile_native = _sendfile.sendfile_native

    create_connection = _connect.create_connection
    create_unix_connection = _connect.create_unix_connection
    connect_accepted_socket = _server.connect_accepted_socket

    # These return tidal's Server, an asyncio.AbstractServer; typeshed's ABC
    # promises asyncio's own Server class (base_events.Server).
    create_server = _server.create_server  # type: ignore[assignment]
    create_unix_server = _server.create_unix_server  # type: ignore[assignment]

    start_tls = _tls.start_tls

    # No reuse_address (3.11 removed it); typeshed's ABC still lists it, and
    # typeshed's own BaseEventLoop ignores the same mismatch.
    create_datagram_endpoint = _datagram.create_datagram_endpoint  # type: ignore[assignment]

    connect_read_pipe = _pipe.connect_read_pipe
    connect_write_pipe = _pipe.connect_write_pipe

    subprocess_exec = _subprocess.subprocess_exec
    subprocess_shell = _subprocess.subprocess_shell


# What a test patches on asyncio's loop class (mock.patch("asyncio.BaseEventLoop.
# create_connection", ...)) is what asyncio's loop runs, and so tidal's: the
# operations made once per connection, server, lookup or transfer (_patched.py;
# not the per-callback ones, which a Python descriptor would slow down).
_patched.follow_asyncio(
    EventLoop,
    (
        "getaddrinfo",
        "getnameinfo",
        "run_in_executor",
        "create_connection",
        "create_unix_connection",
        "connect_accepted_socket",
        "create_server",
        "create_unix_server",
        "start_tls",
        "create_datagram_endpoint",
        "connect_read_pipe",
        "connect_write_pipe",
        "subprocess_exec",
        "subprocess_shell",
        "sendfile",
        "sock_sendfile",
    ),
)


def _handle_cancelled(loop: Any, handle: Any, timer: bool) -> bool:
    """What EventLoop's _timer_handle_cancelled (for a timer) and get_debug do.

    Compiled, _handles calls this as a C function when a handle of an
    EventLoop (exactly: a subclass may override either method) is cancelled,
    which saves two Python method calls per cancelled timeout.
    """
    core: _LoopCore = loop
    if timer:
        scheduled_timer: TimerHandle = handle
        if scheduled_timer._scheduled:
            core._timer_cancelled_count += 1
    return core._debug


if cython.compiled:
    set_cancel_hook(EventLoop, _handle_cancelled)


async def _a_coroutine() -> None:
    """Compiled, an instance of Cython's coroutine type: see below."""


if cython.compiled:
    # A compiled coroutine freed while an exception propagates warns that
    # it was never awaited, as CPython's does (_coroutine_finalize.h).
    _coroutine = _a_coroutine()
    wrap_coroutine_finalize(_coroutine)
    _coroutine.close()
    del _coroutine


def _repr_for_log(value: Any) -> str:
    """repr(value) for the default exception handler's log.

    But for asyncio's C Future or Task once the _asyncio module is freed: at
    interpreter exit, a task whose exception was never retrieved and that
    a module cleared late still holds (sys, say) is finalized after that
    module, and on 3.11 its repr calls a function the module freed with it
    (a segfault).  asyncio's own handler, Python code whose module globals
    are cleared by then, fails earlier and logs nothing; compiled, tidal's
    still runs, and logs the object's plain repr instead.
    """
    if _asyncio_c_alive is not None and _asyncio_c_alive() is None and isinstance(value, _Future):
        return object.__repr__(value)
    return repr(value)


def _format_handle(handle: Any) -> str:
    cb = handle._callback
    if isinstance(getattr(cb, "__self__", None), tasks.Task):
        # A task step: the task's repr says more than "Task.__step".  It
        # names the task's own coroutine; tidal adds the innermost one, where
        # the step left the task awaiting, as "in <inner() at file:line>"
        # (after the task's repr: asyncio's text stays the message's start).
        task = cb.__self__
        inner = _introspect.innermost_coroutine_frame(task)
        coro = task.get_coro()
        if inner is not None and inner is not getattr(coro, "cr_frame", None):
            return f"{task!r} in <{_introspect.frame_location(inner, '() at ')}>"
        return repr(task)
    return str(handle)


__all__ = ["EventLoop"]
