"""Clock synchronisation over UDP: Cristian's algorithm and the Berkeley algorithm.

Every node has a hardware clock that is off (an offset) and runs at its own
rate (a drift); it keeps a software clock, hardware + adjustment, and only
ever changes the adjustment.  Node n0 is Cristian's time server and
Berkeley's master.

- Cristian (1989): a client notes t0, asks the server for the time T, notes
  t1 when the answer comes; it sets its clock to T + (t1 - t0) / 2.  The
  server read T somewhere within the round trip, so the clock is then right
  to within +-(t1 - t0) / 2: the bound the client records.
- Berkeley (Gusella and Zatti 1989): the master polls every node as Cristian
  would, so it knows each one's offset from its own clock to within half
  that round trip; it averages the offsets that agree with the median
  (a fault-tolerant average), and tells each node the correction to apply
  (a relative one: it does not matter when it arrives).  Nodes corrected in
  the same round then agree to within the sum of their two bounds.

Requests and answers are UDP datagrams: a lost one times out and is asked
again (with a new sequence number: a late answer to an old request must not
be used with the new request's t0).  ``check`` compares what the nodes did
with the true clocks.

    python clocksync.py --real            # 4 nodes on 127.0.0.1, skew applied in software
    python clocksync.py --sim --seed 3    # the nodes in tidal.sim, skew from sim.clock
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import statistics
import time
from typing import Any, Callable

import _launch

NAMES = ["n0", "n1", "n2", "n3"]
MASTER = "n0"  # Cristian's time server, Berkeley's master
PERIOD = 0.5  # one synchronisation every PERIOD s (of the node's clock)
ATTEMPTS, TIMEOUT = 3, 0.1  # a question unanswered after TIMEOUT s is asked again
TOLERANCE = 0.1  # Berkeley: offsets this far from the median are left out of the average
SETTLE = 0.3  # Berkeley: a round's corrections have arrived this long after it is decided

Skew = tuple[float, float, float]  # offset (s), drift (s/s), the real time it counts from


def hardware_clock(skew: Skew | None) -> Callable[[], float]:
    """The node's hardware clock.  In a simulation, time.time() is already
    off and drifting (sim.clock); on a real machine all nodes share one
    clock, so --real gives each a skew in software."""
    if skew is None:
        return time.time
    offset, drift, base = skew

    def skewed() -> float:
        now = time.time()
        return now + offset + (now - base) * drift

    return skewed


class ClockNode(asyncio.DatagramProtocol):
    """A node's clocks and its UDP endpoint: asks others the time, answers them."""

    def __init__(self, skew: Skew | None) -> None:
        self.hardware = hardware_clock(skew)
        self.adjustment = 0.0
        self.log: list[dict[str, Any]] = []  # every change of the adjustment
        self.asked: dict[int, asyncio.Future[float]] = {}  # sequence number -> answer
        self.numbers = itertools.count()
        self.last_round = -1  # Berkeley: the last round whose correction we applied
        self.polled = -1  # Berkeley: the last round that polled us

    def now(self) -> float:
        return self.hardware() + self.adjustment

    def adjust(self, by: float, **about: Any) -> None:
        self.adjustment += by
        self.log.append({"at": self.hardware(), "adjustment": self.adjustment, **about})

    def send(self, message: dict[str, Any], address: Any) -> None:
        self.transport.sendto(json.dumps(message).encode(), address)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, address: Any) -> None:
        message = json.loads(data)
        if message["op"] == "time?":
            self.polled = max(self.polled, message.get("round", -1))
            self.send({"op": "time", "seq": message["seq"], "time": self.now()}, address)
        elif message["op"] == "time":
            answer = self.asked.pop(message["seq"], None)
            if answer is not None and not answer.done():
                answer.set_result(message["time"])
        elif message["op"] == "adjust" and message["round"] > self.last_round:
            # A duplicated datagram is applied once.  A round's correction is
            # relative to the clock that round measured: one that arrives after
            # a later round has measured us again is stale (that round's
            # correction will include it), and applying it would count it twice.
            self.last_round = message["round"]
            if message["round"] >= self.polled:
                self.adjust(message["by"], round=message["round"])

    async def ask_time(self, address: Any, **about: Any) -> tuple[float, float, float] | None:
        """Cristian's question: (t0, T, t1) on our hardware clock, or None if
        no answer came after ATTEMPTS tries."""
        for _ in range(ATTEMPTS):
            seq = next(self.numbers)
            answer = self.asked[seq] = asyncio.get_running_loop().create_future()
            t0 = self.hardware()
            self.send({"op": "time?", "seq": seq, **about}, address)
            try:
                async with asyncio.timeout(TIMEOUT):
                    their_time = await answer
            except TimeoutError:
                self.asked.pop(seq, None)
                continue
            return t0, their_time, self.hardware()
        return None


def lifetime(rounds: int) -> float:
    """How long the server (or the slaves) serve: until every round is over."""
    return rounds * (PERIOD + ATTEMPTS * TIMEOUT) + 0.5


async def start(name: str, peers: _launch.Peers, skew: Skew | None) -> ClockNode:
    loop = asyncio.get_running_loop()
    _, node = await loop.create_datagram_endpoint(lambda: ClockNode(skew), local_addr=peers[name])
    return node


async def cristian(
    name: str, peers: _launch.Peers, rounds: int, skews: dict[str, Skew] | None = None
) -> dict[str, Any]:
    node = await start(name, peers, None if skews is None else skews[name])
    try:
        if name == MASTER:
            await asyncio.sleep(lifetime(rounds))
        for _ in range(rounds if name != MASTER else 0):
            await asyncio.sleep(PERIOD)
            asked = await node.ask_time(peers[MASTER])
            if asked is not None:
                t0, server_time, t1 = asked
                # Set the clock to T + (t1 - t0) / 2 at t1: the new adjustment.
                wanted = server_time + (t1 - t0) / 2 - t1
                node.adjust(wanted - node.adjustment, bound=(t1 - t0) / 2)
    finally:
        node.transport.close()
    return {"log": node.log}


async def berkeley(
    name: str, peers: _launch.Peers, rounds: int, skews: dict[str, Skew] | None = None
) -> dict[str, Any]:
    node = await start(name, peers, None if skews is None else skews[name])
    decisions = []
    try:
        if name != MASTER:
            await asyncio.sleep(lifetime(rounds))
        for number in range(rounds if name == MASTER else 0):
            await asyncio.sleep(PERIOD)
            others = [peer for peer in peers if peer != name]
            polled = await asyncio.gather(
                *(node.ask_time(peers[peer], round=number) for peer in others)
            )
            # Each answering node's offset from our clock, to within half its round trip.
            offsets, bounds = {name: 0.0}, {name: 0.0}
            for peer, asked in zip(others, polled):
                if asked is not None:
                    t0, their_time, t1 = asked
                    offsets[peer] = their_time + (t1 - t0) / 2 - (t1 + node.adjustment)
                    bounds[peer] = (t1 - t0) / 2
            median = statistics.median_low(offsets.values())  # one of them: never empty
            average = statistics.fmean(o for o in offsets.values() if abs(o - median) <= TOLERANCE)
            for peer, offset in offsets.items():
                if peer != name:
                    node.send(
                        {"op": "adjust", "round": number, "by": average - offset}, peers[peer]
                    )
            node.adjust(average, round=number)
            decisions.append({"round": number, "at": node.hardware(), "bounds": bounds})
    finally:
        node.transport.close()
    return {"log": node.log, "decisions": decisions}


Model = dict[str, tuple[float, float]]  # node -> (offset, drift) of its hardware clock
SIM_EPOCH = 1_704_067_200.0  # time.time() when a simulation starts: 2024-01-01 UTC


def check(
    algorithm: str, results: dict[str, Any], model: Model, origin: float = SIM_EPOCH
) -> dict[str, float]:
    """Measure the nodes' true errors, from their logs and their clocks' model.

    Cristian: each client's error from the server just after each sync,
    against the bound it recorded.  Berkeley: after each round, the gap
    between every two nodes it corrected, against the sum of their bounds.
    Returns the worst error, its bound, how many exceed their bound
    (beyond the drift the clocks can gather meanwhile), and the true time
    by which every node had been adjusted for the last time (liveness)."""
    max_drift = max(abs(drift) for _, drift in model.values())

    # Node n's hardware clock reads origin + offset + t * (1 + drift) at true
    # time t (s since the run started).
    def true_time(node: str, reading: float) -> float:
        offset, drift = model[node]
        return (reading - origin - offset) / (1 + drift)

    def software(node: str, t: float) -> float:
        adjustment = 0.0
        for entry in results[node]["log"]:
            if true_time(node, entry["at"]) <= t:
                adjustment = entry["adjustment"]
        offset, drift = model[node]
        return origin + offset + t * (1 + drift) + adjustment

    worst = {"error": 0.0, "bound": 0.0, "over": 0, "checked": 0, "last": 0.0}

    def judge(error: float, bound: float, slack: float) -> None:
        worst["checked"] += 1
        worst["over"] += abs(error) > bound + slack + 1e-6
        if abs(error) > worst["error"]:
            worst["error"], worst["bound"] = abs(error), bound

    if algorithm == "cristian":
        for node in results:
            for entry in results[node]["log"]:
                t = true_time(node, entry["at"])
                error = software(node, t) - software(MASTER, t)
                judge(error, entry["bound"], 2 * max_drift * entry["bound"])
    else:
        for decided in results[MASTER]["decisions"]:
            t = true_time(MASTER, decided["at"]) + SETTLE
            corrected = [
                node
                for node in decided["bounds"]
                if any(
                    e["round"] == decided["round"] and true_time(node, e["at"]) <= t
                    for e in results[node]["log"]
                )
            ]
            for a, b in itertools.combinations(corrected, 2):
                error = software(a, t) - software(b, t)
                bound = decided["bounds"][a] + decided["bounds"][b]
                judge(error, bound, 2 * max_drift * (PERIOD + SETTLE))
    adjusted = [n for n in results if algorithm == "berkeley" or n != MASTER]
    worst["last"] = min(
        max((true_time(n, e["at"]) for e in results[n]["log"]), default=0.0) for n in adjusted
    )
    return worst


def draw_model(seed: int) -> Model:
    """Clocks up to 500 ms off, drifting up to 100 ppm (the master's too)."""
    rng = random.Random(seed)
    return {
        n: (round(rng.uniform(-0.5, 0.5), 3), round(rng.uniform(-1e-4, 1e-4), 6)) for n in NAMES
    }


def report(algorithm: str, model: Model, origin: float) -> Callable[[dict[str, Any]], list[str]]:
    def lines(results: dict[str, Any]) -> list[str]:
        out = [f"{algorithm}: {MASTER} is the {'server' if algorithm == 'cristian' else 'master'}"]
        for node, result in results.items():
            if isinstance(result, BaseException):
                out.append(f"  {node}: failed: {result!r}")
                continue
            offset, drift = model[node]
            log = result["log"]
            adjusted = f"adjusted {len(log)} times" if log else "never adjusted"
            out.append(
                f"  {node}: clock {offset * 1000:+.0f} ms off, {drift * 1e6:+.0f} ppm; {adjusted}"
                + (f", by {log[-1]['adjustment'] * 1000:+.3f} ms in all" if log else "")
            )
        if not any(isinstance(r, BaseException) for r in results.values()):
            w = check(algorithm, results, model, origin)
            out.append(
                f"  true error: at most {w['error'] * 1000:.3f} ms (bound there "
                f"{w['bound'] * 1000:.3f} ms); {w['over']} of {w['checked']} beyond their bound"
            )
        return out

    return lines


def main() -> None:
    parser = _launch.parser(__doc__)
    parser.add_argument("--rounds", type=int, default=8, help="synchronisations per algorithm")
    args = parser.parse_args()
    model = draw_model(args.seed)

    def set_clocks(simulation: Any, peers: _launch.Peers) -> None:
        for name, (offset, drift) in model.items():
            simulation.clock(name, offset=offset, drift=drift)

    for algorithm, node in (("cristian", cristian), ("berkeley", berkeley)):
        skews, origin = None, SIM_EPOCH
        if args.real:
            origin = time.time()
            skews = {name: (offset, drift, origin) for name, (offset, drift) in model.items()}
        _launch.main(
            args,
            node,
            NAMES,
            report(algorithm, model, origin),
            until=60.0,
            faults=set_clocks,
            rounds=args.rounds,
            skews=skews,
        )


if __name__ == "__main__":
    main()
