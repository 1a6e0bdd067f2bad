# cython: boundscheck=False, wraparound=False
# (Every index below is in 0..len(heap)-1 by construction.)
"""The timer heap: TimerHandles in a plain list, earliest due first.

asyncio keeps its timers with ``heapq`` and lets ``TimerHandle.__lt__`` order
them; tidal keeps the same binary min-heap, with the same algorithm, making
the same comparisons in the same order (push: append, then move the new item
up past every parent due later; pop: move the last item to the root, walk it
down to a leaf along the earlier child, then back up), so timers due at the
same moment leave the heap in exactly the order asyncio's loop runs them.

What changes is the price of a comparison.  Compiled, it is two C doubles read
straight from the handles' ``_when`` slots, where heapq makes a Python call to
``__lt__`` for each of the ~20 comparisons of a push or pop, and the heap
holds the handles themselves: no wrapper tuple allocated per timer.
Interpreted, it is the same code, run as Python.
"""

from __future__ import annotations

from typing import Any


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


def _sift_toward_root(heap: list[Any], start: int, pos: int) -> None:
    """Move heap[pos] up while it is due strictly before its parent (never above `start`)."""
    item = heap[pos]
    when = item._when
    while pos > start:
        parent_pos = (pos - 1) >> 1
        parent = heap[parent_pos]
        parent_when = parent._when
        if not when < parent_when:
            break
        heap[pos] = parent
        pos = parent_pos
    heap[pos] = item


def _sift_to_leaf(heap: list[Any], pos: int) -> None:
    """Walk heap[pos] down to a leaf along the earlier child, then settle it upward.

    Going all the way down and back costs fewer comparisons than stopping on
    the way (the moved item usually belongs near the bottom); the right child
    is taken unless the left is strictly earlier, as heapq does.
    """
    end = len(heap)
    start = pos
    item = heap[pos]
    child_pos = 2 * pos + 1
    while child_pos < end:
        child = heap[child_pos]
        right_pos = child_pos + 1
        if right_pos < end:
            right = heap[right_pos]
            # (Through C doubles when compiled: see _timerheap.pxd.)
            child_when = child._when
            right_when = right._when
            if not child_when < right_when:
                child_pos = right_pos
                child = right
        heap[pos] = child
        pos = child_pos
        child_pos = 2 * pos + 1
    heap[pos] = item
    _sift_toward_root(heap, start, pos)
