"""A heartbeat failure detector: a fixed timeout, and the phi accrual detector.

Every node sends a heartbeat over UDP to every other node each INTERVAL.
Each node watches every peer with two detectors side by side:

  fixed timeout  suspect p when no heartbeat came for TIMEOUT seconds;
  phi accrual    (Hayashibara et al., 2004) keep the last inter-arrival times
                 of p's heartbeats, and suspect p when
                     phi = -log10(P(the next gap is longer than the one so far))
                 exceeds PHI_THRESHOLD, with the gaps taken as normally
                 distributed (the mean and deviation of the window).

A heartbeat from a suspected peer clears the suspicion: a false suspicion,
counted (the peer was alive).  A crashed node is suspected by every live node
within a bound: TIMEOUT for the fixed detector; for phi, the time at which
phi crosses the threshold given the window (a few intervals past the mean).

The run: one node crashes for good, one link is slow and lossy (long,
jittery latency), and one node's clock drifts.  The slow link makes the
detectors suspect a live peer now and then: the output counts those false
suspicions next to how fast the crash was seen.  The fixed timeout must be
long enough for the worst link; phi learns each link's rhythm, so it can be
quick on good links and patient on the slow one.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import statistics
from collections import deque
from typing import Any

import _launch

Addr = tuple[str, int]

INTERVAL = 0.1  # heartbeat period (s)
TIMEOUT = 0.35  # the fixed detector's timeout (s)
PHI_THRESHOLD = 8.0  # phi accrual's threshold (P(alive) below 1e-8)
WINDOW = 100  # inter-arrival times kept per peer
MIN_STD = 0.02  # a floor on the deviation (s): a perfectly regular link is not infinitely sure
CHECK = 0.01  # how often the detectors are consulted (s)


class FixedTimeout:
    """Suspect after TIMEOUT seconds without a heartbeat."""

    def __init__(self, now: float) -> None:
        self.last = now

    def heartbeat(self, now: float) -> None:
        self.last = now

    def suspects(self, now: float) -> bool:
        return now - self.last > TIMEOUT


class PhiAccrual:
    """Suspect when phi(now) exceeds PHI_THRESHOLD."""

    def __init__(self, now: float) -> None:
        self.last = now
        self.gaps: deque[float] = deque()
        self.total = self.squares = 0.0  # running sums over the window
        self.add_gap(INTERVAL)  # a prior: the rhythm we expect
        self.add_gap(INTERVAL)

    def add_gap(self, gap: float) -> None:
        if len(self.gaps) == WINDOW:
            old = self.gaps.popleft()
            self.total -= old
            self.squares -= old * old
        self.gaps.append(gap)
        self.total += gap
        self.squares += gap * gap

    def heartbeat(self, now: float) -> None:
        self.add_gap(now - self.last)
        self.last = now

    def phi(self, now: float) -> float:
        n = len(self.gaps)
        mean = self.total / n
        std = max(math.sqrt(max(self.squares / n - mean * mean, 0.0)), MIN_STD)
        z = (now - self.last - mean) / std
        p_later = 0.5 * math.erfc(z / math.sqrt(2))  # P(gap > elapsed), normal tail
        return -math.log10(max(p_later, 1e-300))

    def suspects(self, now: float) -> bool:
        return self.phi(now) > PHI_THRESHOLD


class Monitor(asyncio.DatagramProtocol):
    """One node's view of its peers: both detectors per peer, and what they said."""

    def __init__(self, me: str, peers: dict[str, Addr], now: float) -> None:
        self.me = me
        self.others = [p for p in peers if p != me]
        self.detectors = {
            kind: {p: cls(now) for p in self.others}
            for kind, cls in (("fixed", FixedTimeout), ("phi", PhiAccrual))
        }
        self.suspected: dict[str, dict[str, float]] = {"fixed": {}, "phi": {}}  # peer -> since
        self.false: dict[str, list[str]] = {"fixed": [], "phi": []}  # peers wrongly suspected

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        peer = json.loads(data)["from"]
        now = asyncio.get_running_loop().time()
        for kind, detectors in self.detectors.items():
            detectors[peer].heartbeat(now)
            if self.suspected[kind].pop(peer, None) is not None:
                self.false[kind].append(peer)  # it was alive after all

    def check(self, now: float) -> None:
        for kind, detectors in self.detectors.items():
            for peer, detector in detectors.items():
                if peer not in self.suspected[kind] and detector.suspects(now):
                    self.suspected[kind][peer] = now


async def node(
    me: str, peers: dict[str, Addr], *, duration: float, lifetimes: dict[str, float]
) -> dict[str, Any]:
    """Send heartbeats and watch the peers for `duration` s (or stop dead at
    ``lifetimes[me]``: a crash-stop in a real run); what was suspected when."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    monitor = Monitor(me, peers, start)
    transport, _ = await loop.create_datagram_endpoint(lambda: monitor, local_addr=peers[me])
    beat = json.dumps({"from": me}).encode()

    async def send_heartbeats() -> None:
        while True:
            for peer in monitor.others:
                transport.sendto(beat, peers[peer])
            await asyncio.sleep(INTERVAL)

    async def watch() -> None:
        while True:
            await asyncio.sleep(CHECK)
            monitor.check(loop.time())

    try:
        async with asyncio.timeout(lifetimes.get(me, duration)):
            async with asyncio.TaskGroup() as tg:
                tg.create_task(send_heartbeats())
                tg.create_task(watch())
    except TimeoutError:
        pass
    finally:
        transport.close()
    return {
        kind: {
            "suspected": {
                p: round(t - start, 3) for p, t in sorted(monitor.suspected[kind].items())
            },
            "false": sorted(monitor.false[kind]),
        }
        for kind in ("fixed", "phi")
    }


# -- checking ------------------------------------------------------------------

# How long after a crash each detector suspects it, at most: the last
# heartbeat may arrive up to a latency after the crash; then the detector
# waits its timeout (phi: the gap where phi crosses the threshold, on a
# regular link mean INTERVAL and deviation MIN_STD), seen at the next check.
Z = statistics.NormalDist().inv_cdf(1 - 10**-PHI_THRESHOLD)
BOUND = {"fixed": 0.002 + TIMEOUT + CHECK, "phi": 0.002 + INTERVAL + Z * MIN_STD + CHECK}


def check(results: dict[str, Any], plan: dict[str, Any]) -> list[str]:
    """Every live node suspects the crashed one within each detector's bound,
    and false suspicions happen only across the slow link."""
    problems = []
    crashed, at, slow = plan["crashed"], plan["at"], plan["slow"]
    for name, result in results.items():
        if name == crashed:
            continue
        for kind, bound in BOUND.items():
            since = result[kind]["suspected"].get(crashed)  # by the watcher's own clock
            slack = MAX_DRIFT * (at + bound)  # how far a drifting clock may be off by then
            if since is None or not -slack <= since - at <= bound + slack:
                problems.append(f"{name}'s {kind} detector: {crashed} suspected at {since}")
            for peer in result[kind]["false"]:
                if {name, peer} != set(slow):
                    problems.append(f"{name}'s {kind} detector: false suspicion of {peer}")
    return problems


def report(results: dict[str, Any], plan: dict[str, Any]) -> list[str]:
    crashed, at = plan["crashed"], plan["at"]
    live = {n: r for n, r in sorted(results.items()) if n != crashed}
    lines = []
    for kind in ("fixed", "phi"):
        false = sum(len(r[kind]["false"]) for r in live.values())
        delays = [r[kind]["suspected"].get(crashed) for r in live.values()]
        seen = " ".join("-" if d is None else f"{d - at:.3f}" for d in delays)
        lines.append(
            f"{kind:5}: {crashed}'s crash at {at:.2f} s seen after {seen} s "
            f"(bound {BOUND[kind]:.3f}); false suspicions: {false}"
        )
    problems = check(live, plan)
    lines.append(
        "check: "
        + (
            "; ".join(problems)
            if problems
            else "crash suspected within the bound, no other false suspicion"
        )
    )
    return lines


# -- running: for real, or inside the simulation -------------------------------

NODES = [f"n{i}" for i in range(5)]
DURATION = 6.0
MAX_DRIFT = 5e-4  # a drifting clock runs up to 500 ppm fast or slow


def draw_plan(seed: int) -> dict[str, Any]:
    """The seed's faults: one node crashes for good; one link between two
    others is slow, jittery and lossy; one node's clock drifts."""
    rng = random.Random(seed)
    crashed = rng.choice(NODES)
    return {
        "crashed": crashed,
        "at": round(rng.uniform(2.0, 4.0), 3),
        "slow": sorted(rng.sample([n for n in NODES if n != crashed], 2)),
        "drift": (rng.choice(NODES), rng.uniform(-MAX_DRIFT, MAX_DRIFT)),
    }


def apply_plan(sim: Any, plan: dict[str, Any]) -> None:
    sim.at(plan["at"], sim.crash, plan["crashed"])
    sim.link(*plan["slow"], latency=(0.02, 0.25), drop=0.1)
    name, drift = plan["drift"]
    sim.clock(name, drift=drift)


def main() -> None:
    args = _launch.parser(__doc__).parse_args()
    duration = DURATION
    plan: dict[str, Any]
    if args.real:  # a shorter run, a crash-stop, no slow link: the loopback is too good
        duration, plan = 1.8, {"crashed": "n4", "at": 1.0, "slow": [], "drift": None}
    else:
        plan = draw_plan(args.seed)

    def lines(results: dict[str, Any]) -> list[str]:
        head = f"heartbeat: {len(NODES)} nodes, every {INTERVAL} s, fixed timeout {TIMEOUT} s, "
        head += f"phi threshold {PHI_THRESHOLD}"
        if args.sim:
            drifting, drift = plan["drift"]
            head += (
                f"; slow link {'-'.join(plan['slow'])}, {drifting} drifts {drift * 1e6:+.0f} ppm"
            )
        return [head, *report(results, plan)]

    lifetimes = {plan["crashed"]: plan["at"]} if args.real else {}
    _launch.main(
        args,
        node,
        NODES,
        lines,
        until=duration + 1,
        faults=lambda sim, peers: apply_plan(sim, plan),
        duration=duration,
        lifetimes=lifetimes,
    )


if __name__ == "__main__":
    main()
