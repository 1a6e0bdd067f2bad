"""Handle and TimerHandle: what call_soon/call_later/add_reader give back.

They subclass asyncio's public Handle/TimerHandle so that code doing
``isinstance(h, asyncio.TimerHandle)`` keeps working.  Their fields are
asyncio's ``__slots__``, and the loop makes them through ``new_handle`` /
``new_timer``: interpreted, those call the class, whose ``__init__`` skips
the per-call debug checks asyncio's makes (the loop passes its debug flag
in); compiled, they are C functions (``_handles.pxd``) that allocate the
object and fill its slots directly, and the loop reads the slots as C
struct fields.  The arguments tuple is stored as given (the ``*args`` tuple
the caller already built), never re-packed.
"""

from __future__ import annotations

import asyncio
import contextvars
import operator
import sys
from asyncio import format_helpers
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from traceback import StackSummary

try:
    # Compiled, `cython` is Cython's compile-time module and `if not
    # cython.compiled:` blocks are dropped: their names are the C functions
    # declared in _handles.pxd instead.
    import cython
except ImportError:  # interpreted, without Cython installed
    from types import SimpleNamespace

    cython = SimpleNamespace(compiled=False)

_copy_context = contextvars.copy_context

# Frames of tidal's own between the user's call and Handle.__init__, skipped
# when a debug-mode handle records where it was made: two interpreted
# (__init__, then call_soon/_call_at), none compiled (a compiled function
# pushes no Python frame, so the innermost frame already is the caller's).
_COMPILED = not __file__.endswith(".py")
_CALLER_DEPTH = 0 if _COMPILED else 2

# 3.13's asyncio passes the loop's debug flag to the callback formatter.
_FORMAT_TAKES_DEBUG = sys.version_info >= (3, 13)


class Handle(asyncio.Handle):
    """A callback scheduled on the loop, cancellable until it has run."""

    __slots__ = ()

    # asyncio's slot, which typeshed leaves undeclared: where a debug-mode
    # handle was made, else None.  (An annotation only: no class attribute.)
    _source_traceback: StackSummary | None

    def __init__(
        self,
        callback: Callable[..., object],
        args: tuple[Any, ...],
        loop: Any,
        context: contextvars.Context | None = None,
        debug: bool = False,
    ) -> None:
        # Why not super().__init__: it asks loop.get_debug() per handle; the
        # loop already knows, so it tells us.
        self._context = _copy_context() if context is None else context
        self._loop = loop
        self._callback = callback
        self._args = args
        self._cancelled = False
        self._repr = None
        if debug:
            self._source_traceback = format_helpers.extract_stack(sys._getframe(_CALLER_DEPTH))
        else:
            self._source_traceback = None

    def cancel(self) -> None:
        _cancel(self, False)


def _cancel(handle: Any, timer: bool) -> None:
    """asyncio's Handle.cancel (and TimerHandle.cancel: tell the loop first),
    the same steps in the same order; compiled, a C function over the slots.
    Timeouts are mostly cancelled, so this runs about as often as call_later."""
    if not handle._cancelled:
        loop = handle._loop
        if cython.compiled and (type(loop) is _hooked_loop_class or _hooked_subclass(type(loop))):
            # tidal's own loop (or a subclass that keeps both methods, as the
            # simulated loop does): its two methods, as one C call (see below).
            debug = _loop_cancel_hook(loop, handle, timer)
        else:
            if timer:
                loop._timer_handle_cancelled(handle)
            debug = loop.get_debug()
        handle._cancelled = True
        if debug:
            # Kept for debug-mode messages about the handle after this.
            handle._repr = repr(handle)
        handle._callback = None
        handle._args = None


# Compiled, the loop gives us its class and a C function that does what that
# class's _timer_handle_cancelled and get_debug do, so that a cancel on
# tidal's own loop (not a subclass: one may override either method) makes no
# Python method call.  This module cannot cimport the loop (the loop imports
# it), hence the pointer; interpreted, neither is set nor read.
_hooked_loop_class: Any = None
_loop_cancel_hook: Callable[[Any, Any, bool], bool]  # (a C function pointer: no value until set)


def set_cancel_hook(loop_class: Any, hook: Any) -> None:
    global _hooked_loop_class, _loop_cancel_hook
    _hooked_loop_class = loop_class
    _loop_cancel_hook = hook


# Subclasses of that class which override neither method (EventLoop's
# __init_subclass__ says which): the same C call serves their handles.  A
# set, asked only when the type is not the loop class itself; the last one
# found in it is compared first (a simulation cancels a timer per
# asyncio.sleep, on one subclass: a pointer test, not a set lookup).
_hooked_subclasses: set[Any] = set()
_hooked_last: Any = None


def hook_subclass(loop_class: Any) -> None:
    _hooked_subclasses.add(loop_class)


def _hooked_subclass(loop_class: Any) -> bool:
    global _hooked_last
    if loop_class is _hooked_last:
        return True
    if loop_class in _hooked_subclasses:
        _hooked_last = loop_class
        return True
    return False


def report(handle: Any, exc: BaseException) -> None:
    """A callback raised: tell the loop's exception handler, in asyncio's words
    (those of asyncio's Handle._run, which the loop's fast path stands in for)."""
    if _FORMAT_TAKES_DEBUG:
        cb = format_helpers._format_callback_source(
            handle._callback, handle._args, debug=handle._loop.get_debug()
        )  # type: ignore[call-arg]  # (3.13's signature; mypy checks against 3.11)
    else:
        cb = format_helpers._format_callback_source(handle._callback, handle._args)
    context = {"message": f"Exception in callback {cb}", "exception": exc, "handle": handle}
    if handle._source_traceback:
        context["source_traceback"] = handle._source_traceback
    handle._loop.call_exception_handler(context)


class TimerHandle(asyncio.TimerHandle):
    """A callback due at a loop time; ordered by that time in the timer heap."""

    __slots__ = ()

    _source_traceback: StackSummary | None  # as in Handle above

    def __init__(
        self,
        when: float,
        callback: Callable[..., object],
        args: tuple[Any, ...],
        loop: Any,
        context: contextvars.Context | None = None,
        debug: bool = False,
    ) -> None:
        self._context = _copy_context() if context is None else context
        self._loop = loop
        self._callback = callback
        self._args = args
        self._cancelled = False
        self._repr = None
        if debug:
            self._source_traceback = format_helpers.extract_stack(sys._getframe(_CALLER_DEPTH))
        else:
            self._source_traceback = None
        self._when = when
        self._scheduled = False

    def cancel(self) -> None:
        _cancel(self, True)


if not cython.compiled:
    # The loop's constructors and runner.  Compiled, these are the C
    # functions of the same names in _handles.pxd, which do the same thing
    # without a Python call: allocate, fill the slots, run in the context.
    # Here new_handle(cls, ...) and new_timer(cls, ...) are cls(...), called
    # through operator.call so that no Python frame of ours is pushed (and
    # the arguments are passed on as they are: type.__call__, a slot
    # wrapper, copied them into a new tuple, 20% of a handle's making).
    new_handle: Callable[..., Any] = operator.call
    new_timer: Callable[..., Any] = operator.call

    def reraise() -> None:
        raise  # noqa: PLE0704  # (compiled only: see _handle_layout.pxd)

    def run_handle(handle: Any) -> int:
        # (The loop's _run_one runs handles itself when interpreted, without
        # this second frame; this is the C function's meaning, in Python.)
        try:
            handle._context.run(handle._callback, *handle._args)
        finally:
            # A traceback through the callback keeps this frame: not the
            # handle and its arguments (asyncio's Handle._run does the same).
            handle = None
        return 0

    def use_freelist(handle_cls: type) -> None:
        pass

    def use_timer_freelist(timer_cls: type) -> None:
        pass

    def use_fast_sleep(callback: Any, future_cls: type) -> None:
        pass

    def layout_matches(handle_cls: type, timer_cls: type) -> bool:
        return True

    def use_direct_traverse(handle_cls: type, timer_cls: type) -> None:
        pass


# Compiled, the loop reads asyncio's slots at the offsets _handles.pxd's C
# structs say: check once, at import, that they are where CPython put them.
if not layout_matches(asyncio.Handle, asyncio.TimerHandle):
    raise ImportError(
        "tidal's compiled build does not match this Python's asyncio.Handle layout; "
        "run with TIDAL_NO_EXT=1 and report the Python version"
    )

# Compiled: the cyclic GC walks these classes' instances through C functions
# that load the slots directly (_handle_layout.pxd says why it matters).
use_direct_traverse(Handle, TimerHandle)
