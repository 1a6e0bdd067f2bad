"""The timer heap must order timers exactly as heapq orders asyncio's TimerHandles.

asyncio's loop keeps timers with heapq and TimerHandle.__lt__; tidal's heap
(compiled: C doubles kept beside the list) must give the same handle at every
pop, ties included, or callbacks due at the same moment would run in a
different order on tidal than on asyncio.  Each case replays one random
sequence of pushes, pops and rebuilds on both heaps and compares the lists
item for item: the same algorithm leaves the same list.
"""

from __future__ import annotations

import asyncio
import heapq
import random
from types import SimpleNamespace

import pytest

import tidal
from tidal._handles import TimerHandle
from tidal._timerheap import TimerHeap


def noop():
    pass


@pytest.fixture
def make_timer():
    loop = asyncio.new_event_loop()
    yield lambda when: TimerHandle(when, noop, (), loop)
    loop.close()


def ids(items):
    return [id(t) for t in items]


@pytest.mark.parametrize("seed", range(30))
def test_push_pop_replace_match_heapq(seed, make_timer):
    rng = random.Random(seed)
    # Few distinct times, so most comparisons are ties; ints and floats mixed
    # (call_at accepts either).
    times = [rng.choice([0, 1, 2.5, 3, 3.0, -1, 1e9, rng.random()]) for _ in range(12)]
    ours = TimerHeap()
    theirs: list = []
    for _ in range(3000):
        op = rng.random()
        if op < 0.55 or not theirs:
            timer = make_timer(rng.choice(times))
            ours.push(timer)
            heapq.heappush(theirs, timer)
        elif op < 0.98:
            assert ours.pop() is heapq.heappop(theirs)
        else:
            # The loop's pruning: keep some, in heap order, then rebuild.
            kept = [t for t in theirs if rng.random() < 0.7]
            ours.replace(kept)
            theirs[:] = kept
            heapq.heapify(theirs)
        assert ids(ours.items) == ids(theirs)
    while theirs:
        assert ours.pop() is heapq.heappop(theirs)
    assert ours.items == []
    with pytest.raises(IndexError):
        ours.pop()


@pytest.mark.parametrize("n", [0, 1, 2, 3, 100, 2501, 6000])
def test_replace_matches_heapify_at_every_size(n, make_timer):
    # heapq switches to another visiting order above 2,500 items: the result
    # must still be the same list.
    rng = random.Random(n)
    timers = [make_timer(rng.randrange(50)) for _ in range(n)]
    ours = TimerHeap()
    ours.replace(timers)
    theirs = list(timers)
    heapq.heapify(theirs)
    assert ids(ours.items) == ids(theirs)
    assert [ours.pop() for _ in range(n)] == [heapq.heappop(theirs) for _ in range(n)]


def test_nan_due_time_orders_as_asyncio_does(make_timer):
    # NaN compares false both ways: a nonsense time, but ordered the same.
    whens = [3, float("nan"), 1, float("nan"), 2, 0]
    ours = TimerHeap()
    theirs: list = []
    for w in whens:
        t = make_timer(w)
        ours.push(t)
        heapq.heappush(theirs, t)
    assert [ours.pop() for _ in whens] == [heapq.heappop(theirs) for _ in whens]


def test_a_change_of_the_lists_length_from_outside_is_followed(make_timer):
    # loop._scheduled is the heap's list.  Code that pushes, pops or clears
    # it with heapq (as it could on asyncio's loop) changes its length, and
    # the heap's next operation sees that and reads the due times again.
    rng = random.Random(7)
    ours = TimerHeap()
    theirs: list = []
    for step in range(2000):
        op = rng.random()
        if op < 0.3:
            t = make_timer(rng.randrange(20))
            heapq.heappush(ours.items, t)  # behind the heap's back
            heapq.heappush(theirs, t)
        elif op < 0.4 and theirs:
            assert heapq.heappop(ours.items) is heapq.heappop(theirs)
        elif op < 0.41 and theirs:
            ours.items.clear()
            theirs.clear()
        # ... then one of the heap's own operations.
        if rng.random() < 0.5 or not theirs:
            t = make_timer(rng.randrange(20))
            ours.push(t)
            heapq.heappush(theirs, t)
        else:
            assert ours.pop() is heapq.heappop(theirs)
        assert ids(ours.items) == ids(theirs), step


def test_an_item_that_is_not_a_timer_is_refused(make_timer):
    ours = TimerHeap()
    timers = [make_timer(w) for w in (5, 3, 4, 1)]
    for t in timers:
        ours.push(t)
    with pytest.raises((TypeError, AttributeError)):
        ours.push(object())
    assert sorted(ids(ours.items)) == sorted(ids(timers))
    assert [ours.pop() for _ in timers] == sorted(timers, key=lambda t: t._when)


def test_only_tidals_timers_join_even_an_empty_heap():
    # Compiled and interpreted alike (an empty heap makes no comparison that
    # would catch a stranger): an object with a _when, or asyncio's own
    # TimerHandle, is refused, and the list stays as it was.
    loop = asyncio.new_event_loop()
    try:
        strangers = [SimpleNamespace(_when=1.0), asyncio.TimerHandle(1.0, noop, (), loop)]
        for stranger in strangers:
            ours = TimerHeap()
            with pytest.raises(TypeError, match="the timer heap holds tidal's TimerHandles"):
                ours.push(stranger)
            assert ours.items == []
    finally:
        loop.close()


class _OnceInterruptedWhen(float):
    """A due time whose next comparison, once armed, raises KeyboardInterrupt (Ctrl-C mid-pop)."""

    armed = False

    def _check(self) -> None:
        if _OnceInterruptedWhen.armed:
            _OnceInterruptedWhen.armed = False
            raise KeyboardInterrupt

    def __lt__(self, other: object) -> bool:
        self._check()
        return float(self) < float(other)  # type: ignore[arg-type]

    def __gt__(self, other: object) -> bool:
        self._check()
        return float(self) > float(other)  # type: ignore[arg-type]


def test_an_interrupted_pop_loses_no_timer_and_the_rest_come_out_in_order(make_timer):
    # Interpreted, heapq compares through Python code, where Ctrl-C can land;
    # the timer being popped is kept and the heap put back in order.
    # (Compiled, the walks compare C doubles: nothing to interrupt.)
    ours = TimerHeap()
    timers = [make_timer(float(w)) for w in range(31)]
    timers[9]._when = _OnceInterruptedWhen(9.0)
    for t in reversed(timers):
        ours.push(t)
    _OnceInterruptedWhen.armed = True
    out = []
    try:
        while ours.items:
            try:
                out.append(ours.pop()._when)
            except KeyboardInterrupt:
                pass
    finally:
        _OnceInterruptedWhen.armed = False
    assert out == [float(w) for w in range(31)]


def test_a_large_heap_matches_heapq(make_timer):
    # From 2,048 timers on, the compiled walk prefetches: the same order.
    rng = random.Random(7)
    ours = TimerHeap()
    theirs: list = []
    for _ in range(5000):
        timer = make_timer(rng.choice([rng.random(), 0.5, 1, 2.0]))
        ours.push(timer)
        heapq.heappush(theirs, timer)
    for _ in range(2000):
        assert ours.pop() is heapq.heappop(theirs)
        timer = make_timer(rng.random() + 1)
        ours.push(timer)
        heapq.heappush(theirs, timer)
    assert ids(ours.items) == ids(theirs)
    while theirs:
        assert ours.pop() is heapq.heappop(theirs)


def test_a_non_timer_put_in_from_outside_fails_the_next_operation_cleanly(make_timer):
    # Compiled: the due times are read again (the list grew), and the stranger
    # is a TypeError; interpreted, heapq's comparison with it.  The list keeps each
    # item once, and the heap works again once it is taken out.
    ours = TimerHeap()
    for w in range(15):
        ours.push(make_timer(w))
    stranger = object()
    ours.items.append(stranger)
    before = ids(ours.items)
    with pytest.raises((TypeError, AttributeError)):
        ours.pop()
    assert sorted(ids(ours.items)) == sorted(before)
    ours.items.remove(stranger)
    heapq.heapify(ours.items)
    assert [ours.pop()._when for _ in range(15)] == list(range(15))


class _SneakyWhen(int):
    """An int due time whose conversion to float changes the heap's list."""

    heap: TimerHeap | None = None

    def __float__(self) -> float:
        if self.heap is not None:
            self.heap.items.pop()
        return float(int(self))


def test_a_due_time_that_changes_the_list_while_it_is_read(make_timer):
    # Compiled, an int's due time is converted with float(), which may run
    # Python code; if that code changes the list while the heap re-reads it,
    # the heap says so (heapq's RuntimeError) instead of reading past the end.
    # Interpreted, due times are compared as they are: no float() is called.
    ours = TimerHeap()
    for w in range(4):
        ours.push(make_timer(w))
    sneaky = _SneakyWhen(10)
    ours.items.append(make_timer(sneaky))  # from outside: the next operation reads all
    sneaky.heap = ours
    if tidal.COMPILED:
        with pytest.raises(RuntimeError, match="changed while its due times were read"):
            ours.pop()
        sneaky.heap = None
        assert len(ours.items) == 4  # (the sneaky one took itself out)
        assert [ours.pop()._when for _ in range(4)] == [0, 1, 2, 3]
    else:
        assert ours.pop()._when == 0


class _ReentrantWhen(int):
    """An int due time whose conversion pops the heap empty and puts back as many timers."""

    heap: TimerHeap | None = None
    make = None

    def __float__(self) -> float:
        heap, self.heap = self.heap, None
        if heap is not None:
            n = len(heap.items)
            while heap.items:
                heap.pop()  # (the heap gives back its room as it drains)
            for w in range(n):
                heap.items.append(self.make(100 + w))
        return float(int(self))


def test_the_heap_used_while_its_due_times_are_read(make_timer):
    # The list is back to its old length, with other timers in it: compiled,
    # the heap must see that the items changed (not only their number), and
    # never write past the room it has.  Interpreted, no float() is called.
    ours = TimerHeap()
    for w in range(2000):
        ours.push(make_timer(w))
    sneaky = _ReentrantWhen(5)
    sneaky.make = make_timer
    ours.items.append(make_timer(sneaky))
    sneaky.heap = ours
    if tidal.COMPILED:
        with pytest.raises(RuntimeError, match="changed while its due times were read"):
            ours.pop()
    else:
        assert ours.pop()._when == 0
    heapq.heapify(ours.items)
    n = len(ours.items)
    popped = [ours.pop() for _ in range(n)]
    assert [t._when for t in popped] == sorted(t._when for t in popped)


def test_a_heap_never_initialised_refuses_work():
    heap = TimerHeap.__new__(TimerHeap)
    with pytest.raises((RuntimeError, AttributeError)):
        heap.pop()
