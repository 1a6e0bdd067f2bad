"""The instruments set on a loop, and the dispatch that calls them.

``loop.add_instrument(obj)`` puts an object on the loop's list; the loop then
holds one :class:`Instruments` (``loop._instruments``; None while the list is
empty, which is what the hot path tests).  For each hook it keeps the list of
the instruments' bound methods, rebuilt whenever an instrument comes or goes
(trio's shape): a hook no instrument has is an empty list, so reporting it
costs a truth test, and a method inherited unchanged from
``tidal.abc.Instrument`` (a no-op) is left out the same way.

What the loop itself does not see, this module works out:

* **Task steps.**  asyncio's Task queues each step with ``call_soon``: its
  callback is the task's step wrapper (C Task: a ``TaskStepMethWrapper``;
  Python Task: the bound ``__step``) or its wake-up (the bound
  ``task_wakeup`` / ``__wakeup`` a future calls back), whose ``__self__`` is
  the task.  :func:`task_of` recognises the two by type or name, and no
  other callback bound to a task (``loop.call_soon(task.cancel)`` is a plain
  callback).  An eager task's first step (3.12's eager task factory) runs
  inside create_task, not from the loop: it is not reported as a step.
* **Scheduling.**  While some instrument has ``task_scheduled``, the loop's
  ``_soon_append`` (what call_soon queues through: asyncio's Task and
  Future schedule every step with call_soon) is this module's, which
  reports each task step it queues.  Appends from another
  thread (call_soon_threadsafe) are queued unreported: hooks run on the
  loop's thread only.
* **Spawn and exit.**  The loop's create_task asks :meth:`Instruments.spawn`
  to make the task, so ``task_spawned`` comes before the ``task_scheduled``
  of its first step (which asyncio's Task queues from inside its
  constructor); a task is reported exited after the step that finished it.
  Tasks made without the loop's create_task (``asyncio.Task(coro)`` called
  directly) are seen by their steps only.

An instrument that raises (anything but SystemExit and KeyboardInterrupt,
which propagate as they do from callbacks) is removed, and its error logged
once on the ``asyncio`` logger; the event it was told about goes on as if
nothing happened (a callback about to run still runs).
"""

from __future__ import annotations

import logging
import operator
from asyncio import tasks
from threading import get_ident
from types import BuiltinMethodType, FunctionType, GetSetDescriptorType, MethodType
from typing import TYPE_CHECKING, Any, Callable

try:
    import cython
except ImportError:  # interpreted, without Cython installed
    from types import SimpleNamespace

    cython = SimpleNamespace(
        compiled=False, binding=lambda on: lambda func: func, always_allow_keywords=lambda on: lambda func: func
    )

from ._poller import DirectPoller
from .abc import Instrument
from .trace._recorder import Tracer

if TYPE_CHECKING:
    import asyncio

logger = logging.getLogger("asyncio")

_NO_ARG: Any = object()  # fire()'s `arg` when the hook takes none

# The hooks, in the order tidal.abc.Instrument lists them (the one list).
HOOKS = tuple(name for name in vars(Instrument) if not name.startswith("_"))

# Task classes whose steps the loop may run: C Task, and asyncio's Python one.
_TASK_TYPES: tuple[type, ...] = tuple(
    {tasks.Task, getattr(tasks, "_PyTask", tasks.Task), getattr(tasks, "_CTask", tasks.Task)}
)
# A task's wake-up (C: task_wakeup; Python: __wakeup) and the Python task's step.
_STEP_NAMES = frozenset({"task_wakeup", "__wakeup", "__step", "_Task__wakeup", "_Task__step"})

# What a callback's type says (asked once per type): its __self__ is the task
# whose step it is (asyncio's C TaskStepMethWrapper, whose module varies by
# version); it may be (a built-in bound method: the C Task's wake-up, or
# anything's); never.  Python bound methods are told apart by their function
# (task_of), before this is asked.
_STEP, _MAYBE, _NEVER = 1, 2, 0
_kind_of_type: dict[type, int] = {}


def _kind(callback_type: type) -> int:
    kind = _kind_of_type.get(callback_type)
    if kind is None:
        if callback_type.__name__ == "TaskStepMethWrapper":
            kind = _STEP
        elif callback_type is BuiltinMethodType:
            kind = _MAYBE
        else:
            kind = _NEVER
        _kind_of_type[callback_type] = kind
    return kind


# Whether a built-in method's __self__ type is a task type (asked once per type).
_is_task_type: dict[type, bool] = {}

_MethodType: Any = MethodType
_BuiltinMethodType: Any = BuiltinMethodType
# The Python Task's step and wake-up functions: a bound method (the commonest
# callback: a transport's read, compiled or not) is a task's step if and only
# if its function is one of these, which costs two pointer comparisons where
# asking its __self__'s type and its name cost dict lookups.  (asyncio's
# Python Task is the one task type whose steps are Python functions.)
_py_task: Any = getattr(tasks, "_PyTask", tasks.Task)
_PY_STEP: Any = vars(_py_task).get("_Task__step")
_PY_WAKEUP: Any = vars(_py_task).get("_Task__wakeup")
assert isinstance(_PY_STEP, FunctionType) and isinstance(_PY_WAKEUP, FunctionType)

if not cython.compiled:

    def method_function(method: Any) -> Any:
        """Compiled, PyMethod_GET_FUNCTION (_instrument.pxd): no attribute lookup."""
        return method.__func__

    def method_self(method: Any) -> Any:
        """Compiled, PyMethod_GET_SELF."""
        return method.__self__

    thread_ident = get_ident  # compiled: PyThread_get_thread_ident, a C call

    call_one = operator.call  # compiled: _bound_call.h's; no Python frame either way

    def cfunction_self(method: Any) -> Any:
        """A built-in method's __self__; compiled, PyCFunction_GET_SELF."""
        return method.__self__

    from .trace._recorder import descr_get  # compiled: a C function (_recorder.pxd)

    Py_SIZE = len  # compiled: the C macro (_instrument.pxd)

    def method_def(method: Any) -> int:
        """Compiled, the address of a built-in method's definition (its C
        function and name): what tells a C Task's wake-up from other built-in
        methods in one comparison (see task_of).  Interpreted, 0: unknown."""
        return 0


# The definition of the C Task's wake-up (method_def), once one was seen.
_wakeup_def = -1


def task_of(handle: Any) -> asyncio.Task[Any] | None:
    """The task whose step `handle` runs, or None for a plain callback."""
    global _wakeup_def
    callback = handle._callback  # compiled: a C view of asyncio's Handle (_instrument.pxd)
    callback_type = type(callback)
    if callback_type is _MethodType:
        function = method_function(callback)
        if function is _PY_STEP or function is _PY_WAKEUP:
            return method_self(callback)  # type: ignore[no-any-return]
        return None
    definition = 0
    if callback_type is _BuiltinMethodType:
        # A C Task's wake-up (what a future's completion queues): known by
        # its definition once one was seen, where the test below makes a
        # string of the method's name each time.
        definition = method_def(callback)
        task = cfunction_self(callback)
        if definition == _wakeup_def:
            return task  # type: ignore[no-any-return]
        kind = _MAYBE
    else:
        kind = _kind(callback_type)
        if kind == _NEVER:
            return None
        task = callback.__self__
    if kind == _STEP:
        return task  # type: ignore[no-any-return]
    owner = type(task)
    is_task = _is_task_type.get(owner)
    if is_task is None:
        is_task = _is_task_type[owner] = issubclass(owner, _TASK_TYPES)
    if is_task and callback.__name__ in _STEP_NAMES:
        if definition:
            _wakeup_def = definition  # (there is one: the C Task's)
        return task  # type: ignore[no-any-return]  # one of _TASK_TYPES
    return None


# asyncio's C Task, and its state's descriptor: see _done.
_CTask: Any = getattr(tasks, "_CTask", None)
_TASK_STATE: Any = getattr(_CTask, "_state", None)  # (on the class: the descriptor)
if not isinstance(_TASK_STATE, GetSetDescriptorType):
    _CTask = None


# The state a pending task says: asyncio's C Future gives the interned
# string (3.11+: its static _Py_ID), which a comparison of addresses finds.
_PENDING: Any = "PENDING"


def _done(task: Any) -> bool:
    """``task.done()``: for asyncio's C Task, its state read by the
    descriptor's getter (a C call, compiled) rather than a method call."""
    if _CTask is not None and type(task) is _CTask:
        state = descr_get(_TASK_STATE, task)
        return state is not _PENDING and state != "PENDING"
    return task.done()  # type: ignore[no-any-return]


def _hooks_of(instrument: object, name: str) -> Callable[..., Any] | None:
    """`instrument`'s method for hook `name`, unless it has none or only the no-op default."""
    method = getattr(instrument, name, None)
    if method is None or getattr(type(instrument), name, None) is getattr(Instrument, name):
        return None
    return method  # type: ignore[no-any-return]


class Instruments:
    """The instruments of one loop, and a list of bound methods per hook."""

    # One list per hook (named as the hook), rebuilt by _rebuild.  (Compiled,
    # a cdef class: these are C fields, _instrument.pxd.)
    before_run: list[Callable[[], Any]]
    after_run: list[Callable[[], Any]]
    task_spawned: list[Callable[[Any], Any]]
    task_scheduled: list[Callable[[Any], Any]]
    before_task_step: list[Callable[[Any], Any]]
    after_task_step: list[Callable[[Any], Any]]
    task_exited: list[Callable[[Any], Any]]
    before_callback: list[Callable[[Any], Any]]
    after_callback: list[Callable[[Any], Any]]
    before_io_wait: list[Callable[[Any], Any]]
    after_io_wait: list[Callable[[Any], Any]]

    def __init__(self, loop: Any) -> None:
        self._loop = loop
        self.instruments: list[object] = []
        # Which instrument each bound method belongs to (to remove it if it raises).
        self._owner: dict[int, object] = {}
        # While create_task makes a task: the tasks whose steps were queued meanwhile.
        self._held: list[Any] | None = None
        self._append = loop._ready.append  # the real queue's append
        # The first tidal Tracer among the instruments, told directly (see what the loop reports).
        self._tracer: Tracer | None = None
        # The thread the loop runs in (0: not running): a mirror of its
        # _thread_id, kept by run_began/run_ended, compared per call_soon.
        running_in = loop._thread_id
        self._loop_thread = 0 if running_in is None else running_in
        self._rebuild()

    # -- the list ----------------------------------------------------------

    def add(self, instrument: object) -> None:
        if any(i is instrument for i in self.instruments):
            return  # (as trio: adding twice is adding once)
        self.instruments.append(instrument)
        self._rebuild()

    def remove(self, instrument: object) -> None:
        for i, known in enumerate(self.instruments):
            if known is instrument:
                del self.instruments[i]
                self._rebuild()
                return
        raise KeyError(instrument)

    def _rebuild(self) -> None:
        self._owner.clear()
        self._tracer = tracer = next((i for i in self.instruments if type(i) is Tracer), None)
        for name in HOOKS:
            methods = []
            for instrument in self.instruments:
                if instrument is tracer:
                    continue  # told directly, not through the lists
                method = _hooks_of(instrument, name)
                if method is not None:
                    methods.append(method)
                    self._owner[id(method)] = instrument
            # A new list: a fire() iterating the old one is not disturbed.
            setattr(self, name, methods)
        self._per_handle = tracer is not None or bool(
            self.before_callback or self.after_callback or self.before_task_step
            or self.after_task_step or self.task_exited
        )
        # Only a tracer listens to callbacks: a stream transport's read is
        # told to it as the transport (the loop calls its _read_began), with
        # no Handle made.
        self.bare_reads = tracer is not None and not (self.before_callback or self.after_callback)
        # Queue through report_append only while someone listens for it.
        loop = self._loop
        loop._soon_append = (
            self.report_append if self.task_scheduled or tracer is not None else self._append
        )

    def fire(self, methods: list[Callable[..., Any]], arg: Any = _NO_ARG) -> None:
        """Call each method (with `arg`, if given); one that raises is removed
        (and logged), the others still run."""
        for method in methods:
            try:
                if arg is _NO_ARG:
                    method()
                else:
                    method(arg)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException:
                self._failed(method)

    def _failed(self, method: Callable[..., Any]) -> None:
        self._remove_failed(self._owner.get(id(method)), getattr(method, "__name__", method))

    def _remove_failed(self, instrument: object, hook: object, error: BaseException | None = None) -> None:
        """Log `instrument`'s error in `hook` (the one being handled, unless
        given) and take the instrument off the loop."""
        logger.error(
            "Instrument %r raised in %s: removed from the loop", instrument, hook,
            exc_info=True if error is None else error,
        )
        if instrument is not None and any(i is instrument for i in self.instruments):
            self._loop.remove_instrument(instrument)

    def _tracer_failed(self, hook: str) -> None:
        """The tracer's `hook` returned -1: remove it and log what it caught
        (SystemExit and KeyboardInterrupt propagate, as from fire())."""
        tracer = self._tracer
        if tracer is None:
            return
        error, tracer._error = tracer._error, None
        if isinstance(error, (SystemExit, KeyboardInterrupt)):
            raise error
        self._remove_failed(tracer, hook, error)

    # -- what the loop reports ---------------------------------------------

    def run_began(self) -> None:
        """The loop starts running (in this thread)."""
        self._loop_thread = thread_ident()
        self.fire(self.before_run)

    def run_ended(self) -> None:
        self._loop_thread = 0
        self.fire(self.after_run)

    # The tracer (if any) is told first, by C calls that do not raise (a
    # hook returns -1 when it failed: _tracer_failed); then the lists.

    # Compiled, a built-in method taking one argument (METH_O), as the deque's
    # append it stands in for: the loop's call_soon calls its C function
    # directly (_bound_call.h), where a bound cyfunction is a vectorcall and
    # an argument parse per call_soon.
    @cython.binding(False)
    @cython.always_allow_keywords(False)
    def report_append(self, handle: Any) -> None:
        """The loop's _soon_append while task_scheduled is wanted: queue, then report."""
        call_one(self._append, handle)  # (deque.append as a C call, as the loop's)
        task = task_of(handle)
        if task is None:
            return
        if self._loop_thread != 0 and self._loop_thread != thread_ident():
            return  # another thread's call_soon_threadsafe: hooks run on the loop's
        if self._held is not None:
            self._held.append(task)
        else:
            self._scheduled(task)

    def _scheduled(self, task: Any) -> None:
        tracer = self._tracer
        if tracer is not None and tracer._scheduled(task):
            self._tracer_failed("task_scheduled")
        if self.task_scheduled:
            self.fire(self.task_scheduled, task)

    def _exited(self, task: Any) -> None:
        tracer = self._tracer
        if tracer is not None and tracer._exited(task):
            self._tracer_failed("task_exited")
        if self.task_exited:
            self.fire(self.task_exited, task)

    def spawn(self, make: Callable[..., Any], *args: Any) -> Any:
        """create_task's instrumented path: make the task, then report it spawned and queued."""
        outer = self._held
        held: list[Any] = []
        self._held = held
        try:
            task = make(*args)
        finally:
            self._held = outer
        tracer = self._tracer
        if tracer is not None and tracer._spawned(task):
            self._tracer_failed("task_spawned")
        self.fire(self.task_spawned, task)
        for queued in held:
            if outer is not None:
                outer.append(queued)
            else:
                self._scheduled(queued)
        if task.done():  # an eager task may finish inside create_task
            self._exited(task)
        return task

    def before(self, handle: Any) -> Any:
        """Report what is about to run; returns its task (None for a plain callback)."""
        if not self._per_handle:
            return None
        task = task_of(handle)
        tracer = self._tracer
        if task is None:
            if tracer is not None and tracer._callback_began(handle):
                self._tracer_failed("before_callback")
            if self.before_callback:
                self.fire(self.before_callback, handle)
        else:
            if tracer is not None and tracer._step_began(task):
                self._tracer_failed("before_task_step")
            if self.before_task_step:
                self.fire(self.before_task_step, task)
        return task

    def after(self, handle: Any, task: Any) -> None:
        """Report that what `before` reported has run (and the task's exit, if it ended)."""
        tracer = self._tracer
        if task is None:
            if tracer is not None and tracer._callback_ended():
                self._tracer_failed("after_callback")
            if self.after_callback:
                self.fire(self.after_callback, handle)
            return
        if tracer is not None and tracer._step_ended(task):
            self._tracer_failed("after_task_step")
        if self.after_task_step:
            self.fire(self.after_task_step, task)
        if (self.task_exited or self._tracer is not None) and _done(task):
            self._exited(task)

    def wait_events(self, epoll: Any, timeout: float | None, wait: float) -> int:
        """Compiled only: io_wait for the loop's EpollPoller, whose
        ``wait_events`` leaves the events where the kernel wrote them; the
        loop reads them there, as with no instrument (no list of events:
        ~900 instructions a traced 1 KiB echo round trip, 3.11).  Their count."""
        tracer = self._tracer
        if tracer is not None and tracer._wait_began(timeout):
            self._tracer_failed("before_io_wait")
        if self.before_io_wait:
            self.fire(self.before_io_wait, timeout)
        nevents: int = epoll.wait_events(wait)
        tracer = self._tracer
        if tracer is not None and tracer._wait_ended(nevents):
            self._tracer_failed("after_io_wait")
        if self.after_io_wait:
            self.fire(self.after_io_wait, nevents)
        return nevents

    def io_wait(
        self, poll: Callable[[float | None], list[Any]], timeout: float | None, direct: DirectPoller | None, wait: float
    ) -> list[Any]:
        """The turn's wait for I/O, between before_io_wait and after_io_wait:
        ``poll(timeout)``, or with `direct` (the loop's poller, compiled, when
        it is a DirectPoller) its ``poll_wait(wait)``, a C call where poll is a
        Python call and a float turned back into a C double (~200
        instructions a wait)."""
        tracer = self._tracer
        if tracer is not None and tracer._wait_began(timeout):
            self._tracer_failed("before_io_wait")
        if self.before_io_wait:
            self.fire(self.before_io_wait, timeout)
        if direct is not None:
            events = direct.poll_wait(wait)
        else:
            events = poll(timeout)
        # (A list, from tidal's pollers: its length is one load.)
        nevents = Py_SIZE(events) if type(events) is list else len(events)
        tracer = self._tracer
        if tracer is not None and tracer._wait_ended(nevents):
            self._tracer_failed("after_io_wait")
        if self.after_io_wait:
            self.fire(self.after_io_wait, nevents)
        return events
