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
            self._source_traceback = format_helpers.extract_stack(sys._getframe(2))
        else:
            self._source_traceback = None


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
            self._source_traceback = format_helpers.extract_stack(sys._getframe(2))
        else:
            self._source_traceback = None
        self._when = when
        self._scheduled = False

    # The heap compares handles on every push/pop: compare the float directly
    # instead of asyncio's isinstance-guarded rich comparison.  The try costs
    # nothing when it does not raise; comparing with something that has no
    # `_when` must still end in asyncio's TypeError, not an AttributeError.
    def __lt__(self, other: Any) -> bool:
        try:
            return self._when < other._when
        except AttributeError:
            return NotImplemented

    def __gt__(self, other: Any) -> bool:
        try:
            return self._when > other._when
        except AttributeError:
            return NotImplemented

    __hash__ = asyncio.TimerHandle.__hash__
