"""The timer heap: TimerHandles in a plain list, earliest due first.

asyncio keeps its timers with ``heapq`` and lets ``TimerHandle.__lt__`` order
them; tidal keeps the same binary min-heap, with the same algorithm, making
the same comparisons in the same order (push: append, then move the new item
up past every parent due later; pop: move the last item to the root, walk it
down to a leaf along the earlier child, then back up), so timers due at the
same moment leave the heap in exactly the order asyncio's loop runs them, and
its list (``loop._scheduled``) is, item for item, the list heapq would keep.
Interpreted, it is heapq.

What changes is the price of a comparison and of a move.  Compiled
(``_timerheap.pxd``), each timer's due time is read once, when it is pushed,
into a C array of doubles kept beside the list, index for index; the walks
compare entries of that array and move pointers within the list.  heapq
instead makes a Python call to ``__lt__`` for each of the ~20 comparisons of
a push or pop among a thousand timers, and even reading ``_when`` from C
means two dependent loads from two scattered objects (the handle, then its
float) per comparison: a heap of a thousand timers does not fit in the L1
cache, an array of a thousand doubles does.

The heap is the loop's; ``loop._scheduled`` (its list) is there to be read.
The array follows the list by its length: when code outside the heap changes
the list's length (``heapq.heappush(loop._scheduled, t)``, ``.clear()``), the
next operation reads every due time again.  A change that keeps the length
(``heapq.heapreplace``, an item assigned, a timer's ``_when`` changed and the
list heapified again) is not seen, and the heap goes on with the due times it
read before.
"""

from __future__ import annotations

from typing import Any

from ._handles import TimerHandle

try:
    # Compiled, `cython` is Cython's compile-time module and `if not
    # cython.compiled:` blocks are dropped: their names are the C functions
    # declared in _timerheap.pxd instead.
    import cython
except ImportError:  # interpreted, without Cython installed
    from types import SimpleNamespace

    cython = SimpleNamespace(compiled=False)


class TimerHeap:
    """The loop's timers, due first at ``items[0]`` (compiled: a final cdef class)."""

    items: list[Any]  # the heap itself, as heapq would keep it: what loop._scheduled is

    def __init__(self) -> None:
        self.items = []
        # Compiled: how many due times it holds, then the items' due times
        # as C doubles, then room to grow.  Interpreted: unused.
        self._whens = bytearray()

    def push(self, timer: Any) -> None:
        """Add `timer` (heapq.heappush)."""
        _push(self.items, self._whens, timer)

    def pop(self) -> Any:
        """Remove and return the timer due first (heapq.heappop); IndexError if there is none."""
        return _pop(self.items, self._whens)

    def replace(self, timers: list[Any]) -> None:
        """Hold `timers` instead, as a heap (the list's contents, then heapq.heapify)."""
        self.items[:] = timers
        _rebuild(self.items, self._whens)


if not cython.compiled:
    # The interpreted heap is heapq itself, on the TimerHandles' own __lt__
    # (asyncio's): the C walks with a Python comparison each beat walks
    # written in Python (~1.45x on a thousand timers pushed and popped, 3.11).
    # Compiled, these names are the C functions of _timerheap.pxd, which also
    # keep `whens` (unused here).
    import heapq

    def _use_timer_class(timer_cls: type) -> None:
        pass

    def _push(heap: list[Any], whens: bytearray, timer: Any) -> None:
        # What the compiled heap refuses, refused before it joins.
        if not isinstance(timer, TimerHandle):
            raise TypeError(f"the timer heap holds tidal's TimerHandles, not {type(timer)!r}")
        timer._when  # noqa: B018
        heapq.heappush(heap, timer)

    def _pop(heap: list[Any], whens: bytearray) -> Any:
        first = heap[0]  # (IndexError on an empty heap, as heappop)
        try:
            return heapq.heappop(heap)
        except BaseException:
            # A comparison failed on the way (an item without a _when, say):
            # heapq has let go of the timer it was returning; keep it, so
            # that no timer is lost, and put the list back in heap order as
            # far as the comparisons allow.
            heap.append(first)
            try:
                heapq.heapify(heap)
            except BaseException:  # noqa: S110  (the first error is the one to raise)
                pass
            raise

    def _rebuild(heap: list[Any], whens: bytearray) -> None:
        heapq.heapify(heap)


# Compiled: the class whose instances are read without a subclass check
# (the loop's own; any subclass of it is accepted too, after the check).
_use_timer_class(TimerHandle)
