"""Small distributed programs, each with a planted bug and a correct version.

Scenarios for tidal.sim's seed search, used by its tests, the tour and
docs/simulation.md: each takes a fresh Simulation, adds the hosts, runs
them and asserts the property the program must keep.  A flag picks the
correct version (True, the default) or the one with the planted bug.
They are module-level functions, so worker processes can be handed them
(``functools.partial(election, quorum=False)``), and plain asyncio over
UDP: read them as examples of what a scenario looks like.  (They raise
AssertionError themselves rather than use ``assert``: tidal is a pytest
plugin, so pytest rewrites the asserts of its installed modules, and a
rewritten message would name objects by their ids.)

- ``deposits``: a client retries a deposit until acknowledged; without
  `dedup` the bank applies a retried deposit twice (a lost ack).
- ``election``: Raft-style leader election; without `quorum` a candidate
  that hears no one elects itself (split brain under a partition).
- ``lease``: two clients take a lease in turns; without `margin` a client
  holds it for its full length on its own clock (two holders under drift).
- ``wal``: a store makes each write visible when its fsync (on the
  executor) ends; without `ordered` an older write whose fsync ends last
  wins.  Only schedule exploration finds it (the order of two tasks woken
  in one turn).
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

from tidal import sim

PORT = 9000


class Endpoint(asyncio.DatagramProtocol):
    """A UDP socket as a queue of (message, address)."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[tuple[dict[str, Any], Any]] = asyncio.Queue()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.inbox.put_nowait((json.loads(data), addr))

    def send(self, message: dict[str, Any], addr: Any) -> None:
        self.transport.sendto(json.dumps(message).encode(), addr)


async def endpoint(port: int = 0) -> Endpoint:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_datagram_endpoint(Endpoint, local_addr=("0.0.0.0", port))
    return protocol


# -- 1. a deposit service: a lost acknowledgement makes the client retry ----------


async def bank(disk: dict[str, Any], dedup: bool) -> None:
    """Applies deposits; `disk` survives crashes.  Without `dedup`, a retried
    deposit (its acknowledgement was lost) is applied twice."""
    disk.setdefault("balance", 0)
    disk.setdefault("done", {})
    ep = await endpoint(PORT)
    while True:
        msg, addr = await ep.inbox.get()
        if msg["op"] == "deposit":
            if not dedup or msg["id"] not in disk["done"]:
                disk["balance"] += msg["amount"]
                disk["done"][msg["id"]] = True
            ep.send({"id": msg["id"], "ok": True}, addr)
        else:
            ep.send({"id": msg["id"], "balance": disk["balance"]}, addr)


async def call(ep: Endpoint, message: dict[str, Any], to: str = "bank") -> dict[str, Any]:
    """Send until the reply with the same id comes (retrying: at least once)."""
    while True:
        ep.send(message, (to, PORT))
        try:
            async with asyncio.timeout(0.3):
                while True:
                    reply, _ = await ep.inbox.get()
                    if reply["id"] == message["id"]:
                        return reply
        except TimeoutError:
            pass


async def depositor(deposits: int) -> int:
    ep = await endpoint()
    for i in range(deposits):
        await call(ep, {"op": "deposit", "id": f"d{i}", "amount": 1})
        await asyncio.sleep(0.4)
    reply = await call(ep, {"op": "balance", "id": "balance"})
    return int(reply["balance"])


def deposits(s: sim.Simulation, dedup: bool = True) -> None:
    """Eight deposits of 1, each retried until acknowledged: the balance must be 8."""
    disk: dict[str, Any] = {}
    s.host("bank", bank, disk, dedup)
    s.host("client", depositor, 8)
    res = s.run(until=20)
    if res.results["client"] != 8:
        raise AssertionError(f"balance {res.results['client']!r} after 8 deposits of 1")


# -- 2. leader election: split brain ------------------------------------------------

NODES = ("a", "b", "c")


async def node(me: str, disk: dict[str, Any], claims: list[tuple[int, str]], quorum: bool) -> None:
    """Raft-style election over UDP.  Without `quorum`, a candidate that
    hears no one declares itself leader ("the others must be down")."""
    disk.setdefault("term", 0)
    disk.setdefault("voted", None)
    peers = [n for n in NODES if n != me]
    ep = await endpoint(PORT)
    loop = asyncio.get_running_loop()
    role = "follower"
    votes: set[str] = set()
    answered: set[str] = set()
    heard = loop.time()
    timeout = random.uniform(0.5, 1.0)

    def become_leader() -> None:
        nonlocal role
        role = "leader"
        claims.append((disk["term"], me))

    async def receive() -> None:
        nonlocal role, heard
        while True:
            msg, addr = await ep.inbox.get()
            if msg["term"] > disk["term"]:
                disk["term"], disk["voted"], role = msg["term"], None, "follower"
            kind = msg["kind"]
            if kind == "heartbeat" and msg["term"] == disk["term"]:
                role, heard = "follower", loop.time()
            elif kind == "vote?":
                grant = msg["term"] == disk["term"] and disk["voted"] in (None, msg["from"])
                if grant:
                    disk["voted"], heard = msg["from"], loop.time()
                ep.send(
                    {"kind": "vote", "term": disk["term"], "grant": grant, "from": me},
                    (msg["from"], PORT),
                )
            elif kind == "vote" and role == "candidate" and msg["term"] == disk["term"]:
                answered.add(msg["from"])
                if msg["grant"]:
                    votes.add(msg["from"])
                if len(votes) * 2 > len(NODES):
                    become_leader()

    receiver = asyncio.create_task(receive())
    try:
        while True:
            if role == "leader":
                for p in peers:
                    ep.send({"kind": "heartbeat", "term": disk["term"], "from": me}, (p, PORT))
                await asyncio.sleep(0.1)
            elif loop.time() - heard > timeout:
                role = "candidate"
                disk["term"] += 1
                disk["voted"] = me
                votes = {me}
                answered.clear()
                for p in peers:
                    ep.send({"kind": "vote?", "term": disk["term"], "from": me}, (p, PORT))
                term = disk["term"]
                await asyncio.sleep(0.3)
                if role == "candidate" and disk["term"] == term:
                    if not quorum and not answered:
                        become_leader()  # the planted bug: no one answered, so "they are down"
                    else:
                        heard = loop.time()
                        timeout = random.uniform(0.5, 1.0)
            else:
                await asyncio.sleep(max(heard + timeout - loop.time(), 0.0) + 0.001)
    finally:
        receiver.cancel()


def election(s: sim.Simulation, quorum: bool = True) -> None:
    """Three nodes elect leaders: never two leaders in one term."""
    claims: list[tuple[int, str]] = []
    for n in NODES:
        s.host(n, node, n, {}, claims, quorum)
    s.run(until=10)
    leaders: dict[int, set[str]] = {}
    for term, who in claims:
        leaders.setdefault(term, set()).add(who)
    split = {t: sorted(w) for t, w in leaders.items() if len(w) > 1}
    if split:
        raise AssertionError(f"two leaders in one term: {split}")


# -- 3. a lease: two holders at once under clock drift ----------------------------

LEASE = 1.0
MAX_DRIFT = 0.01


async def lock_server(wait_on_boot: bool) -> None:
    """Grants the lease to one client at a time, for LEASE s of its own
    clock; a denied client is queued and granted the lease when it expires.
    It forgets grants when it crashes: on boot it waits out any lease it
    may have given (`wait_on_boot`)."""
    ep = await endpoint(PORT)
    loop = asyncio.get_running_loop()
    holder, expires = None, loop.time() + (LEASE if wait_on_boot else 0.0)  # nobody until then
    waiting: list[tuple[dict[str, Any], Any]] = []

    def grant(msg: dict[str, Any], addr: Any) -> None:
        nonlocal holder, expires
        holder, expires = msg["from"], loop.time() + LEASE
        ep.send({"id": msg["id"], "granted": True}, addr)
        loop.call_at(expires, next_in_line)

    def next_in_line() -> None:
        if waiting and loop.time() >= expires:
            grant(*waiting.pop(0))

    while True:
        msg, addr = await ep.inbox.get()
        if loop.time() >= expires or holder == msg["from"]:
            grant(msg, addr)
        else:
            waiting[:] = [w for w in waiting if w[0]["from"] != msg["from"]]
            waiting.append((msg, addr))
            ep.send({"id": msg["id"], "granted": False}, addr)
            loop.call_at(expires, next_in_line)


class Resource:
    """What the lease protects: records who is inside, and any overlap."""

    def __init__(self) -> None:
        self.inside: set[str] = set()
        self.overlaps: list[str] = []

    def enter(self, who: str, now: float) -> None:
        if self.inside:
            self.overlaps.append(
                f"{who} entered at {now:.6f} s while {sorted(self.inside)} held the lease"
            )
        self.inside.add(who)

    def exit(self, who: str) -> None:
        self.inside.discard(who)


async def lease_client(me: str, resource: Resource, now: Any, margin: bool) -> None:
    """Takes the lease over and over.  Holds it until LEASE after it asked,
    on its own clock; with `margin`, shortened for the drift clocks may have."""
    ep = await endpoint()
    loop = asyncio.get_running_loop()

    async def reply_to(n: int, within: float, grant: bool = False) -> dict[str, Any]:
        async with asyncio.timeout(within):
            while True:
                reply, _ = await ep.inbox.get()
                # (A duplicated "no" must not pass for the grant that follows it.)
                if reply["id"] == n and (reply["granted"] or not grant):
                    return reply

    for n in range(1000):
        asked = loop.time()
        ep.send({"id": n, "from": me}, ("lock", PORT))
        try:
            reply = await reply_to(n, 0.2)
            if not reply["granted"]:  # queued: the grant comes when the lease is free
                reply = await reply_to(n, 2 * LEASE, grant=True)
        except TimeoutError:
            continue
        hold = LEASE * (1 - MAX_DRIFT) / (1 + MAX_DRIFT) if margin else LEASE
        resource.enter(me, now())
        try:
            await asyncio.sleep(asked + hold - loop.time())
        finally:
            resource.exit(me)
        await asyncio.sleep(random.uniform(0, 0.1))


def lease(s: sim.Simulation, margin: bool = True, wait_on_boot: bool = True) -> None:
    """Two clients take a lease in turns: never both inside at once.
    (`margin`: the clients allow for drift; `wait_on_boot`: the lock server
    waits out the leases it forgot in a crash.)"""
    resource = Resource()
    s.host("lock", lock_server, wait_on_boot)
    for c in ("c1", "c2"):
        s.host(c, lease_client, c, resource, lambda: s.now, margin)
    s.run(until=10)
    if resource.overlaps:
        raise AssertionError(resource.overlaps[0])


# Clocks drift within MAX_DRIFT (the correct lease's assumption) and never step.
LEASE_SWARM = sim.Swarm(kinds={"partition", "crash", "loss", "link", "drift"}, max_drift=MAX_DRIFT)


# -- 4. a write-ahead log: writes made visible in the order their fsyncs end ------


def _fsync(log: list[tuple[int, str, int]]) -> int:
    """Make the log durable (a real store calls os.fsync on a thread)."""
    return len(log)


def recover(log: list[tuple[int, str, int]]) -> dict[str, int]:
    """The state a restart rebuilds from the log: for each key, the value of
    the write with the highest sequence number."""
    state: dict[str, tuple[int, int]] = {}
    for seq, key, value in log:
        if seq > state.get(key, (-1, 0))[0]:
            state[key] = (seq, value)
    return {key: value for key, (_, value) in state.items()}


async def store(log: list[tuple[int, str, int]], ordered: bool) -> None:
    """A key-value store: each write of a batch is appended to the log in
    order, made durable by an fsync on the executor, then made visible.  Two
    fsyncs end in either order on a real thread pool (a later one can cover
    both writes); without `ordered`, the write whose fsync ends last wins,
    even when it is the older one."""
    loop = asyncio.get_running_loop()
    memory: dict[str, int] = {}
    version: dict[str, int] = {}
    ep = await endpoint(PORT)

    async def write(seq: int, key: str, value: int) -> None:
        log.append((seq, key, value))
        await loop.run_in_executor(None, _fsync, log)
        if not ordered or seq > version.get(key, -1):  # ordered: a newer write stays
            memory[key], version[key] = value, seq

    while True:
        msg, addr = await ep.inbox.get()
        if msg["op"] == "batch":
            await asyncio.gather(*(write(*w) for w in msg["writes"]))
            ep.send({"id": msg["id"], "ok": True}, addr)
        else:
            ep.send({"id": msg["id"], "value": memory.get(msg["key"])}, addr)


async def writer() -> dict[str, int]:
    ep = await endpoint()
    writes = [[0, "x", 1], [1, "x", 2], [2, "y", 1], [3, "y", 2]]
    await call(ep, {"op": "batch", "id": "b", "writes": writes}, "db")
    return {
        key: (await call(ep, {"op": "get", "id": f"get {key}", "key": key}, "db"))["value"]
        for key in ("x", "y")
    }


def wal(s: sim.Simulation, ordered: bool = True) -> None:
    """One batch of writes, then reads: a read must give what recovering
    from the log gives.  The planted bug shows only when two tasks woken in
    the same turn (their fsyncs done) run in the other order than they
    started: found with schedule exploration (explore=True), never without."""
    log: list[tuple[int, str, int]] = []
    s.host("db", store, log, ordered)
    s.host("client", writer)
    res = s.run(until=5)
    read, recovered = res.results["client"], recover(log)
    if read != recovered:
        raise AssertionError(f"read {read!r}, but the log recovers {recovered!r}")
