"""Fault plans: the trouble a simulated run meets, as data.

A ``FaultPlan`` is the network's defaults (latency, drop, duplicate,
reorder) plus a list of timed faults (a partition that heals after a while,
a crash and the restart after it, a clock that jumps or drifts, a bad link),
and the time from which everything is calm again (the liveness phase).  It
is immutable and plain: it prints as a readable list for a report, it goes
to JSON and back (a replay file, or a job handed to another process), and
``Simulation(seed, faults=plan)`` runs it, each fault through the
Simulation's own methods at its virtual time.

``swarm(seed, hosts, until)`` draws a whole plan from a seed, as
TigerBeetle's VOPR and FoundationDB's simulator do: which kinds of fault are
on for this seed, how many of each, when and for how long.  Different seeds
explore different kinds of trouble (a seed with only loss, one with only
crashes, one with everything), which finds more than the same mix at every
seed ("swarm testing", Groce et al. 2012).  The draw has its own random
stream, derived from the seed: the network's draws are the same whatever
the plan.

Shrinking (``_search``) works on these values: fewer faults, shorter
episodes, lower rates, so every kind here says how it gets smaller.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Iterator

if TYPE_CHECKING:
    from ._simulation import Simulation

Hosts = tuple[str, ...]


def _group(names: str | Iterable[str] | None) -> Hosts | None:
    if names is None:
        return None
    return (names,) if isinstance(names, str) else tuple(sorted(names))


def _hosts_text(names: Iterable[str] | None) -> str:
    return "{everyone else}" if names is None else "{" + ", ".join(names) + "}"


def _seconds(value: float) -> str:
    if value >= 1 or value == 0:
        return f"{value:g} s"
    return f"{value * 1000:g} ms"


def _rate(value: float) -> str:
    return f"{value * 100:.3g}%"


def _latency_text(latency: tuple[float, float]) -> str:
    lo, hi = latency
    return _seconds(lo) if lo == hi else f"{_seconds(lo)}..{_seconds(hi)}"


@dataclass(frozen=True)
class Fault:
    """A fault at virtual time `at` (seconds)."""

    at: float
    kind: ClassVar[str] = ""

    def schedule(self, sim: Simulation) -> None:
        """Put this fault on `sim`'s timeline (sim.at-like, not keeping the run alive)."""
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def smaller(self, until: float) -> Iterator[Fault]:
        """Versions of this fault that do less (for shrinking), most reduced
        first; `until`: when the plan's faults end (an open-ended episode
        lasts until then)."""
        return iter(())

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            data[f.name] = list(value) if isinstance(value, tuple) else value
        return data


def _with(fault: Any, name: str, value: Any) -> Any:
    """`fault` with one field changed (a field named at run time)."""
    return dataclasses.replace(fault, **{name: value})


def _halved(value: float | None, floor: float) -> float | None:
    """Half of a duration, None when that is too short to be a fault any more."""
    if value is None:
        return None
    half = round(value / 2, 6)
    return half if half >= floor else None


@dataclass(frozen=True)
class Partition(Fault):
    """Cut the links between `a` and `b` (None: everyone else); healed after `duration` s (None: never, until liveness)."""

    a: Iterable[str] = ()  # a name or names (kept as a sorted tuple)
    b: Iterable[str] | None = None
    one_way: bool = False
    duration: float | None = None
    kind: ClassVar[str] = "partition"

    def __post_init__(self) -> None:
        object.__setattr__(self, "a", _group(self.a))
        object.__setattr__(self, "b", _group(self.b))

    def schedule(self, sim: Simulation) -> None:
        sim._at(self.at, False, _partition, sim, self.a, self.b, self.one_way)
        if self.duration is not None:
            sim._at(self.at + self.duration, False, sim.heal, self.a, self.b)

    def describe(self) -> str:
        arrow = "->" if self.one_way else "<->"
        span = "until healed" if self.duration is None else f"for {_seconds(self.duration)}"
        return f"partition {_hosts_text(self.a)} {arrow} {_hosts_text(self.b)} {span}"

    def smaller(self, until: float) -> Iterator[Fault]:
        if self.duration is None:
            # The same partition, with an end: then it can get shorter.
            yield dataclasses.replace(self, duration=max(until - self.at, 0.001))
        else:
            half = _halved(self.duration, 0.001)
            if half is not None:
                yield dataclasses.replace(self, duration=half)
        if not self.one_way:
            yield dataclasses.replace(self, one_way=True)
        # Fewer hosts cut off (a named group keeps at least one).
        for side in ("a", "b"):
            group = getattr(self, side)
            if group is not None and len(group) > 1:
                for name in group:
                    yield _with(self, side, tuple(h for h in group if h != name))


@dataclass(frozen=True)
class Heal(Fault):
    """Restore every cut link (or those between `a` and `b`)."""

    a: Iterable[str] | None = None
    b: Iterable[str] | None = None
    kind: ClassVar[str] = "heal"

    def __post_init__(self) -> None:
        object.__setattr__(self, "a", _group(self.a))
        object.__setattr__(self, "b", _group(self.b))

    def schedule(self, sim: Simulation) -> None:
        sim._at(self.at, False, sim.heal, self.a, self.b)

    def describe(self) -> str:
        if self.a is None:
            return "heal every link"
        return f"heal {_hosts_text(self.a)} <-> {_hosts_text(self.b)}"


@dataclass(frozen=True)
class Crash(Fault):
    """Crash `host` (if its main is still running); restart it after `downtime` s (None: at liveness)."""

    host: str = ""
    downtime: float | None = None
    kind: ClassVar[str] = "crash"

    def schedule(self, sim: Simulation) -> None:
        sim._at(self.at, False, _crash_running, sim, self.host)
        if self.downtime is not None:
            # A host that will come back is not done: its restart keeps the run on.
            sim._at(self.at + self.downtime, True, _restart_down, sim, self.host)

    def describe(self) -> str:
        after = (
            "stays down" if self.downtime is None else f"restarts after {_seconds(self.downtime)}"
        )
        return f"crash {self.host}, {after}"

    def smaller(self, until: float) -> Iterator[Fault]:
        if self.downtime is None:
            yield dataclasses.replace(self, downtime=max(until - self.at, 0.001))
        else:
            half = _halved(self.downtime, 0.001)
            if half is not None:
                yield dataclasses.replace(self, downtime=half)


@dataclass(frozen=True)
class Restart(Fault):
    """Restart `host` if it is down."""

    host: str = ""
    kind: ClassVar[str] = "restart"

    def schedule(self, sim: Simulation) -> None:
        sim._at(self.at, False, _restart_down, sim, self.host)

    def describe(self) -> str:
        return f"restart {self.host}"


@dataclass(frozen=True)
class Clock(Fault):
    """Set `host`'s clock: `offset` s from true time, `drift` s/s fast, or a `step` of s."""

    host: str = ""
    offset: float | None = None
    drift: float | None = None
    step: float | None = None
    kind: ClassVar[str] = "clock"

    def schedule(self, sim: Simulation) -> None:
        sim._at(self.at, False, sim.clock, self.host, self.offset, self.drift, self.step)

    def describe(self) -> str:
        parts = [
            f"{name} {value:+.3g}{unit}"
            for name, value, unit in (
                ("offset", self.offset, " s"),
                ("drift", self.drift, " s/s"),
                ("step", self.step, " s"),
            )
            if value is not None
        ]
        return f"clock {self.host}: " + ", ".join(parts or ["unchanged"])

    def smaller(self, until: float) -> Iterator[Fault]:
        names = [n for n in ("offset", "drift", "step") if getattr(self, n) is not None]
        if len(names) > 1:
            for name in names:
                yield _with(self, name, None)
        for name in names:
            value = getattr(self, name)
            if abs(value) > 1e-6:
                yield _with(self, name, float(f"{value / 2:.3g}"))


@dataclass(frozen=True)
class Link(Fault):
    """The link `a` <-> `b` (or only a -> b) gets these faults, back to the defaults after `duration` s."""

    a: str = ""
    b: str = ""
    latency: tuple[float, float] | None = None
    drop: float | None = None
    duplicate: float | None = None
    reorder: float | None = None
    both_ways: bool = True
    duration: float | None = None
    kind: ClassVar[str] = "link"

    def __post_init__(self) -> None:
        if self.latency is not None:
            object.__setattr__(self, "latency", tuple(self.latency))

    def schedule(self, sim: Simulation) -> None:
        sim._at(
            self.at,
            False,
            _set_link,
            sim,
            self.a,
            self.b,
            self.latency,
            self.drop,
            self.duplicate,
            self.reorder,
            self.both_ways,
        )
        if self.duration is not None:
            sim._at(
                self.at + self.duration, False, _reset_link, sim, self.a, self.b, self.both_ways
            )

    def describe(self) -> str:
        parts = []
        if self.latency is not None:
            parts.append(f"latency {_latency_text(self.latency)}")
        for name in ("drop", "duplicate", "reorder"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name} {_rate(value)}")
        span = "" if self.duration is None else f" for {_seconds(self.duration)}"
        arrow = "<->" if self.both_ways else "->"
        return f"link {self.a} {arrow} {self.b}: {', '.join(parts) or 'defaults'}{span}"

    def smaller(self, until: float) -> Iterator[Fault]:
        half = _halved(self.duration, 0.001)
        if half is not None:
            yield dataclasses.replace(self, duration=half)
        for name in ("drop", "duplicate", "reorder"):
            if getattr(self, name):
                yield _with(self, name, None)
        if self.latency is not None:
            yield dataclasses.replace(self, latency=None)


FAULT_KINDS: dict[str, type[Fault]] = {
    cls.kind: cls for cls in (Partition, Heal, Crash, Restart, Clock, Link)
}


# -- actions the faults schedule (the Simulation's methods, with the plan's manners) --


def _partition(sim: Simulation, a: Iterable[str], b: Iterable[str] | None, one_way: bool) -> None:
    sim.partition(a, b, one_way=one_way)


def _crash_running(sim: Simulation, name: str) -> None:
    """A plan's crash hits a host whose program runs; one that has finished
    its work is left alone (restarting it would run a finished client again)."""
    host = sim._host(name)
    if host.up and not host.done:
        sim.crash(name)


def _restart_down(sim: Simulation, name: str) -> None:
    if not sim._host(name).up:
        sim.restart(name)


def _set_link(
    sim: Simulation,
    a: str,
    b: str,
    latency: tuple[float, float] | None,
    drop: float | None,
    duplicate: float | None,
    reorder: float | None,
    both_ways: bool,
) -> None:
    sim.link(
        a, b, latency=latency, drop=drop, duplicate=duplicate, reorder=reorder, both_ways=both_ways
    )


def _reset_link(sim: Simulation, a: str, b: str, both_ways: bool) -> None:
    sim.link(a, b, both_ways=both_ways)


# -- the plan --------------------------------------------------------------------


@dataclass(frozen=True)
class FaultPlan:
    """The network's defaults, timed faults, and when the liveness phase begins.

    ``latency``/``drop``/``duplicate``/``reorder``: None keeps what the
    Simulation was made with.  ``liveness``: from this virtual time on,
    every link is healed and back to the defaults without loss and every
    crashed host restarted (``Simulation.settle``), so a property that
    must hold eventually can be checked at the end.  ``explore``: schedule
    exploration on or off (None: as the Simulation was made).  ``origin``
    says where the plan came from (for reports).
    """

    faults: tuple[Fault, ...] = ()
    latency: tuple[float, float] | None = None
    drop: float | None = None
    duplicate: float | None = None
    reorder: float | None = None
    liveness: float | None = None
    explore: bool | None = None
    origin: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        faults = tuple(sorted(self.faults, key=lambda f: f.at))
        object.__setattr__(self, "faults", faults)
        if self.latency is not None:
            object.__setattr__(self, "latency", tuple(self.latency))

    def __len__(self) -> int:
        return len(self.faults)

    def __str__(self) -> str:
        head = []
        if self.latency is not None:
            head.append(f"latency {_latency_text(self.latency)}")
        for name in ("drop", "duplicate", "reorder"):
            value = getattr(self, name)
            if value:
                head.append(f"{name} {_rate(value)}")
        if self.explore:
            head.append("schedule exploration on")
        lines = [f"network: {', '.join(head) or 'the simulation defaults'}"]
        times = [f.at for f in self.faults] + [self.liveness or 0.0]
        width = max(len(f"{t:.6f}") for t in times)
        for fault in self.faults:
            lines.append(f"  {fault.at:{width}.6f} s  {fault.describe()}")
        if self.liveness is not None:
            lines.append(
                f"  {self.liveness:{width}.6f} s  liveness: every link healed, no loss, "
                "crashed hosts restarted"
            )
        if not self.faults and self.liveness is None:
            lines.append("  (no timed faults)")
        return "\n".join(lines)

    @property
    def weight(self) -> int:
        """How much trouble the plan makes, in counted parts (what shrinking lowers)."""
        rates = sum(1 for v in (self.drop, self.duplicate, self.reorder) if v)
        return len(self.faults) + rates + (self.latency is not None) + bool(self.explore)

    # -- JSON ------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "latency": None if self.latency is None else list(self.latency),
            "drop": self.drop,
            "duplicate": self.duplicate,
            "reorder": self.reorder,
            "liveness": self.liveness,
            "explore": self.explore,
            "origin": self.origin,
            "faults": [f.to_json() for f in self.faults],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultPlan:
        faults = []
        for item in data.get("faults", ()):
            item = dict(item)
            kind = FAULT_KINDS.get(item.pop("kind", None))
            if kind is None:
                raise ValueError(f"unknown fault kind in {item!r}")
            for key, value in item.items():
                if isinstance(value, list):
                    item[key] = tuple(value)
            faults.append(kind(**item))
        latency = data.get("latency")
        return cls(
            tuple(faults),
            None if latency is None else (latency[0], latency[1]),
            data.get("drop"),
            data.get("duplicate"),
            data.get("reorder"),
            data.get("liveness"),
            data.get("explore"),
            data.get("origin", ""),
        )

    @classmethod
    def loads(cls, text: str) -> FaultPlan:
        return cls.from_json(json.loads(text))

    def save(self, path: str) -> str:
        with open(path, "w") as f:
            f.write(self.dumps() + "\n")
        return path

    @classmethod
    def load(cls, path: str) -> FaultPlan:
        with open(path) as f:
            return cls.loads(f.read())

    # -- running -------------------------------------------------------------

    def schedule(self, sim: Simulation) -> None:
        """Set the network's defaults on `sim` now and put every fault on its timeline."""
        if any(v is not None for v in (self.latency, self.drop, self.duplicate, self.reorder)):
            sim.network(
                latency=self.latency, drop=self.drop, duplicate=self.duplicate, reorder=self.reorder
            )
        for fault in self.faults:
            fault.schedule(sim)
        if self.liveness is not None:
            # Kept waiting for: crashed hosts come back then.
            sim._at(self.liveness, True, sim.settle)


# -- swarm -----------------------------------------------------------------------

SWARM_KINDS = ("partition", "crash", "loss", "link", "drift", "step")


@dataclass(frozen=True)
class Swarm:
    """How ``swarm`` draws plans: which kinds it may use, and their bounds.

    `kinds`: a subset of SWARM_KINDS ("loss" is the network's defaults:
    drop, duplicate, reorder, latency; "drift" sets clocks' offsets and
    drift at the start; "step" jumps clocks mid-run).  `crash`: the hosts
    that may crash (None: any).  `max_drift`: the largest drift drawn
    (s/s).  `liveness`: the last fraction of the run that is calm.
    `horizon`: the run's length when ``run()`` is given no `until`.
    """

    kinds: Iterable[str] = frozenset(SWARM_KINDS)  # (kept as a frozenset)
    crash: Iterable[str] | None = None  # (kept as a sorted tuple)
    max_drift: float = 0.01
    liveness: float = 0.3
    horizon: float = 60.0

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(SWARM_KINDS)
        if unknown:
            raise ValueError(f"unknown swarm kinds {sorted(unknown)}; known: {SWARM_KINDS}")
        object.__setattr__(self, "kinds", frozenset(self.kinds))
        if self.crash is not None:
            object.__setattr__(self, "crash", _group(self.crash))
        if not 0 < self.liveness < 1:
            raise ValueError("liveness is the calm fraction of the run, in (0, 1)")

    def draw(self, seed: int, hosts: Iterable[str], until: float | None = None) -> FaultPlan:
        """The plan of `seed` for these hosts and a run of `until` s."""
        hosts = list(hosts)
        until = self.horizon if until is None else until
        rng = random.Random(f"tidal.sim:{seed}:swarm")
        # Every kind's coin is tossed, in a fixed order, whatever `kinds`
        # allows: narrowing the kinds leaves the other kinds' coins as they were.
        on = {kind: rng.random() < 0.5 and kind in self.kinds for kind in SWARM_KINDS}
        end = until * (1 - self.liveness)  # faults happen before this
        faults: list[Fault] = []
        latency = drop = duplicate = reorder = None

        def when() -> float:
            return round(rng.uniform(0, end), 6)

        def span(mean: float) -> float:
            return round(max(0.001, min(rng.expovariate(1 / mean), end)), 6)

        if on["loss"]:
            lo = round(10 ** rng.uniform(-4, -2), 6)  # 0.1 ms .. 10 ms
            latency = (lo, round(lo * rng.uniform(1, 10), 6))
            drop = round(rng.uniform(0, 0.3), 4) if rng.random() < 0.7 else None
            duplicate = round(rng.uniform(0, 0.1), 4) if rng.random() < 0.5 else None
            reorder = round(rng.uniform(0, 0.3), 4) if rng.random() < 0.5 else None
        if on["partition"] and len(hosts) > 1:
            mean = end * rng.uniform(0.02, 0.25)
            for _ in range(rng.randint(1, 4)):
                side = rng.sample(hosts, rng.randint(1, len(hosts) - 1))
                rest = [h for h in hosts if h not in side]
                other = None if rng.random() < 0.7 else rng.sample(rest, rng.randint(1, len(rest)))
                faults.append(
                    Partition(
                        when(),
                        tuple(side),
                        None if other is None else tuple(other),
                        rng.random() < 0.25,
                        span(mean),
                    )
                )
        if on["crash"]:
            crashable = list(self.crash) if self.crash is not None else hosts
            if crashable:
                mean = end * rng.uniform(0.02, 0.2)
                for _ in range(rng.randint(1, 3)):
                    host = rng.choice(crashable)
                    downtime = span(mean) if rng.random() < 0.75 else None
                    faults.append(Crash(when(), host, downtime))
        if on["drift"]:
            for host in hosts:
                if rng.random() < 0.5:
                    offset = round(rng.uniform(-1, 1), 6)
                    size = 10 ** rng.uniform(-6, math.log10(self.max_drift))
                    drift = float(f"{size:.3g}") * rng.choice((-1, 1))
                    faults.append(Clock(0.0, host, offset=offset, drift=drift))
        if on["step"]:
            for _ in range(rng.randint(1, 3)):
                faults.append(Clock(when(), rng.choice(hosts), step=round(rng.uniform(-2, 2), 6)))
        if on["link"] and len(hosts) > 1:
            mean = end * rng.uniform(0.05, 0.3)
            for _ in range(rng.randint(1, 3)):
                src, dst = rng.sample(hosts, 2)
                lo = round(rng.uniform(0.005, 0.2), 6)
                faults.append(
                    Link(
                        when(),
                        src,
                        dst,
                        latency=(lo, round(lo * rng.uniform(1, 5), 6)),
                        drop=round(rng.uniform(0, 0.6), 4),
                        both_ways=rng.random() < 0.7,
                        duration=span(mean),
                    )
                )
        return FaultPlan(
            tuple(faults),
            latency,
            drop,
            duplicate,
            reorder,
            liveness=round(end, 6),
            origin=f"swarm, seed {seed}",
        )


def swarm(seed: int, hosts: Iterable[str], until: float | None = None, **options: Any) -> FaultPlan:
    """The whole fault plan of `seed` for `hosts` and a run of `until` s (``Swarm(**options).draw``)."""
    return Swarm(**options).draw(seed, hosts, until)
