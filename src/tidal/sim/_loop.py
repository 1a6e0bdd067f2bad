"""The simulated loop: tidal's own loop, given a virtual clock and a poller
that jumps time instead of waiting.

Nothing in the turn changes: ``EventLoop(clock=..., poller=...)`` is the seam
(see ``tidal._loop``).  What this subclass adds is what a whole run needs to
be a function of its seed: the time and randomness patches while it runs
(``_entropy``), executor jobs that finish at the virtual time they were
submitted, and a default executor shut down without a helper thread (a
thread that wakes the loop later is outside the simulation: the loop would
be idle with nothing scheduled and report a deadlock).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import random
from typing import TYPE_CHECKING, Any, Callable, Coroutine, TypeVar

from .._instrument import task_of
from .._loop import EventLoop
from ..transports._stream import StreamTransport
from ._clock import VirtualClock
from ._entropy import Entropy
from ._host import current_host
from ._poller import SimPoller

if TYPE_CHECKING:
    from concurrent.futures import Executor
    from typing import TypeVarTuple, Unpack

    _Ts = TypeVarTuple("_Ts")

_T = TypeVar("_T")

# The event that task steps queued outside the loop's turns descend from
# (schedule exploration: see SimEventLoop._explore_run_ready).
_OUTSIDE = 0


class _WaitedExecutor(concurrent.futures.Executor):
    """An executor whose jobs are finished by the time submit() returns.

    The job runs on the wrapped executor's thread as usual (thread-local
    state, "not on the loop thread" checks behave), but the loop thread
    waits for it, so its result reaches the program at the virtual time of
    the call and at the same point of the turn in every run.
    """

    def __init__(self, executor: Executor) -> None:
        self._executor = executor

    def submit(
        self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[_T]:
        job = self._executor.submit(fn, *args, **kwargs)
        concurrent.futures.wait((job,))
        return job

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._executor.shutdown(wait, cancel_futures=cancel_futures)


def _step_of(item: Any) -> asyncio.Task[Any] | None:
    """task_of for an item of the ready queue: a stream transport queued for
    its read (it is its fd's reader entry: no Handle) is an I/O event."""
    return None if type(item) is StreamTransport else task_of(item)


class SimEventLoop(EventLoop):
    """A tidal loop in virtual time, with time and randomness drawn from `seed`.

    ``explore=True`` also draws from the seed the order of timers due at
    the same virtual time and of task steps that descend from different
    events (see _explore_run_ready; a simulated network orders its own
    simultaneous events by the seed too).
    """

    # Slots, so that the instance's __dict__ is never made: asyncio's C Task
    # and Future look up the loop's methods (call_soon, get_debug) several
    # times per task step, and each lookup probes an existing __dict__
    # before the class.  (Compiled, the loop's own fields are C fields; a
    # subclass of it gets a __dict__ made, not inline, on its first
    # attribute.)  _run_ready is not one: explore puts it on the instance.
    __slots__ = ("virtual_clock", "sim_poller", "seed", "_entropy", "explore", "_schedule_random")

    def __init__(self, *, seed: int = 0, explore: bool = False) -> None:
        clock = VirtualClock()
        poller = SimPoller(clock)
        super().__init__(clock=clock, poller=poller)
        poller.add_wakeup_fd(self._ssock.fileno())
        # The loop's _clock and _poller, with their types.
        self.virtual_clock = clock
        self.sim_poller = poller
        self.seed = seed
        self._entropy = Entropy(seed, self._now_ns, _host_random)
        self.explore = False
        self.set_explore(explore)

    def set_explore(self, explore: bool) -> None:
        """Schedule exploration on or off, from the loop's next run on."""
        if explore == self.explore:
            return
        self.explore = explore
        if explore:
            # On the instance: the loop calls a replaced _run_ready instead
            # of its own (EventLoop._note_overrides); without explore the
            # turn is untouched.
            self._schedule_random = random.Random(f"tidal.sim:{self.seed}:schedule")
            self._run_ready = self._explore_run_ready  # type: ignore[method-assign]
            self.call_soon_threadsafe = self._explore_call_soon_threadsafe  # type: ignore[method-assign]
            # The event each handle queued by the last run phase descends
            # from (an int per handle, in queue order); the handles queued by
            # a thread since (each the start of its own event); each event's
            # rank among the others, drawn when first needed; the next event.
            self._origins: list[int] = []
            self._from_threads: set[Any] = set()
            self._ranks: dict[int, float] = {}
            self._next_event = _OUTSIDE + 1
        else:
            del self._run_ready, self.call_soon_threadsafe

    def _explore_call_soon_threadsafe(
        self, callback: Callable[..., object], *args: Any, context: Any = None
    ) -> Any:
        """call_soon_threadsafe, noting the handle as an event of its own: a
        thread's result (run_in_executor's, in a simulation) comes when the
        thread is done, which no order of the loop's decides."""
        handle = EventLoop.call_soon_threadsafe(self, callback, *args, context=context)
        self._from_threads.add(handle)
        return handle

    def _explore_run_ready(self, ntodo: int) -> None:
        """The turn's run phase, with the seed choosing among the orders a
        real loop could have taken (docs/simulation.md, "Schedule
        exploration").

        Every handle descends from an event: an I/O callback or a timer
        (each its own event), a handle a thread queued, or what code outside
        the loop's turns queued (one event).  What a handle queues descends
        from its event.  Two things are drawn from the seed, nothing else
        moves: timers due at the same instant (asyncio leaves their order
        to its heap) are shuffled among themselves; and the task steps of
        the turn are put in the order of their events' ranks (one draw per
        event, so the steps of the earlier-ranked event go first in later
        turns too), each event's own steps in the order they were queued.
        Plain callbacks (anything but a task's step) keep their places.
        """
        ready = self._ready
        if ntodo == 1:
            # Nothing to order (the turn of most timers and wake-ups): run
            # it in place; what it queues descends from its event.
            [event] = self._events_of([ready[0]])
            before = len(ready) - 1
            EventLoop._run_ready(self, 1)
            added = len(ready) - before
            self._origins = [event] * added if added else []
            return
        handles = [ready.popleft() for _ in range(ntodo)]
        events = self._events_of(handles)
        self._shuffle_same_time_timers(handles, events)
        self._order_task_steps(handles, events)
        # Run them one at a time: what each queues (at the queue's end)
        # descends from its event.
        origins: list[int] = []
        run_one = EventLoop._run_ready
        done = 0
        try:
            for handle, event in zip(handles, events):
                before = len(ready)
                ready.appendleft(handle)
                done += 1
                run_one(self, 1)
                added = len(ready) - before
                if added:
                    origins.extend([event] * added)
        finally:
            if done < ntodo:  # SystemExit or KeyboardInterrupt: the rest stays queued
                ready.extendleft(reversed(handles[done:]))
                origins = []
            self._origins = origins
            ranks = self._ranks
            if len(ranks) > 4 * len(origins) + 64:
                alive = set(origins)
                self._ranks = {e: r for e, r in ranks.items() if e in alive}

    def _events_of(self, handles: list[Any]) -> list[int]:
        """The event each of the turn's handles descends from."""
        origins = self._origins
        known = len(origins)
        from_threads = self._from_threads
        events = []
        for i, handle in enumerate(handles):
            if from_threads and handle in from_threads:
                from_threads.discard(handle)
            elif i < known:
                events.append(origins[i])
                continue
            elif _step_of(handle) is not None:
                # A task step queued outside the turns (create_task before
                # the loop runs): all such are one event, in their order.
                events.append(_OUTSIDE)
                continue
            events.append(self._next_event)  # an I/O callback, a timer, a thread's
            self._next_event += 1
        return events

    def _shuffle_same_time_timers(self, handles: list[Any], events: list[int]) -> None:
        """Shuffle each run of timers due at the same instant (the phase
        appends due timers in time order)."""
        shuffle = self._schedule_random.shuffle
        ntodo = len(handles)
        start = 0
        while start < ntodo:
            when = getattr(handles[start], "_when", None)
            end = start + 1
            if when is not None:
                while end < ntodo and getattr(handles[end], "_when", None) == when:
                    end += 1
                if end - start > 1:
                    order = list(range(start, end))
                    shuffle(order)
                    handles[start:end] = [handles[i] for i in order]
                    events[start:end] = [events[i] for i in order]
            start = end

    def _order_task_steps(self, handles: list[Any], events: list[int]) -> None:
        """Put the task steps, in the places task steps hold, in the order
        of their events' ranks (their queue order within one event)."""
        slots = [i for i, handle in enumerate(handles) if _step_of(handle) is not None]
        if len(slots) < 2:
            return
        first = events[slots[0]]
        if all(events[i] == first for i in slots):
            return
        ranks = self._ranks
        draw = self._schedule_random.random
        for i in slots:
            if events[i] not in ranks:
                ranks[events[i]] = draw()
        ordered = sorted(slots, key=lambda i: (ranks[events[i]], i))
        moved = [(handles[i], events[i]) for i in ordered]
        for slot, (handle, event) in zip(slots, moved):
            handles[slot] = handle
            events[slot] = event

    def _now_ns(self) -> int:
        """Virtual nanoseconds, as the code asking sees them (the time patches):
        a simulated host's own clock, which may be offset or drift."""
        ns = self.virtual_clock.ns
        host = current_host.get(None)
        return ns if host is None else host.local_ns(ns)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} seed={self.seed} time={self.time():.9f} closed={self.is_closed()}>"

    def run_forever(self) -> None:
        """Run, with the seed's time and randomness in place of the real ones."""
        self._check_closed()
        self._check_running()
        entropy = self._entropy
        if entropy.installed:
            # A Simulation holds the patches for its whole run (its main
            # run and the shutdown's: one install, not five).
            super().run_forever()
            return
        entropy.install(self)
        try:
            super().run_forever()
        finally:
            entropy.remove()

    def run_in_executor(
        self, executor: Executor | None, func: Callable[[Unpack[_Ts]], _T], *args: Unpack[_Ts]
    ) -> asyncio.Future[_T]:
        """As asyncio's, but the job is finished before this returns (see _WaitedExecutor)."""
        self._check_closed()
        if executor is None:
            if self._executor_shutdown_called:
                raise RuntimeError("Executor shutdown has been called")
            if self._default_executor is None:
                self._default_executor = concurrent.futures.ThreadPoolExecutor(
                    thread_name_prefix="asyncio"
                )
            executor = self._default_executor
        return super().run_in_executor(_WaitedExecutor(executor), func, *args)

    async def shutdown_default_executor(self, timeout: float | None = None) -> None:
        """Join the default executor's idle threads here: no job can be running
        (each was waited for), and a helper thread would wake the loop from
        outside the simulation."""
        self._executor_shutdown_called = True
        executor = self._default_executor
        if executor is not None:
            executor.shutdown(wait=True)


def _host_random() -> random.Random | None:
    """The generator of the simulated host whose code is running, if any."""
    host = current_host.get(None)
    return None if host is None else host.random


def new_event_loop(*, seed: int = 0, explore: bool = False) -> SimEventLoop:
    """A loop in virtual time for `seed`: a loop_factory (asyncio.Runner,
    pytest-asyncio's pytest_asyncio_loop_factories hook)."""
    return SimEventLoop(seed=seed, explore=explore)


def run(
    main: Coroutine[Any, Any, _T],
    *,
    seed: int = 0,
    explore: bool = False,
    debug: bool | None = None,
) -> _T:
    """Run `main` to completion in virtual time, its time and randomness drawn from `seed`."""
    if asyncio._get_running_loop() is not None:
        raise RuntimeError("tidal.sim.run() cannot be called from a running event loop")
    factory = functools.partial(new_event_loop, seed=seed, explore=explore)
    with asyncio.Runner(debug=debug, loop_factory=factory) as runner:
        return runner.run(main)
