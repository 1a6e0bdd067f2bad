"""The timer heap: TimerHandles in a plain list, earliest due first.

asyncio keeps its timers with ``heapq`` and lets ``TimerHandle.__lt__`` order
them; tidal keeps the same binary min-heap, with the same algorithm, making
the same comparisons in the same order (push: append, then move the new item
up past every parent due later; pop: move the last item to the root, walk it
down to a leaf along the earlier child, then back up), so timers due at the
same moment leave the heap in exactly the order asyncio's loop runs them.

What changes is the price of a comparison and of a move.  Compiled, the two
walks are C functions (``_timerheap.pxd``): a comparison is two C doubles
read straight from the handles' ``_when`` slots, where heapq makes a Python
call to ``__lt__`` for each of the ~20 comparisons of a push or pop, and a
move swaps two pointers inside the list (a permutation: no reference counts
change).  The heap holds the handles themselves: no wrapper tuple allocated
per timer.  Interpreted, the walks are the Python functions below.
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


def push(heap: list[Any], timer: Any) -> None:
    """Add `timer` to the heap (heapq.heappush)."""
    heap.append(timer)
    _sift_toward_root(heap, 0, len(heap) - 1)


def pop(heap: list[Any]) -> Any:
    """Remove and return the timer due first (heapq.heappop); the heap must not be empty."""
    last = heap.pop()
    if not heap:
        return last
    first = heap[0]
    heap[0] = last
    _sift_to_leaf(heap, 0)
    return first


def rebuild(heap: list[Any]) -> None:
    """Make any list of timers a heap (heapq.heapify): each parent after its subtrees."""
    pos = len(heap) // 2 - 1
    while pos >= 0:
        _sift_to_leaf(heap, pos)
        pos -= 1


if not cython.compiled:
    # The two walks.  Compiled, these are the C functions of the same names
    # in _timerheap.pxd: the same comparisons in the same order, as swaps of
    # pointers inside the list.

    def _use_timer_class(timer_cls: type) -> None:
        pass

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


# Compiled: the class whose instances the C walks read without a subclass
# check (the loop's own; any subclass of it is accepted too, after the check).
_use_timer_class(TimerHandle)
