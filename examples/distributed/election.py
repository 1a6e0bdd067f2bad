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
    def __init__(
        self,
        name: str,
        peers: _launch.Peers,
        algorithm: str,
        journal: list[Any],
        disk: dict[str, Any],
    ):
        self.name, self.peers, self.algorithm = name, peers, algorithm
        self.journal, self.disk = journal, disk
        self.loop = asyncio.get_running_loop()
        self.others = [peer for peer in sorted(peers) if peer != name]
        # The highest epoch we have promised (or led): on the disk, since a
        # node that forgot its promise could promise the same epoch twice.
        self.epoch = disk.get("epoch", 0)
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

    def become(self, epoch: int, leader: str | None, leading: bool) -> None:
        """Our state changes: stored (the epoch) before any reply, and journaled."""
        self.disk["epoch"] = epoch
        if (epoch, leader, leading) != (self.epoch, self.leader, self.leading):
            self.epoch, self.leader, self.leading = epoch, leader, leading
            self.note()

    def note(self) -> None:
        entry = [round(self.loop.time(), 6), self.name, self.epoch, self.leader, self.leading]
        self.journal.append(entry)

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
            self.become(epoch, None, False)

    def datagram_received(self, data: bytes, address: Any) -> None:
        m = json.loads(data)
        sender, epoch, op = m["from"], m["epoch"], m["op"]
        if op == "heartbeat":
            if epoch < self.epoch:
                self.send(sender, "newer")  # it leads an old epoch: tell it
                return
            self.learn(epoch)
            self.become(epoch, sender, False)
            self.heard = self.loop.time()
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
                self.become(claimed, self.name, True)
                return
            await asyncio.sleep(WAIT / 10)

    async def run(self, duration: float | None) -> dict[str, Any]:
        end = None if duration is None else self.loop.time() + duration
        while end is None or self.loop.time() < end:
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
    duration: float | None = 20.0,
    journal: list[Any] | None = None,
    disks: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Elect and follow leaders for `duration` s (None: for ever); our final
    state.  `disks[name]` is what survives our crash (the promised epoch);
    `journal` receives every change of our state, as our log would."""
    loop = asyncio.get_running_loop()
    journal = [] if journal is None else journal
    disk = {} if disks is None else disks.setdefault(name, {})
    transport, elector = await loop.create_datagram_endpoint(
        lambda: Elector(name, peers, algorithm, journal, disk), local_addr=peers[name]
    )
    elector.note()  # (booted)
    try:
        return await elector.run(duration)
    finally:
        transport.close()


def check(journal: list[Any], up: list[str]) -> dict[str, Any]:
    """Leaders per epoch (at most one each), and whether the nodes `up` at
    the end all follow one leader, which leads."""
    leaders: dict[int, list[str]] = {}
    last: dict[str, tuple[int, str | None, bool]] = {}
    for _, name, epoch, leader, leading in journal:
        if leading and name not in leaders.setdefault(epoch, [name]):
            leaders[epoch].append(name)
        last[name] = (epoch, leader, leading)
    finals = {last[name][:2] for name in up}
    epoch, leader = next(iter(finals)) if len(finals) == 1 else (None, None)
    return {
        "leaders": dict(sorted(leaders.items())),
        "split": {e: names for e, names in leaders.items() if len(names) > 1},
        "agreed": leader in up and last[leader] == (epoch, leader, True),
        "leader": leader,
        "epoch": epoch,
    }


def report(journal: list[Any]) -> Any:
    def lines(results: dict[str, Any]) -> list[str]:
        out = []
        origin = min(t for t, *_ in journal)  # the first boot
        # Up at the end: not crashed (still running when the simulation stopped is up).
        up = [name for name, result in results.items() if type(result).__name__ != "HostCrashed"]
        c = check(journal, up)
        for name in results:
            led = [
                f"{e} at {t - origin:.3f} s"
                for t, n, e, _, leading in journal
                if n == name and leading
            ]
            _, _, epoch, leader, _ = [entry for entry in journal if entry[1] == name][-1]
            end = f"follows {leader} in epoch {epoch}" if name in up else repr(results[name])
            out.append(f"{name}: led epochs {', '.join(led) or 'none'}; {end}")
        epochs = ", ".join(f"{e} {'+'.join(names)}" for e, names in c["leaders"].items())
        out.append(f"leaders by epoch: {epochs}")
        out.append(f"at most one leader per epoch: {'no' if c['split'] else 'yes'}")
        out.append(
            f"one leader at the end, followed by all: {c['leader'] if c['agreed'] else 'no'}"
        )
        return out

    return lines


def demo_faults(simulation: Any, peers: _launch.Peers) -> None:
    """The first leader (the highest node) crashes; a minority is cut off, and
    heals; the old leader restarts, remembering only the epoch it promised."""
    simulation.at(4.0, simulation.crash, "n5")
    simulation.at(8.0, simulation.partition, {"n1", "n2"})
    simulation.at(12.0, simulation.heal)
    simulation.at(14.0, simulation.restart, "n5")


def main() -> None:
    parser = _launch.parser(__doc__)
    parser.add_argument("--ring", action="store_true", help="the ring election, not the bully")
    parser.add_argument("--duration", type=float, default=None, help="seconds each node runs")
    args = parser.parse_args()
    algorithm = "ring" if args.ring else "bully"
    # Real: each node runs `duration` s.  Simulated: they run until 30 s.
    duration = args.duration or 3.0 if args.real else None
    journal: list[Any] = []
    _launch.main(
        args,
        node,
        NAMES,
        report(journal),
        until=30.0 if duration is None else duration + 5,
        faults=demo_faults,
        algorithm=algorithm,
        duration=duration,
        journal=journal,
        disks={},
    )


if __name__ == "__main__":
    main()
