"""Handle and TimerHandle: what call_soon/call_later/add_reader give back.

They subclass asyncio's public Handle/TimerHandle so that code doing
``isinstance(h, asyncio.TimerHandle)`` keeps working, but construct
themselves without the per-call debug checks asyncio's ``__init__`` makes:
the loop passes its debug flag in, so a handle costs one allocation and a
context copy, nothing more.  The arguments tuple is stored as given (the
``*args`` tuple the caller already built), never re-packed.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from asyncio import format_helpers
from typing import Any, Callable

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

    def _run(self) -> None:
        # asyncio's _run, here so that it is compiled: every callback, task
        # step and I/O event goes through this method.
        try:
            self._context.run(self._callback, *self._args)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            _report(self, exc)


def _report(handle: Any, exc: BaseException) -> None:
    """A callback raised: tell the loop's exception handler, as asyncio words it."""
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

    # Same as Handle._run (TimerHandle cannot inherit it: it derives from
    # asyncio's TimerHandle, not from our Handle).
    def _run(self) -> None:
        try:
            self._context.run(self._callback, *self._args)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            _report(self, exc)
