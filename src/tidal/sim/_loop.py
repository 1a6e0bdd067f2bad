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

from .._loop import EventLoop
from ._clock import VirtualClock
from ._entropy import Entropy
from ._host import current_host
from ._poller import SimPoller

if TYPE_CHECKING:
    from concurrent.futures import Executor
    from typing import TypeVarTuple, Unpack

    _Ts = TypeVarTuple("_Ts")

_T = TypeVar("_T")


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


class SimEventLoop(EventLoop):
    """A tidal loop in virtual time, with time and randomness drawn from `seed`.

    ``explore=True`` also draws from the seed the order of timers due at
    the same virtual time (see _explore_run_ready; a simulated network
    orders its own simultaneous events by the seed too).
    """

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
        else:
            del self._run_ready

    def _explore_run_ready(self, ntodo: int) -> None:
        """The turn's run phase, after shuffling each run of timers due at
        the same time.  What asyncio promises is kept: callbacks queued by
        call_soon (a task's steps among them) keep their order, and timers
        with different due times theirs; only the order among timers due at
        the same instant, which asyncio leaves to its heap, is drawn from
        the seed."""
        if ntodo > 1:
            ready = self._ready
            handles = [ready.popleft() for _ in range(ntodo)]
            shuffle = self._schedule_random.shuffle
            start = 0
            while start < ntodo:
                when = getattr(handles[start], "_when", None)
                end = start + 1
                if when is not None:
                    while end < ntodo and getattr(handles[end], "_when", None) == when:
                        end += 1
                    if end - start > 1:
                        same_time = handles[start:end]
                        shuffle(same_time)
                        handles[start:end] = same_time
                start = end
            ready.extendleft(reversed(handles))
        EventLoop._run_ready(self, ntodo)

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
        self._entropy.install(self)
        try:
            super().run_forever()
        finally:
            self._entropy.remove()

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
