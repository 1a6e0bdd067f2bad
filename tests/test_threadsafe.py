"""call_soon_threadsafe never loses a wake-up, on asyncio's loop and on tidal's.

tidal coalesces wake-ups: a thread writes a byte to the self-pipe only while
no byte is pending (``_wakeup_pending``), and a turn about to wait clears
that flag before it looks at the ready queue a last time.  Clear it at
the wrong place and a handle can sit in the ready queue while the loop
sleeps in poll() with no timeout, and every later call skips the write too:
the loop hangs for good.

These tests wake an idle loop (no timers, so nothing but a wake-up byte can
end its poll) over and over from other threads, and check that every
callback runs, in order, within a generous deadline.  A lost wake-up is a
hang, so the deadline is kept by a thread of the test's own and a socket the
loop reads (``Watchdog``): not by a loop timer, which would bound the very
poll under test, nor by call_soon_threadsafe, which could be lost the same
way.  The deadlines only catch hangs: nothing here asserts how fast a
wake-up is.

The GIL is handed between threads every microsecond or so instead of every
5 ms (the fixture below), so that the threads' calls land at more points of
the loop's turn.  Even so, under the GIL a thread practically never lands in
the first few lines after poll() returns (the last test reaches them with a
trace function).
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import random
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

DEADLINE = 5.0  # s, for each wait on the loop: a hang, not slowness (tests take < 1 s)
BACKSTOP = 60.0  # s, for a whole test: a hang that no wait caught
SLEPT_THROUGH = "the loop slept through a wake-up until the watchdog woke it"


@pytest.fixture(autouse=True)
def fine_switching():
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


class Watchdog:
    """Ends a hung loop run, without timers or call_soon_threadsafe.

    Firing writes to a socket whose reader, on the loop, records that the
    watchdog fired and calls `on_fire` (which stops the loop or fails what
    it waits for).  The test's threads wait for the loop with ``wait()``,
    which after DEADLINE records the failure and fires the watchdog; failing
    that, it fires by itself after `seconds`, unless the ``with`` is left
    first.
    """

    def __init__(self, loop, on_fire, seconds=BACKSTOP):
        self.fired = False
        self.failures: list[str] = []
        self._loop = loop
        self._on_fire = on_fire
        self._seconds = seconds
        self._disarmed = threading.Event()
        self._rsock, self._wsock = socket.socketpair()
        self._rsock.setblocking(False)
        self._thread = threading.Thread(target=self._watch)

    def wait(self, event, what):
        """Wait (in a thread of the test's) for `event`, set by a callback the loop runs."""
        if self.fired:  # the loop is stopping: give up without waiting
            self.failures.append(f"{what}: not waited for, the watchdog had fired")
            return False
        if event.wait(DEADLINE):
            return True
        self.failures.append(f"{what} did not run within {DEADLINE} s: wake-up lost")
        self.trip()
        return False

    def _watch(self):
        if not self._disarmed.wait(self._seconds):
            self.trip()

    def trip(self):
        try:
            self._wsock.send(b"!")
        except OSError:  # full: fired already
            pass

    def _fire(self):
        self._loop.remove_reader(self._rsock)
        self.fired = True
        self._on_fire()

    def __enter__(self):
        self._loop.add_reader(self._rsock, self._fire)
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._disarmed.set()
        self._thread.join()
        self._loop.remove_reader(self._rsock)
        self._rsock.close()
        self._wsock.close()


def run_with_producer(loop: Any, producer: Callable[[], None]) -> None:
    """Run `loop` until something stops it, with `producer` in a thread of its own."""
    thread = threading.Thread(target=producer)
    thread.start()
    try:
        loop.run_forever()
    finally:
        thread.join()


def assert_no_wakeup_lost(wd: Watchdog) -> None:
    assert wd.failures == []
    assert not wd.fired, SLEPT_THROUGH


def test_bursts_from_a_thread_each_wake_the_idle_loop(loop):
    # One producer sends 400 bursts of 1-16 calls.  After a burst it either
    # waits until the loop has run all of it (the loop then goes back to an
    # untimed poll before the next burst), or only until the loop has
    # started on it (the next burst lands while the loop is still running
    # this one), or not at all; then it pauses 0-300 us, or not at all.  No
    # more than two bursts are ever outstanding: before sending burst k the
    # producer waits for burst k-2 to have run, so every burst must run
    # within DEADLINE of being waited for.
    rng = random.Random(20240611)
    nbursts = 400
    sizes = [rng.randint(1, 16) for _ in range(nbursts)]
    modes = [rng.choice(("done", "started", "none")) for _ in range(nbursts)]
    pauses = [rng.choice((0.0, rng.uniform(0, 300e-6))) for _ in range(nbursts)]
    started = [threading.Event() for _ in range(nbursts)]
    done = [threading.Event() for _ in range(nbursts)]
    ran: list[tuple[int, int]] = []

    def record(k, i):
        ran.append((k, i))
        if i == 0:
            started[k].set()
        if i == sizes[k] - 1:
            done[k].set()
            if k == nbursts - 1:
                loop.stop()

    def producer():
        for k in range(nbursts):
            if k >= 2 and not wd.wait(done[k - 2], f"burst {k - 2}"):
                return
            for i in range(sizes[k]):
                loop.call_soon_threadsafe(record, k, i)
            if modes[k] == "done" and not wd.wait(done[k], f"burst {k}"):
                return
            if modes[k] == "started" and not wd.wait(started[k], f"start of burst {k}"):
                return
            if pauses[k]:
                time.sleep(pauses[k])
        wd.wait(done[-1], "the last burst")

    with Watchdog(loop, loop.stop) as wd:
        run_with_producer(loop, producer)  # until the last burst's last callback stops it
    assert_no_wakeup_lost(wd)
    assert ran == [(k, i) for k in range(nbursts) for i in range(sizes[k])]


def test_many_threads_at_once_idle_loop_returns_after_the_last(loop):
    # 4 threads x 2,000 calls, released together once the loop idles in an
    # untimed poll, each in bursts of 1-40 calls with 0-1 ms pauses between
    # them, so that the loop drains its queue and goes back to poll many
    # times.  The callback that completes the count resolves the future that
    # run_until_complete waits for, which must happen within DEADLINE of the
    # last call.
    nthreads, per_thread = 4, 2000
    total = nthreads * per_thread
    seen: dict[int, list[int]] = collections.defaultdict(list)
    count = 0
    finished = loop.create_future()
    all_ran = threading.Event()
    go = threading.Event()

    def record(tid, i):
        nonlocal count
        seen[tid].append(i)
        count += 1
        if count == total:
            all_ran.set()
            finished.set_result(count)

    def producer(tid):
        rng = random.Random(tid)
        if not go.wait(DEADLINE):
            return
        i = 0
        while i < per_thread:
            for i in range(i, min(i + rng.randint(1, 40), per_thread)):
                loop.call_soon_threadsafe(record, tid, i)
            i += 1
            time.sleep(rng.uniform(0, 1e-3))

    def monitor():
        # The loop must run the last callback within DEADLINE of the last call.
        for t in producers:
            t.join()
        wd.wait(all_ran, f"the last of {total} callbacks")

    def give_up():
        if not finished.done():  # else the callbacks ran on the watchdog's wake-up
            message = f"{total - count} of {total} callbacks unrun: wake-up lost"
            finished.set_exception(AssertionError(message))

    with Watchdog(loop, give_up) as wd:
        producers = [threading.Thread(target=producer, args=(t,)) for t in range(nthreads)]
        threads = [*producers, threading.Thread(target=monitor)]
        for t in threads:
            t.start()
        try:
            loop.call_soon(go.set)  # the loop's first turn; then it idles
            assert loop.run_until_complete(finished) == total
        finally:
            go.set()
            for t in threads:
                t.join()
    assert_no_wakeup_lost(wd)
    # Each thread's callbacks ran once each, in the order it scheduled them.
    assert dict(seen) == {tid: list(range(per_thread)) for tid in range(nthreads)}


@pytest.mark.usefixtures("blocking_on_purpose")
def test_wakeup_during_a_blocking_callback_is_not_lost(loop):
    # Each of 200 rounds, the producer schedules a callback that blocks for
    # 1 ms (time.sleep, so the producer runs meanwhile), waits until it has
    # started, pauses 0-1.5 ms (or not at all), and schedules a second
    # callback: its wake-up lands while the first still blocks, just as it
    # returns, or once the loop is back in poll.  The second callback must
    # run; then the next round.  The loop has nothing else to do.
    rng = random.Random(7)
    nrounds = 200
    pauses = [rng.choice((0.0, rng.uniform(0, 1.5e-3))) for _ in range(nrounds)]
    blocking = [threading.Event() for _ in range(nrounds)]
    done = [threading.Event() for _ in range(nrounds)]
    ran: list[tuple[str, int]] = []

    def block(k):
        ran.append(("block", k))
        blocking[k].set()
        time.sleep(0.001)

    def follow(k):
        ran.append(("follow", k))
        done[k].set()
        if k == nrounds - 1:
            loop.stop()

    def producer():
        for k in range(nrounds):
            loop.call_soon_threadsafe(block, k)
            if not wd.wait(blocking[k], f"blocking callback {k}"):
                return
            if pauses[k]:
                time.sleep(pauses[k])
            loop.call_soon_threadsafe(follow, k)
            if not wd.wait(done[k], f"callback {k}, scheduled during a blocking one,"):
                return

    with Watchdog(loop, loop.stop) as wd:
        run_with_producer(loop, producer)  # until the last round's second callback stops it
    assert_no_wakeup_lost(wd)
    assert ran == [(name, k) for k in range(nrounds) for name in ("block", "follow")]


def test_wakeup_landing_at_each_line_of_the_turn(loop):
    # Under the GIL another thread's call lands only where the loop's thread
    # lets go of the GIL, and only once that thread has waited a switch
    # interval for it: in practice tens of microseconds at the least,
    # however small the interval (a timed wait has the OS's timer slack).
    # The loop takes the GIL as poll() returns, so the few lines right after
    # it (where a flag cleared after the poll, say, would lose a wake-up) are
    # out of the other threads' reach.  A trace function on the loop's
    # thread stands in for a thread that lands anywhere.  Round k, a
    # producer thread wakes the idle loop, and the loop's thread itself
    # calls call_soon_threadsafe at the (k % span + 1)-th line it runs after
    # that: the rounds sweep every line of the turn (tidal's own when it
    # runs interpreted, asyncio's, the callbacks') up to `span`, with one
    # landing a round and always at the same line for the same k.  Each
    # round both callbacks must run; the loop must then go idle, and still
    # wake for the next round.
    nrounds, span = 300, 100
    lines = 0  # line events on the loop's thread since the round began
    land_at: int | None = None  # the line at which to land, this round
    current = 0  # the round
    landed = [False] * nrounds
    stepped = [threading.Event() for _ in range(nrounds)]
    ticked = [threading.Event() for _ in range(nrounds)]
    finished = threading.Event()

    def tracer(frame, event, arg):
        nonlocal lines, land_at
        if event == "line":
            lines += 1
            if lines == land_at:
                land_at = None
                landed[current] = True
                # Scheduled, not called: it may land inside Event.set itself.
                loop.call_soon_threadsafe(ticked[current].set)
        return tracer

    def finish():
        finished.set()
        loop.stop()

    def wait_until_idle(k):
        # No line run on the loop's thread for a millisecond while this
        # thread sleeps: it is blocked in poll().  (Were it only slow, a
        # landing not made yet is dropped, or made next round: no harm.)
        deadline = time.monotonic() + DEADLINE
        before = -1
        while lines != before:
            before = lines
            time.sleep(0.001)
            if time.monotonic() > deadline:
                wd.failures.append(f"round {k}: the loop never went idle")
                wd.trip()
                return False
        return True

    def producer():
        nonlocal lines, land_at, current
        for k in range(nrounds):
            current = k
            lines = 0
            land_at = k % span + 1
            loop.call_soon_threadsafe(stepped[k].set)
            if not wd.wait(stepped[k], f"round {k}'s callback"):
                return
            if not wait_until_idle(k):
                return
            land_at = None  # past the end of this round's lines
            if landed[k] and not wd.wait(ticked[k], f"the call landed at line {k % span + 1}"):
                return
        loop.call_soon_threadsafe(finish)
        wd.wait(finished, "the last callback")

    with Watchdog(loop, loop.stop) as wd:
        thread = threading.Thread(target=producer)
        old_trace = sys.gettrace()
        sys.settrace(tracer)
        try:
            thread.start()
            loop.run_forever()  # until finish()
        finally:
            sys.settrace(old_trace)
            thread.join()
    assert_no_wakeup_lost(wd)
    assert any(landed)


@pytest.mark.parametrize("busy", [False, True], ids=["idle", "busy"])
def test_a_thread_made_by_c_code_gets_in(loop, busy):
    # A thread made by C code (a driver's worker, here pthread_create through
    # ctypes) has no Python thread state until it calls into Python; then it
    # makes one and waits for the GIL.  The loop lets it in whether it is
    # idle in a poll or busy with an endless chain of callbacks (tidal keeps
    # the GIL through a poll that cannot block while it is the only thread:
    # never through one that can), and the thread's call is served.
    libc = ctypes.CDLL(None)
    fut = loop.create_future()

    def body(_arg: Any) -> None:
        loop.call_soon_threadsafe(fut.set_result, threading.get_ident())

    start = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p)(body)
    chain_runs = [0]

    def chain() -> None:
        chain_runs[0] += 1
        if not fut.done():
            loop.call_soon(chain)

    async def main() -> int:
        if busy:
            loop.call_soon(chain)
        await asyncio.sleep(0.01)  # idle: the wait below starts in a poll that can block
        assert not fut.done()
        tid = ctypes.c_ulong()
        assert libc.pthread_create(ctypes.byref(tid), None, start, None) == 0
        try:
            return await asyncio.wait_for(fut, DEADLINE)
        finally:
            assert libc.pthread_join(tid, None) == 0

    ident = loop.run_until_complete(main())
    assert ident != threading.get_ident()
    assert chain_runs[0] > 0 if busy else chain_runs[0] == 0

