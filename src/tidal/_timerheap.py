"""The timer heap: TimerHandles in a plain list, earliest due first.

asyncio keeps its timers with ``heapq`` and lets ``TimerHandle.__lt__`` order
them; tidal keeps the same binary min-heap, with the same algorithm, making
the same comparisons in the same order (push: append, then move the new item
up past every parent due later; pop: move the last item to the root, walk it
down to a leaf along the earlier child, then back up), so timers due at the
same moment leave the heap in exactly the order asyncio's loop runs them, and
its list (``loop._scheduled``) is, item for item, the list heapq would keep.

What changes is the price of a comparison and of a move.  Compiled
(``_timerheap.pxd``), each timer's due time is read once, when it is pushed,
into a C array of doubles kept beside the list, index for index; the walks
compare entries of that array and move pointers within the list.  heapq
instead makes a Python call to ``__lt__`` for each of the ~20 comparisons of
a push or pop among a thousand timers, and even reading ``_when`` from C
means two dependent loads from two scattered objects (the handle, then its
float) per comparison: a heap of a thousand timers does not fit in the L1
cache, an array of a thousand doubles does.  Interpreted, the walks are the
Python functions below, reading ``_when`` as heapq would.

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
    # The interpreted heap.  Compiled, these are the C functions of the same
    # names in _timerheap.pxd, which also keep `whens` (unused here).

    def _use_timer_class(timer_cls: type) -> None:
        pass

    def _push(heap: list[Any], whens: bytearray, timer: Any) -> None:
        timer._when  # noqa: B018  (an item without one is refused before it joins, as compiled)
        heap.append(timer)
        _sift_toward_root(heap, 0, len(heap) - 1)

    def _pop(heap: list[Any], whens: bytearray) -> Any:
        last = heap.pop()
        if not heap:
            return last
        first = heap[0]
        heap[0] = last
        try:
            _sift_to_leaf(heap, 0)
        except BaseException:
            heap.append(first)  # an item without a _when met on the way: lose no timer
            raise
        return first

    def _rebuild(heap: list[Any], whens: bytearray) -> None:
        # heapq.heapify: each parent after its subtrees.
        pos = len(heap) // 2 - 1
        while pos >= 0:
            _sift_to_leaf(heap, pos)
            pos -= 1

    def _sift_toward_root(heap: list[Any], start: int, pos: int) -> None:
        """Move heap[pos] up while it is due strictly before its parent (never above `start`)."""
        item = heap[pos]
        when = item._when
        try:
            while pos > start:
                parent_pos = (pos - 1) >> 1
                parent = heap[parent_pos]
                if not when < parent._when:
                    break
                heap[pos] = parent
                pos = parent_pos
        finally:
            # heap[pos] is the hole (a copy of the item moved out of it): on
            # an error too, so the list keeps each of its timers once.
            heap[pos] = item

    def _sift_to_leaf(heap: list[Any], pos: int) -> None:
        """Walk heap[pos] down to a leaf along the earlier child, then settle it upward.

        Going all the way down and back costs fewer comparisons than stopping
        on the way (the moved item usually belongs near the bottom); the right
        child is taken unless the left is strictly earlier, as heapq does.
        """
        end = len(heap)
        start = pos
        item = heap[pos]
        child_pos = 2 * pos + 1
        try:
            while child_pos < end:
                child = heap[child_pos]
                right_pos = child_pos + 1
                if right_pos < end:
                    right = heap[right_pos]
                    if not child._when < right._when:
                        child_pos = right_pos
                        child = right
                heap[pos] = child
                pos = child_pos
                child_pos = 2 * pos + 1
        finally:
            heap[pos] = item  # the hole, as in _sift_toward_root
        _sift_toward_root(heap, start, pos)


# Compiled: the class whose instances are read without a subclass check
# (the loop's own; any subclass of it is accepted too, after the check).
_use_timer_class(TimerHandle)
