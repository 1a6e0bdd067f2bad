"""Leader election over UDP: the bully algorithm and a ring election, with epochs.

A leader sends a heartbeat every TICK; a node that hears none for a while
starts an election, which picks a candidate:

- bully (Garcia-Molina 1982): send ELECTION to every higher node; one that
  is alive ANSWERs and runs its own election; a node that gets no answer
  is the highest alive, and is the candidate.
- ring (Chang and Roberts 1979): pass ELECTION(candidate) to the next node
  on the ring (skipping one that does not acknowledge); each node passes on
  the higher of the candidate and itself; the node that receives its own
  name has gone all the way round as the highest, and is the candidate.

Either way the candidate then claims the next epoch: it asks every node to
promise never to accept an epoch as low again, and leads only once a
majority (itself included) has promised.  Two majorities share a node, and
a node promises each epoch once, so there is at most one leader per epoch,
even across partitions; a minority cannot elect anyone, and once the
network heals a leader's heartbeats (or its refusal of a stale one) bring
everyone under one leader.

Each node runs for `duration` seconds and appends what it did to `journal`
(its log, which survives its crash); ``check`` reads the journals.

    python election.py --real [--ring]            # 5 nodes on 127.0.0.1
    python election.py --sim --seed 3 [--ring]    # in tidal.sim, the leader crashes, a partition heals
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from typing import Any

import _launch

NAMES = ["n1", "n2", "n3", "n4", "n5"]
TICK = 0.1  # heartbeat period
SILENCE = (0.5, 1.0)  # no heartbeat for this long (drawn anew each time): elect
WAIT = 0.2  # for an ANSWER, an acknowledgement, or a majority of promises


class Elector(asyncio.DatagramProtocol):
    def __init__(self, name: str, peers: _launch.Peers, algorithm: str, journal: list[Any]):
        self.name, self.peers, self.algorithm, self.journal = name, peers, algorithm, journal
        self.loop = asyncio.get_running_loop()
        self.others = [peer for peer in sorted(peers) if peer != name]
        self.epoch = 0  # the highest epoch we have promised (or led)
        self.leader: str | None = None  # whom we follow in `epoch`
        self.leading = False
        self.heard = self.loop.time()  # when the leader last showed it was alive
        self.silence = random.uniform(*SILENCE)
        self.election: asyncio.Task[None] | None = None
        self.answered = asyncio.Event()
        self.promises: set[str] = set()
        self.numbers = itertools.count()
        self.waiting: dict[int, asyncio.Future[None]] = {}  # ring messages not yet acknowledged
        self.tasks: set[asyncio.Task[None]] = set()

    def note(self, event: str) -> None:
        self.journal.append([round(self.loop.time(), 6), self.name, event, self.epoch])

    def send(self, peer: str, op: str, **fields: Any) -> None:
        message = {"op": op, "from": self.name, "epoch": self.epoch, **fields}
        self.transport.sendto(json.dumps(message).encode(), self.peers[peer])

    def spawn(self, coro: Any) -> None:
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

    def learn(self, epoch: int) -> None:
        """A higher epoch exists: we are no longer leading or following anyone older."""
        if epoch > self.epoch:
            if self.leading:
                self.note("stepped down")
            self.epoch, self.leader, self.leading = epoch, None, False

    def datagram_received(self, data: bytes, address: Any) -> None:
        m = json.loads(data)
        sender, epoch, op = m["from"], m["epoch"], m["op"]
        if op == "heartbeat":
            if epoch < self.epoch:
                self.send(sender, "newer")  # it leads an old epoch: tell it
                return
            self.learn(epoch)
            self.leader, self.heard = sender, self.loop.time()
        elif op == "claim":  # a candidate asks us to promise its epoch
            if epoch > self.epoch:
                self.learn(epoch)
                self.heard = self.loop.time()  # give it time to win
                self.send(sender, "promise")
            else:
                self.send(sender, "newer")
        elif op == "promise" and epoch == self.epoch and not self.leading:
            self.promises.add(sender)
        elif op == "newer":
            self.learn(epoch)
        elif op == "election":  # bully: a lower node runs an election
            self.send(sender, "answer")
            self.elect()
        elif op == "answer":
            self.answered.set()
        elif op == "ring":
            self.send(sender, "ring-ack", number=m["number"])
            candidate = m["candidate"]
            if candidate == self.name:
                self.spawn(self.claim())  # all the way round: we are the highest
            elif m["hops"] < 2 * len(self.peers):  # (a dead candidate's message dies out)
                self.spawn(self.pass_on(max(candidate, self.name), m["hops"] + 1))
        elif op == "ring-ack":
            acked = self.waiting.pop(m["number"], None)
            if acked is not None and not acked.done():
                acked.set_result(None)

    def elect(self) -> None:
        if not self.leading and (self.election is None or self.election.done()):
            self.election = self.loop.create_task(
                self.bully() if self.algorithm == "bully" else self.pass_on(self.name, 0)
            )

    async def bully(self) -> None:
        self.answered.clear()
        for peer in self.others:
            if peer > self.name:
                self.send(peer, "election")
        try:
            async with asyncio.timeout(WAIT):
                await self.answered.wait()
        except TimeoutError:
            await self.claim()  # nobody higher is alive
            return
        self.heard = self.loop.time()  # a higher node takes over: give it time

    async def pass_on(self, candidate: str, hops: int) -> None:
        """Pass ELECTION(candidate) to our successor, or the next one that acknowledges."""
        ring = sorted(self.peers)
        at = ring.index(self.name)
        for successor in ring[at + 1 :] + ring[:at]:
            number = next(self.numbers)
            acked = self.waiting[number] = self.loop.create_future()
            self.send(successor, "ring", candidate=candidate, hops=hops, number=number)
            try:
                async with asyncio.timeout(WAIT):
                    await acked
                self.heard = self.loop.time()  # an election is under way
                return
            except TimeoutError:
                self.waiting.pop(number, None)

    async def claim(self) -> None:
        """Lead the next epoch if a majority promises it to us."""
        if self.leading:
            return
        self.learn(self.epoch + 1)
        self.promises = {self.name}
        for peer in self.others:
            self.send(peer, "claim")
        claimed = self.epoch
        end = self.loop.time() + WAIT
        while self.loop.time() < end and self.epoch == claimed:
            if 2 * len(self.promises) > len(self.peers):
                self.leader, self.leading = self.name, True
                self.note("leads")
                return
            await asyncio.sleep(WAIT / 10)

    async def run(self, duration: float) -> dict[str, Any]:
        end = self.loop.time() + duration
        while self.loop.time() < end:
            await asyncio.sleep(TICK)
            if self.leading:
                for peer in self.others:
                    self.send(peer, "heartbeat")
            elif self.loop.time() - self.heard > self.silence:
                self.silence = random.uniform(*SILENCE)
                self.heard = self.loop.time()
                self.elect()
        for task in [self.election, *self.tasks]:
            if task is not None:
                task.cancel()
        return {"epoch": self.epoch, "leader": self.leader, "leading": self.leading}


async def node(
    name: str,
    peers: _launch.Peers,
    algorithm: str = "bully",
    duration: float = 20.0,
    journal: list[Any] | None = None,
) -> dict[str, Any]:
    """Elect and follow leaders for `duration` s; our final state."""
    loop = asyncio.get_running_loop()
    journal = [] if journal is None else journal
    transport, elector = await loop.create_datagram_endpoint(
        lambda: Elector(name, peers, algorithm, journal), local_addr=peers[name]
    )
    elector.note("starts")
    try:
        return await elector.run(duration)
    finally:
        transport.close()


def check(journal: list[Any], results: dict[str, Any]) -> dict[str, Any]:
    """Leaders per epoch (at most one each), and who everyone follows at the end."""
    leaders: dict[int, list[str]] = {}
    for _, name, event, epoch in journal:
        if event == "leads":
            leaders.setdefault(epoch, []).append(name)
    up = {n: r for n, r in results.items() if isinstance(r, dict)}
    final = {(r["leader"], r["epoch"]) for r in up.values()}
    (leader, epoch) = next(iter(final)) if len(final) == 1 else (None, None)
    return {
        "leaders": dict(sorted(leaders.items())),
        "split": {e: ls for e, ls in leaders.items() if len(ls) > 1},
        "agreed": leader is not None and up.get(leader, {}).get("leading") is True,
        "leader": leader,
        "epoch": epoch,
    }


def report(journal: list[Any]) -> Any:
    def lines(results: dict[str, Any]) -> list[str]:
        out = []
        origin = min(t for t, _, event, _ in journal if event == "starts")
        for name, result in results.items():
            led = [
                f"{e} at {t - origin:.3f} s"
                for t, n, event, e in journal
                if n == name and event == "leads"
            ]
            end = (
                f"follows {result['leader']} in epoch {result['epoch']}"
                if isinstance(result, dict)
                else f"{type(result).__name__}"
            )
            out.append(f"{name}: led epochs {', '.join(led) or 'none'}; {end}")
        c = check(journal, results)
        epochs = ", ".join(f"{e} {'+'.join(ls)}" for e, ls in c["leaders"].items())
        out.append(f"leaders by epoch: {epochs}")
        out.append(f"at most one leader per epoch: {'no' if c['split'] else 'yes'}")
        out.append(
            f"one leader at the end, followed by all: {c['leader'] if c['agreed'] else 'no'}"
        )
        return out

    return lines


def demo_faults(simulation: Any, peers: _launch.Peers) -> None:
    """The first leader (the highest node) crashes; then a minority is cut off, and heals."""
    simulation.at(4.0, simulation.crash, "n5")
    simulation.at(8.0, simulation.partition, {"n1", "n2"})
    simulation.at(12.0, simulation.heal)


def main() -> None:
    parser = _launch.parser(__doc__)
    parser.add_argument("--ring", action="store_true", help="the ring election, not the bully")
    parser.add_argument("--duration", type=float, default=None, help="seconds each node runs")
    args = parser.parse_args()
    algorithm = "ring" if args.ring else "bully"
    duration = args.duration or (3.0 if args.real else 20.0)
    journal: list[Any] = []
    _launch.main(
        args,
        node,
        NAMES,
        report(journal),
        until=duration + 5,
        faults=demo_faults,
        algorithm=algorithm,
        duration=duration,
        journal=journal,
    )


if __name__ == "__main__":
    main()
