"""The timer heap must order timers exactly as heapq orders asyncio's TimerHandles.

asyncio's loop keeps timers with heapq and TimerHandle.__lt__; tidal's heap
(compiled: C double comparisons) must give the same handle at every pop,
ties included, or callbacks due at the same moment would run in a different
order on tidal than on asyncio.  Each case replays one random sequence of
pushes, pops and rebuilds on both heaps and compares identities.
"""

from __future__ import annotations

import asyncio
import heapq
import random

import pytest

from tidal import _timerheap
from tidal._handles import TimerHandle


def noop():
    pass


@pytest.fixture
def make_timer():
    loop = asyncio.new_event_loop()
    yield lambda when: TimerHandle(when, noop, (), loop)
    loop.close()


@pytest.mark.parametrize("seed", range(30))
def test_push_pop_rebuild_match_heapq(seed, make_timer):
    rng = random.Random(seed)
    # Few distinct times, so most comparisons are ties; ints and floats mixed
    # (call_at accepts either).
    times = [rng.choice([0, 1, 2.5, 3, 3.0, -1, 1e9, rng.random()]) for _ in range(12)]
    ours: list = []
    theirs: list = []
    for _ in range(3000):
        op = rng.random()
        if op < 0.55 or not ours:
            timer = make_timer(rng.choice(times))
            _timerheap.push(ours, timer)
            heapq.heappush(theirs, timer)
        elif op < 0.98:
            assert _timerheap.pop(ours) is heapq.heappop(theirs)
        else:
            # The loop's pruning: keep some, in heap order, then rebuild.
            kept = [t for t in ours if rng.random() < 0.7]
            ours[:] = kept
            theirs[:] = kept
            _timerheap.rebuild(ours)
            heapq.heapify(theirs)
        assert [id(t) for t in ours] == [id(t) for t in theirs]
    while theirs:
        assert _timerheap.pop(ours) is heapq.heappop(theirs)
    assert ours == []


@pytest.mark.parametrize("n", [0, 1, 2, 3, 100, 2501, 6000])
def test_rebuild_matches_heapify_at_every_size(n, make_timer):
    # heapq switches to another visiting order above 2,500 items: the result
    # must still be the same list.
    rng = random.Random(n)
    timers = [make_timer(rng.randrange(50)) for _ in range(n)]
    ours, theirs = list(timers), list(timers)
    _timerheap.rebuild(ours)
    heapq.heapify(theirs)
    assert [id(t) for t in ours] == [id(t) for t in theirs]


def test_nan_due_time_orders_as_asyncio_does(make_timer):
    # NaN compares false both ways: a nonsense time, but ordered the same.
    whens = [3, float("nan"), 1, float("nan"), 2, 0]
    ours: list = []
    theirs: list = []
    for w in whens:
        t = make_timer(w)
        _timerheap.push(ours, t)
        heapq.heappush(theirs, t)
    assert [_timerheap.pop(ours) for _ in whens] == [heapq.heappop(theirs) for _ in whens]


def test_an_item_that_is_not_a_timer_fails_and_keeps_the_items(make_timer):
    # Compiled: a TypeError from the C walk; interpreted, the missing _when.
    # Either way the list still holds every item once.
    heap: list = []
    timers = [make_timer(w) for w in (5, 3, 4, 1)]
    for t in timers:
        _timerheap.push(heap, t)
    heap.append(object())
    items = set(map(id, heap))
    with pytest.raises((TypeError, AttributeError)):
        _timerheap.rebuild(heap)
    assert set(map(id, heap)) == items and len(heap) == 5


def test_a_walk_that_fails_after_moving_items_keeps_each_item_once(make_timer):
    # The error comes part-way down, after the walk has moved timers: the
    # list must still hold each remaining item exactly once.
    heap: list = []
    for w in range(15):
        _timerheap.push(heap, make_timer(w))
    heap[7], heap[8] = object(), object()  # two leaves' parents' children: deep in the walk
    root = heap[0]
    remaining = {id(x) for x in heap} - {id(root)}
    with pytest.raises((TypeError, AttributeError)):
        _timerheap.pop(heap)
    assert len(heap) == 14
    assert {id(x) for x in heap} == remaining
