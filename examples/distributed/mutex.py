"""Distributed mutual exclusion: Ricart and Agrawala (1981), over TCP.

A node that wants the critical section sends a timestamped request to every
other node and enters once all of them have replied.  A node receiving a
request replies at once, unless it holds the section, or wants it and its
own request is older (a smaller (Lamport timestamp, name) pair): then it
defers the reply until it leaves the section.  Two requests are never both
granted by each other, so at most one node is inside; every request is
eventually granted, in timestamp order, as long as every message arrives
(TCP delivers them in order, even across a partition that heals).

Each node enters the section a few times, holding it for a while, and
returns when it and every other node are done; ``check`` verifies the
intervals the nodes spent inside never overlap, and every request was
granted.

    python mutex.py --real            # 4 nodes on 127.0.0.1
    python mutex.py --sim --seed 3    # the same nodes in tidal.sim
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import _launch

NAMES = ["n1", "n2", "n3", "n4"]
RELEASED, WANTED, HELD = "released", "wanted", "held"


async def node(name: str, peers: _launch.Peers, entries: int = 3) -> list[list[float]]:
    """Enter the critical section `entries` times; [[asked, entered, left], ...]."""
    loop = asyncio.get_running_loop()
    others = sorted(set(peers) - {name})
    clock = 0  # a Lamport clock: requests are ordered by (clock, name)
    state = RELEASED
    request: tuple[int, str] = (0, name)
    replied: set[str] = set()
    deferred: list[str] = []
    all_replied = asyncio.Event()
    finished: set[str] = set()
    everyone_finished = asyncio.Event()
    closed: list[asyncio.StreamWriter] = []  # peers' connections to us that have ended
    all_closed = asyncio.Event()
    links: dict[str, asyncio.StreamWriter] = {}
    connected = asyncio.Event()

    def send(peer: str, **message: Any) -> None:
        links[peer].write(json.dumps({"from": name, **message}).encode() + b"\n")

    def on_request(sender: str, timestamp: int) -> None:
        nonlocal clock
        clock = max(clock, timestamp) + 1
        if state == HELD or (state == WANTED and request < (timestamp, sender)):
            deferred.append(sender)  # ours comes first: reply when we leave
        else:
            send(sender, op="reply")

    def on_reply(sender: str) -> None:
        replied.add(sender)
        if len(replied) == len(others):
            all_replied.set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await connected.wait()  # a request's reply needs our link to its sender
        async for line in reader:
            message = json.loads(line)
            if message["op"] == "request":
                on_request(message["from"], message["clock"])
            elif message["op"] == "reply":
                on_reply(message["from"])
            else:  # "finished": it will ask no more
                finished.add(message["from"])
                if len(finished) == len(others):
                    everyone_finished.set()
        writer.close()
        closed.append(writer)
        if len(closed) == len(others):
            all_closed.set()

    async def enter() -> None:
        nonlocal clock, state, request
        state = WANTED
        clock += 1
        request = (clock, name)
        replied.clear()
        all_replied.clear()
        for peer in others:
            send(peer, op="request", clock=clock)
        await all_replied.wait()
        state = HELD

    def leave() -> None:
        nonlocal state
        state = RELEASED
        for peer in deferred:
            send(peer, op="reply")
        deferred.clear()

    visits = []
    server = await asyncio.start_server(serve, *peers[name])
    async with server:
        for peer in others:
            links[peer] = await _launch.connect(peers[peer])
        connected.set()
        for _ in range(entries):
            await asyncio.sleep(random.uniform(0, 0.05))  # think
            asked = loop.time()
            await enter()
            entered = loop.time()
            await asyncio.sleep(random.uniform(0.001, 0.02))  # the critical section
            visits.append([asked, entered, loop.time()])
            leave()
        for peer in others:
            send(peer, op="finished")
        await everyone_finished.wait()  # until then, others may still ask us
        for link in links.values():
            link.close()
        await all_closed.wait()
    return visits


def check(results: dict[str, Any], entries: int = 3) -> dict[str, Any]:
    """Whether two nodes were ever inside at once, and whether every request
    was granted; the waits."""
    visits = sorted(
        (entered, left, name)
        for name, result in results.items()
        if isinstance(result, list)
        for _, entered, left in result
    )
    overlaps = [(a, b) for a, b in zip(visits, visits[1:]) if b[0] < a[1]]
    waits = [
        entered - asked
        for result in results.values()
        if isinstance(result, list)
        for asked, entered, _ in result
    ]
    return {
        "overlaps": overlaps,
        "granted": len(visits),
        "asked": entries * len(results),
        "max_wait": max(waits, default=0.0),
    }


def report(results: dict[str, Any]) -> list[str]:
    lines = []
    for name, result in results.items():
        if isinstance(result, BaseException):
            lines.append(f"{name}: failed: {result!r}")
            continue
        waits = [entered - asked for asked, entered, _ in result]
        lines.append(
            f"{name}: entered {len(result)} times, waiting {1000 * sum(waits) / len(waits):.1f} ms"
            f" on average (at most {1000 * max(waits):.1f} ms)"
        )
    c = check(results)
    lines.append(f"never two nodes inside at once: {'no' if c['overlaps'] else 'yes'}")
    lines.append(f"requests granted: {c['granted']} of {c['asked']}")
    return lines


if __name__ == "__main__":
    args = _launch.parser(__doc__).parse_args()
    _launch.main(args, node, NAMES, report, until=300.0)
