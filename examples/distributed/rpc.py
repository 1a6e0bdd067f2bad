"""Reliable RPC with at-most-once execution over lossy UDP.

A server keeps counters; clients call ``add(key, amount)``, which is not
idempotent (run twice, it adds twice).  UDP loses, duplicates and reorders
datagrams, so the two halves of at-most-once RPC (Birrell and Nelson, 1984)
are needed:

  client  every call gets a request id (client, seq); the request is sent
          again after a timeout that doubles each time (retransmission with
          exponential backoff) until its reply comes;
  server  a reply cache: the first copy of (client, seq) is executed and its
          reply kept; every later copy gets the cached reply, unexecuted
          (duplicate suppression).  Each request also carries the client's
          lowest unanswered seq, below which the client needs no reply: the
          server forgets those replies (and ignores their late copies).

The counters and the reply cache live on the server's "disk" (a store that
survives a crash), updated together, so a restarted server still executes
each request at most once.

Checked over seeds with loss, duplication, reordering, partitions, clock
faults and server crashes: no request executes twice; every request is answered once the
network heals; each answer is the value its one execution computed.
--buggy leaves the reply cache out: a retransmitted request runs again.
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import _launch

Addr = tuple[str, int]
Journal = list[tuple[Any, ...]]

FIRST_TIMEOUT = 0.05  # the first retransmission timeout (s); it doubles up to MAX_TIMEOUT
MAX_TIMEOUT = 1.0
IN_FLIGHT = 4  # a client's calls outstanding at once


class Server(asyncio.DatagramProtocol):
    """Execute each (client, seq) once; answer every copy."""

    def __init__(self, disk: dict[str, Any], journal: Journal, buggy: bool) -> None:
        self.counters: dict[str, int] = disk.setdefault("counters", {})
        self.replies: dict[str, dict[int, int]] = disk.setdefault("replies", {})  # the cache
        self.floor: dict[str, int] = disk.setdefault("floor", {})  # client -> forgotten below
        self.journal, self.buggy = journal, buggy
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        m = json.loads(data)
        client, seq = m["client"], m["seq"]
        if seq < self.floor.get(client, 0):
            return  # a late copy of a request whose reply the client has
        cache = self.replies.setdefault(client, {})
        if m["answered_below"] > self.floor.get(client, 0):
            self.floor[client] = m["answered_below"]
            for old in [s for s in cache if s < m["answered_below"]]:
                del cache[old]
        if seq in cache and not self.buggy:
            value = cache[seq]  # a duplicate: the cached reply, not run again
        else:
            value = self.execute(m["key"], m["amount"])
            cache[seq] = value
            self.journal.append(("executed", client, seq, value))
        assert self.transport is not None
        self.transport.sendto(json.dumps({"seq": seq, "value": value}).encode(), addr)

    def execute(self, key: str, amount: int) -> int:
        self.counters[key] = self.counters.get(key, 0) + amount
        return self.counters[key]


class Client(asyncio.DatagramProtocol):
    """Calls with request ids; a retransmission timer per call."""

    def __init__(self, me: str, server: Addr) -> None:
        self.me, self.server = me, server
        self.next_seq = 0
        self.waiting: dict[int, asyncio.Future[int]] = {}
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        m = json.loads(data)
        future = self.waiting.get(m["seq"])
        if future is not None and not future.done():
            future.set_result(m["value"])  # (a duplicate reply finds it done)

    async def call(self, key: str, amount: int) -> tuple[int, int]:
        """add(key, amount) on the server, at most once: (seq, the new value)."""
        seq, self.next_seq = self.next_seq, self.next_seq + 1
        future = self.waiting[seq] = asyncio.get_running_loop().create_future()
        timeout = FIRST_TIMEOUT
        try:
            while True:
                request = {
                    "client": self.me,
                    "seq": seq,
                    "key": key,
                    "amount": amount,
                    "answered_below": min(self.waiting),
                }
                assert self.transport is not None
                self.transport.sendto(json.dumps(request).encode(), self.server)
                try:
                    return seq, await asyncio.wait_for(asyncio.shield(future), timeout)
                except TimeoutError:
                    timeout = min(2 * timeout, MAX_TIMEOUT)  # retransmit, backing off
        finally:
            del self.waiting[seq]


async def node(
    me: str,
    peers: dict[str, Addr],
    *,
    disks: dict[str, dict[str, Any]],
    journal: Journal,
    calls: int,
    buggy: bool = False,
) -> Any:
    """The server serves until stopped; a client makes `calls` calls,
    IN_FLIGHT at a time, and returns [(seq, value)]."""
    loop = asyncio.get_running_loop()
    if me == "server":
        server = Server(disks.setdefault(me, {}), journal, buggy)
        transport, _ = await loop.create_datagram_endpoint(lambda: server, local_addr=peers[me])
        try:
            await asyncio.Future()  # serve until the process ends
        finally:
            transport.close()
    client = Client(me, peers["server"])
    transport, _ = await loop.create_datagram_endpoint(lambda: client, local_addr=peers[me])
    limit = asyncio.Semaphore(IN_FLIGHT)
    answers: list[tuple[int, int]] = []

    async def one(key: str, amount: int) -> None:
        async with limit:
            answers.append(await client.call(key, amount))

    try:
        async with asyncio.TaskGroup() as tg:
            for i in range(calls):
                tg.create_task(one(random.choice("abc"), i + 1))
    finally:
        transport.close()
    return sorted(answers)


# -- checking ------------------------------------------------------------------


def check(results: dict[str, Any], journal: Journal, calls: int) -> list[str]:
    """At most once, every call answered, with the value of its execution."""
    problems = []
    executed: dict[tuple[str, int], int] = {}
    for _, client, seq, value in journal:
        if (client, seq) in executed:
            problems.append(f"{client} request {seq} executed twice")
        executed.setdefault((client, seq), value)
    for name, answers in results.items():
        if name == "server":
            continue
        if not isinstance(answers, list) or len(answers) != calls:
            problems.append(f"{name} ended with {answers!r}")
            continue
        for seq, value in answers:
            if executed.get((name, seq)) != value:
                problems.append(
                    f"{name} request {seq} answered {value}, "
                    f"executed as {executed.get((name, seq))}"
                )
    return problems[:3]


# -- running: for real, or inside the simulation -------------------------------

CLIENTS = ["c1", "c2", "c3"]
CALLS = 20


def swarm() -> Any:
    """The faults of a --sim run: tidal.sim's swarm plan drawn from the seed
    (loss, duplication, reordering, partitions, clock faults, server crashes;
    a client's crash would lose its own calls), then a calm phase."""
    from tidal.sim import Swarm

    return Swarm(crash=["server"])


def main() -> None:
    p = _launch.parser(__doc__)
    p.add_argument("--buggy", action="store_true", help="no reply cache: retries run again")
    args = p.parse_args()
    journal: Journal = []

    def lines(results: dict[str, Any]) -> list[str]:
        answered = sum(len(r) for n, r in results.items() if isinstance(r, list))
        problems = check(results, journal, CALLS)
        return [
            f"rpc: {len(CLIENTS)} clients x {CALLS} add() calls, {IN_FLIGHT} in flight",
            f"{answered} calls answered, {len(journal)} executions",
            "check: "
            + (
                "; ".join(problems)
                if problems
                else "every call answered, each executed once, with its own value"
            ),
        ]

    # (The server serves until the run's end; a real run ends at 1 s.)
    _launch.main(
        args,
        node,
        ["server", *CLIENTS],
        lines,
        until=1.0 if args.real else 8.0,
        swarm=swarm(),
        disks={},
        journal=journal,
        calls=CALLS,
        buggy=args.buggy,
    )


if __name__ == "__main__":
    main()
