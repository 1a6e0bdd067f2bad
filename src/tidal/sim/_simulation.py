"""Simulation: several hosts' real asyncio code in one loop, over a simulated network.

Each host's main task runs in a context that names the host
(``_host.current_host``); every task and callback it makes inherits it, so
the loop's socket factory and resolver (``_net``), its clocks and the random
module serve that host.  All hosts share one tidal loop in virtual time;
the network's deliveries and the scheduled faults are timers of that loop.
Everything is a function of the seed: the latency and fault draws, the
hosts' random generators and urandom, the order of simultaneous events.
The trace hash folds every network event, fault and host exit as it happens.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import functools
import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .._loop import EventLoop
from ._clock import NS_PER_S, to_ns
from ._faults import FaultPlan, Swarm
from ._host import Host, HostCrashed, current_host
from ._loop import SimEventLoop
from ._net import LinkParams, Network, Trace
from . import _unix
from ._unix import UnixPaths


class StillRunning(Exception):
    """A host's result when ``run(until=...)`` ended before its main returned."""


@dataclass
class SimResult:
    """What ``Simulation.run`` returns."""

    time: float  # the virtual time the run ended at, in seconds
    results: dict[str, Any]  # host -> its main's return value, or the exception it ended with
    trace_hash: str  # equal for two runs exactly when their events were (seed, program)
    events: int = 0  # how many events the trace hash covers
    trace: list[str] = field(default_factory=list)  # the events, with keep_trace=True
    # The process's PYTHONHASHSEED ("random" when unset): what a replay needs
    # too, if the program's behaviour depends on the order of sets of strings.
    hash_seed: str = "random"
    # The fault plan the run had (drawn from the seed for faults="swarm"):
    # Simulation(seed, faults=res.plan) runs it again.
    plan: FaultPlan | None = None


def _stable_repr(value: Any) -> str:
    """A repr that is the same in every process (no ids, no hash order)."""
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return repr(value)
    if isinstance(value, BaseException):
        return f"{type(value).__qualname__}({str(value)!r})"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_stable_repr(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{_stable_repr(k)}: {_stable_repr(v)}" for k, v in value.items()) + "}"
        )
    return type(value).__qualname__


def _names(group: str | Iterable[str]) -> set[str]:
    return {group} if isinstance(group, str) else set(group)


class _SimulationLoop(SimEventLoop):
    """The simulated loop, knowing which host each task belongs to, and
    each host's clock once any host has one of its own."""

    # (No __dict__ unless host clocks put methods on the instance: see SimEventLoop.)
    __slots__ = ("_host_clocks", "_task_hosts")

    def __init__(self, *, seed: int, explore: bool) -> None:
        super().__init__(seed=seed, explore=explore)
        self._host_clocks = False
        # task -> its host's name, while a timeline is recorded (None: not kept).
        self._task_hosts: dict[asyncio.Task[Any], str] | None = None

    def create_task(
        self, coro: Any, *, name: str | None = None, context: contextvars.Context | None = None
    ) -> asyncio.Task[Any]:
        task = super().create_task(coro, name=name, context=context)
        host = current_host.get(None) if context is None else context.get(current_host)
        if host is not None:
            tasks = host.tasks
            tasks[task] = None
            task.add_done_callback(tasks.pop)
            if self._task_hosts is not None:
                self._task_hosts[task] = host.name
        return task

    @property
    def unix_paths(self) -> UnixPaths:
        """The calling host's Unix socket files, where the loop looks for
        real ones (``transports._base.unix_paths``); none outside a host."""
        host = current_host.get(None)
        return UnixPaths({} if host is None else host.unix_paths)

    def use_host_clocks(self) -> None:
        """From now on, loop.time(), call_at and call_later read the calling
        host's clock.  Until a host's clock differs, the loop's own methods
        serve everyone (no per-timer cost for the common case)."""
        if self._host_clocks:
            return
        self._host_clocks = True
        clock = self.virtual_clock
        loop_call_at = EventLoop.call_at
        loop_call_later = EventLoop.call_later

        def time() -> float:
            host = current_host.get(None)
            ns = clock.ns if host is None else host.local_ns(clock.ns)
            return ns / NS_PER_S

        def call_at(
            when: float,
            callback: Callable[..., object],
            *args: Any,
            context: contextvars.Context | None = None,
        ) -> Any:
            host = current_host.get(None)
            if host is not None and not host.identity:
                when = host.global_ns(to_ns(when)) / NS_PER_S
            return loop_call_at(self, when, callback, *args, context=context)

        def call_later(
            delay: float,
            callback: Callable[..., object],
            *args: Any,
            context: contextvars.Context | None = None,
        ) -> Any:
            host = current_host.get(None)
            if host is not None and not host.identity:
                # The host's delay, at its clock's rate, from the loop's
                # (global) now: the loop itself would read the host's time().
                when = clock.seconds + delay / host.rate
                return loop_call_at(self, when, callback, *args, context=context)
            return loop_call_later(self, delay, callback, *args, context=context)

        # On the instance: asyncio's code and the program look them up there,
        # and the loop reads this time() too, as asyncio's reads self.time():
        # in its turn no host is current, so it is the simulation's clock.
        self.time = time  # type: ignore[method-assign]
        self.call_at = call_at  # type: ignore[method-assign]
        self.call_later = call_later  # type: ignore[method-assign]


class Simulation:
    """Several hosts' asyncio programs, one simulated network, one seed.

    ``latency`` is a (low, high) range in seconds, drawn per segment or
    datagram; ``drop``, ``duplicate`` and ``reorder`` are probabilities per
    UDP datagram (TCP delivers in order, whatever the link does, and stalls
    on a cut link).  ``tcp_window`` is how many bytes a TCP sender may have
    unread by its peer; ``tcp_timeout`` how long a stalled connection waits
    before it fails.  ``keep_trace`` keeps the events' text for the result.
    ``explore=True`` draws from the seed the order of events due at the same
    virtual time and of task steps that descend from different events
    (schedule exploration; asyncio's ordering promises kept).
    ``faults``: a ``FaultPlan`` to run, or ``"swarm"`` (or a ``Swarm``) to
    draw the whole plan from the seed when ``run`` starts, for the hosts
    registered then.  ``timeline=True`` records what the loop runs, for
    ``write_timeline`` (a Perfetto trace, one process per host).
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        latency: tuple[float, float] = (0.0005, 0.002),
        drop: float = 0.0,
        duplicate: float = 0.0,
        reorder: float = 0.0,
        tcp_window: int = 256 * 1024,
        tcp_timeout: float = 60.0,
        keep_trace: bool = False,
        explore: bool = False,
        faults: FaultPlan | Swarm | str | None = None,
        timeline: bool = False,
    ) -> None:
        self.seed = seed
        self.explore = explore
        if faults == "swarm":
            faults = Swarm()
        elif faults is not None and not isinstance(faults, (FaultPlan, Swarm)):
            raise TypeError(f"faults must be a FaultPlan, a Swarm or 'swarm', not {faults!r}")
        self.faults: FaultPlan | Swarm | None = faults
        # The plan this run has (set when run() starts), and its result.
        self.plan: FaultPlan | None = None
        self.result: SimResult | None = None
        self._loop = _SimulationLoop(seed=seed, explore=explore)
        self._trace = Trace(keep_trace)
        self._net = Network(
            self._loop,
            self._loop.sim_poller,
            seed,
            LinkParams(latency, drop, duplicate, reorder),
            tcp_window,
            tcp_timeout,
            self._trace,
        )
        self._loop._entropy.patches += _unix.patches(self._net)
        self._loop._socket_factory = self._net.socket_factory
        self._loop._resolver = self._net
        self._loop.sim_poller.refuse_real = True
        self._hosts: dict[str, Host] = {}
        self._pending_actions = 0
        self._finished: asyncio.Future[None] | None = None
        self._running = False
        self._ran = False
        self._tracer: Any = None
        if timeline:
            from ..trace import Tracer

            clock = self._loop.virtual_clock
            self._tracer = Tracer(self._loop, clock=functools.partial(getattr, clock, "ns"))
            self._loop.add_instrument(self._tracer)
            self._loop._task_hosts = {}

    def __repr__(self) -> str:
        return f"<Simulation seed={self.seed} hosts={list(self._hosts)} time={self.now:.9f}>"

    @property
    def now(self) -> float:
        """The simulation's virtual time, in seconds (no host's skew)."""
        return self._loop.virtual_clock.ns / NS_PER_S

    def _record(self, line: str) -> None:
        self._trace.add(self._loop.virtual_clock.ns, line)

    def _host(self, name: str) -> Host:
        try:
            return self._hosts[name]
        except KeyError:
            raise KeyError(f"no host named {name!r} in this simulation") from None

    def _check_open(self) -> None:
        if self._ran:
            raise RuntimeError("this simulation has run; make a new one")

    # -- hosts ---------------------------------------------------------------

    def host(self, name: str, main: Callable[..., Any], *args: Any) -> str:
        """Add host `name`, whose main task is ``main(*args)``; its address."""
        self._check_open()
        if name in self._hosts:
            raise ValueError(f"host {name!r} exists already")
        host = Host(name, len(self._hosts), main, args, self.seed)
        self._hosts[name] = host
        self._net.hosts[name] = host
        self._net.by_address[host.address] = host
        if self._running:
            self._boot(host)
        return host.address

    def address(self, name: str) -> str:
        """The host's address (a str), as its peers see it."""
        return self._host(name).address

    def _boot(self, host: Host) -> None:
        host.up = True
        host.generation += 1
        host.reseed()
        host.tasks = {}
        host.done = False
        host.result = None
        self._record(f"boot {host.name} {host.generation}")
        context = contextvars.Context()
        context.run(current_host.set, host)
        coro = context.run(host.main, *host.args)
        task = self._loop.create_task(coro, name=f"{host.name} main", context=context)
        host.main_task = task
        task.add_done_callback(functools.partial(self._main_done, host, host.generation))

    def _main_done(self, host: Host, generation: int, task: asyncio.Task[Any]) -> None:
        if host.generation != generation or not host.up:
            return  # a crash already settled this boot's result
        if task.cancelled():
            result: Any = asyncio.CancelledError()
        else:
            result = task.exception() or task.result()
        host.result = result
        host.done = True
        self._record(f"exit {host.name} {_stable_repr(result)}")
        self._check_finished()

    def _check_finished(self) -> None:
        if self._finished is None or self._finished.done() or self._pending_actions:
            return
        if all(host.done for host in self._hosts.values()):
            self._finished.set_result(None)

    # -- faults ----------------------------------------------------------------

    def partition(
        self, a: str | Iterable[str], b: str | Iterable[str] | None = None, *, one_way: bool = False
    ) -> None:
        """Cut the links between groups `a` and `b` (everyone else by default);
        ``one_way=True`` cuts only a -> b."""
        self._check_open()
        group_a = _names(a)
        group_b = set(self._hosts) - group_a if b is None else _names(b)
        for name in group_a | group_b:
            self._host(name)
        self._net.partition(group_a, group_b, one_way)
        arrow = "->" if one_way else "<->"
        self._record(f"partition {sorted(group_a)} {arrow} {sorted(group_b)}")

    def heal(
        self, a: str | Iterable[str] | None = None, b: str | Iterable[str] | None = None
    ) -> None:
        """Restore every cut link (or those between `a` and `b`, both ways)."""
        self._check_open()
        group_a = None if a is None else _names(a)
        group_b = None if a is None else (set(self._hosts) - _names(a) if b is None else _names(b))
        self._net.heal(group_a, group_b)
        self._record(
            "heal" if a is None else f"heal {sorted(group_a or ())} {sorted(group_b or ())}"
        )

    def link(
        self,
        a: str,
        b: str,
        *,
        latency: tuple[float, float] | None = None,
        drop: float | None = None,
        duplicate: float | None = None,
        reorder: float | None = None,
        both_ways: bool = True,
    ) -> None:
        """Set the faults of the link a -> b (and b -> a): unset ones keep the defaults."""
        self._check_open()
        self._host(a), self._host(b)
        params = self._defaults_but(latency, drop, duplicate, reorder)
        self._net.links[(a, b)] = params
        if both_ways:
            self._net.links[(b, a)] = params
        self._record(
            f"link {a} {'<->' if both_ways else '->'} {b} {latency} {drop} {duplicate} {reorder}"
        )

    def crash(self, name: str) -> None:
        """Host `name` dies now: its tasks are cancelled, its timers dropped,
        its connections reset.  Its result becomes HostCrashed (unless its
        main had returned already)."""
        self._check_open()
        host = self._host(name)
        if not host.up:
            return
        host.up = False
        self._record(f"crash {name}")
        if not self._running:
            host.result = HostCrashed(f"{name} crashed at {self.now:.9f} s")
            host.done = True
            return
        for timer in list(self._loop._scheduled):
            context = getattr(timer, "_context", None)
            if context is not None and context.get(current_host) is host:
                timer.cancel()
        self._net.crash(host)
        for task in list(host.tasks):
            task.cancel()
        if not host.done:  # (a main that returned keeps its result)
            host.result = HostCrashed(f"{name} crashed at {self.now:.9f} s")
            host.done = True
        self._check_finished()

    def restart(self, name: str) -> None:
        """Run host `name`'s main again, with fresh state (crashing it first if it is up)."""
        self._check_open()
        host = self._host(name)
        if host.up:
            self.crash(name)
        self._record(f"restart {name}")
        if self._running:
            self._boot(host)
        else:
            host.up = True  # booted when the run starts
            host.done = False

    def clock(
        self,
        name: str,
        offset: float | None = None,
        drift: float | None = None,
        step: float | None = None,
    ) -> None:
        """Host `name`'s clock from now on: `offset` s from true time, running
        fast by `drift` s per s, or jumped by `step` s.  Its loop.time(),
        time.time()/monotonic() and timers follow it."""
        self._check_open()
        host = self._host(name)
        host.set_clock(self._loop.virtual_clock.ns, offset, drift, step)
        self._loop.use_host_clocks()
        self._record(f"clock {name} offset={offset} drift={drift} step={step}")

    def network(
        self,
        *,
        latency: tuple[float, float] | None = None,
        drop: float | None = None,
        duplicate: float | None = None,
        reorder: float | None = None,
    ) -> None:
        """Change the network's defaults from now on (unset ones are kept);
        links given their own faults keep them."""
        self._check_open()
        self._net.defaults = self._defaults_but(latency, drop, duplicate, reorder)
        self._record(f"network {latency} {drop} {duplicate} {reorder}")

    def _defaults_but(
        self,
        latency: tuple[float, float] | None,
        drop: float | None,
        duplicate: float | None,
        reorder: float | None,
    ) -> LinkParams:
        """The network's defaults, with the faults that are given instead."""
        d = self._net.defaults
        lo, hi = d.latency
        return LinkParams(
            latency if latency is not None else (lo / NS_PER_S, hi / NS_PER_S),
            d.drop if drop is None else drop,
            d.duplicate if duplicate is None else duplicate,
            d.reorder if reorder is None else reorder,
        )

    def settle(self) -> None:
        """The liveness phase: every cut link healed, every link back to the
        defaults, no loss, every crashed host restarted.  What a fault plan
        does at its `liveness` time, so that a property that must hold
        eventually can be checked."""
        self._check_open()
        self.heal()
        self._net.links.clear()
        self.network(drop=0.0, duplicate=0.0, reorder=0.0)
        for name, host in self._hosts.items():
            if not host.up:
                self.restart(name)

    def at(self, when: float, action: Callable[..., Any], *args: Any) -> None:
        """Call ``action(*args)`` at virtual time `when` (s), outside every host."""
        self._at(when, True, action, *args)

    def _at(self, when: float, keep_alive: bool, action: Callable[..., Any], *args: Any) -> None:
        """`at`; an action that does not `keep_alive` lets the run end before
        it (a fault plan's faults: the run ends when the hosts are done)."""
        self._check_open()
        if keep_alive:
            self._pending_actions += 1
        self._net.at(
            max(to_ns(when), self._loop.virtual_clock.ns), self._act, action, args, keep_alive
        )

    def _act(self, action: Callable[..., Any], args: tuple[Any, ...], keep_alive: bool) -> None:
        if keep_alive:
            self._pending_actions -= 1
        try:
            action(*args)
        finally:
            self._check_finished()

    # -- running ---------------------------------------------------------------

    def run(self, until: float | None = None) -> SimResult:
        """Run until every host's main is done (and no scheduled action is
        pending) or until virtual time `until`; then stop every task."""
        self._check_open()
        loop = self._loop
        plan = self.faults
        if isinstance(plan, Swarm):
            plan = plan.draw(self.seed, self._hosts, until)
        if plan is not None:
            if plan.explore is None:
                plan = dataclasses.replace(plan, explore=self.explore)
            elif plan.explore != self.explore:
                loop.set_explore(plan.explore)
            plan.schedule(self)
        self.plan = plan
        self._finished = loop.create_future()
        self._running = True
        entropy = loop._entropy
        try:
            # The time and randomness patches from the first boot to the
            # last task's end (each run_until_complete would install and
            # remove them again: ~60 us, five times per run).
            entropy.install(loop)
            for host in self._hosts.values():
                if host.up or host.generation == 0 and not host.done:
                    self._boot(host)
            if until is not None:
                self._net.at(to_ns(until), self._time_is_up)
            self._check_finished()
            loop.run_until_complete(self._finished)
            end = self.now
            results: dict[str, Any] = {}
            for name, host in self._hosts.items():
                results[name] = (
                    host.result
                    if host.done
                    else StillRunning(f"{name} still running at {end:.9f} s")
                )
                self._record(f"result {name} {_stable_repr(results[name])}")
            self.result = SimResult(
                end,
                results,
                self._trace.hexdigest(),
                self._trace.count,
                list(self._trace.events),
                os.environ.get("PYTHONHASHSEED", "random"),
                plan,
            )
            return self.result
        finally:
            self._running = False
            self._ran = True
            try:
                self._shut_down()
            finally:
                entropy.remove()

    def write_timeline(self, path: str) -> str:
        """Write what the loop ran (``timeline=True``) as a Chrome/Perfetto
        trace: one process per host (its tasks and callbacks) and one for
        the simulation itself (the network's deliveries, faults, the
        loop's waits), timestamps in virtual time.  Returns `path`."""
        if self._tracer is None:
            raise RuntimeError("make the Simulation with timeline=True to write its timeline")
        from ..trace._chrome import process_events
        from ..trace._recorder import CALL, EXIT, SPAWN, STEP, STEP_END, WAIT, WAIT_END

        task_hosts = self._loop._task_hosts or {}
        groups: dict[str, list[tuple[Any, ...]]] = {"simulation": []}
        groups.update((name, []) for name in self._hosts)
        current = "simulation"  # the group of the step or callback running
        for record in self._tracer.events:
            kind = record[1]
            if kind == CALL:
                context = record[4]
                host = None if context is None else context.get(current_host)
                current = "simulation" if host is None else host.name
                group = current
            elif kind in (WAIT, WAIT_END):
                group = "simulation"
            elif kind in (STEP, STEP_END):
                group = current = task_hosts.get(record[2], "simulation")
            elif kind in (SPAWN, EXIT):
                group = task_hosts.get(record[2], current)
            else:  # CALL_END, and WAKE: where the waker runs
                group = current
            groups[group].append(record)
        processes = [
            (
                name if name == "simulation" else f"host {name} ({self._hosts[name].address})",
                records,
            )
            for name, records in groups.items()
        ]
        data = {
            "traceEvents": process_events([processes], 0),
            "displayTimeUnit": "ms",
            "otherData": {
                "producer": "tidal.sim",
                "seed": self.seed,
                "virtual_time": True,
                "plan": None if self.plan is None else self.plan.to_json(),
            },
        }
        with open(path, "w") as f:
            json.dump(data, f, separators=(",", ":"))
        return path

    def _time_is_up(self) -> None:
        if self._finished is not None and not self._finished.done():
            self._finished.set_result(None)

    def _shut_down(self) -> None:
        """Cancel what still runs, let it finish, close the loop."""
        loop = self._loop
        if loop.is_closed():
            return
        try:
            tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            # Connections the hosts left open end with the world they lived in.
            transports = [t for t in loop._open_transports() if not t.is_closing()]
            for transport in transports:
                transport.abort()
            if transports:
                loop.run_until_complete(asyncio.sleep(0))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()


class NondeterminismError(AssertionError):
    """Two runs of the same seed differed: something escaped the seed."""


def check_determinism(
    scenario: Callable[[int], Simulation], seed: int, until: float | None = None
) -> SimResult:
    """Run ``scenario(seed)`` (a function that builds a Simulation) twice and
    compare: the first run's result if the two are the same, else
    NondeterminismError naming the first event where they diverge (a real
    clock, an unseeded generator, ids or hash order reaching the network)."""
    results = []
    for _ in range(2):
        simulation = scenario(seed)
        simulation._trace.keep = True
        results.append(simulation.run(until))
    first, second = results
    if first.trace_hash == second.trace_hash:
        return first
    for index, (a, b) in enumerate(zip(first.trace, second.trace)):
        if a != b:
            break
    else:
        index = min(len(first.trace), len(second.trace))
        a = first.trace[index] if index < len(first.trace) else "(the run ended)\n"
        b = second.trace[index] if index < len(second.trace) else "(the run ended)\n"
    raise NondeterminismError(
        f"seed {seed}: two runs diverge at event {index} "
        f"(virtual ns first):\n  first run:  {a.rstrip()}\n  second run: {b.rstrip()}"
    )
