"""Logical clocks: Lamport clocks and vector clocks, on nodes exchanging messages.

Each node does a few steps at random (a local event, or a message sent to a
random peer over TCP) and handles every message it receives, keeping both
clocks with the textbook rules:

- Lamport (1978): tick before every event; a message carries the sender's
  clock; on receipt, clock = max(clock, received) + 1.
- Vector (Fidge, Mattern 1988): tick your own entry before every event; a
  message carries the sender's vector; on receipt, merge (entrywise max),
  then tick your own entry.

Each node returns its event log.  ``check`` rebuilds the happened-before
relation from the logs alone (program order, plus send -> receive of each
message, closed transitively) and compares: vector timestamps order two
events exactly when one happened before the other; Lamport timestamps
respect it (a -> b implies L(a) < L(b)) but also order concurrent events.

    python clocks.py --real            # 4 nodes on 127.0.0.1
    python clocks.py --sim --seed 3    # the same nodes in tidal.sim
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import _launch

NAMES = ["n1", "n2", "n3", "n4"]


async def node(name: str, peers: _launch.Peers, steps: int = 6) -> list[dict[str, Any]]:
    """Run `steps` events of our own, receive every message sent to us; our log."""
    lamport = 0
    vector = dict.fromkeys(sorted(peers), 0)
    log: list[dict[str, Any]] = []
    others = sorted(set(peers) - {name})
    finished: list[asyncio.StreamWriter] = []  # peers that have sent all they will
    everyone_finished = asyncio.Event()

    def event(kind: str, **about: Any) -> dict[str, Any]:
        entry = {"kind": kind, "lamport": lamport, "vector": list(vector.values()), **about}
        log.append(entry)
        return entry

    def tick() -> None:
        nonlocal lamport
        lamport += 1  # Lamport: tick before every event
        vector[name] += 1  # vector: tick our own entry

    def receive(message: dict[str, Any]) -> None:
        nonlocal lamport
        lamport = max(lamport, message["lamport"]) + 1
        for peer, count in zip(vector, message["vector"]):
            vector[peer] = max(vector[peer], count)  # merge ...
        vector[name] += 1  # ... then tick
        event("receive", sender=message["sender"], sent=message["event"])

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async for line in reader:
            receive(json.loads(line))
        writer.close()  # the peer closed: TCP delivered all it sent before
        finished.append(writer)
        if len(finished) == len(others):
            everyone_finished.set()

    server = await asyncio.start_server(serve, *peers[name])
    async with server:
        links = {peer: await _launch.connect(peers[peer]) for peer in others}
        for _ in range(steps):
            await asyncio.sleep(random.uniform(0.001, 0.05))
            tick()
            if random.random() < 0.3:
                event("local")
                continue
            peer = random.choice(others)
            sent = event("send", to=peer)
            message = {"sender": name, "event": len(log) - 1, **sent}
            links[peer].write(json.dumps(message).encode() + b"\n")
        for link in links.values():
            link.close()
        await everyone_finished.wait()
    return log


def check(logs: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    """Compare both clocks with happened-before, rebuilt from the logs alone.

    Counts: ordered pairs (a -> b), concurrent pairs, pairs where the
    vector order disagrees with happened-before, pairs a -> b where
    Lamport does not have L(a) < L(b) (the last two must be 0)."""
    events = [(n, i) for n in sorted(logs) for i in range(len(logs[n]))]
    before: dict[tuple[str, int], set[tuple[str, int]]] = {}  # event -> all that happened before it

    def history(e: tuple[str, int]) -> set[tuple[str, int]]:
        stack = [e]
        while stack:
            top = stack[-1]
            causes = [(top[0], top[1] - 1)] if top[1] else []
            entry = logs[top[0]][top[1]]
            if entry["kind"] == "receive":
                causes.append((entry["sender"], entry["sent"]))
            todo = [c for c in causes if c not in before]
            if todo:
                stack.extend(todo)
                continue
            stack.pop()
            before[top] = set().union(*(before[c] | {c} for c in causes))
        return before[e]

    def vector_less(a: list[int], b: list[int]) -> bool:
        return a != b and all(x <= y for x, y in zip(a, b))

    counts = {"ordered": 0, "concurrent": 0, "vector_wrong": 0, "lamport_wrong": 0}
    for a in events:
        for b in events:
            if a >= b:
                continue
            ea, eb = logs[a[0]][a[1]], logs[b[0]][b[1]]
            a_b, b_a = a in history(b), b in history(a)
            counts["ordered" if a_b or b_a else "concurrent"] += 1
            if vector_less(ea["vector"], eb["vector"]) != a_b or (
                vector_less(eb["vector"], ea["vector"]) != b_a
            ):
                counts["vector_wrong"] += 1
            if (a_b and ea["lamport"] >= eb["lamport"]) or (b_a and eb["lamport"] >= ea["lamport"]):
                counts["lamport_wrong"] += 1
    return counts


def report(results: dict[str, Any]) -> list[str]:
    lines = []
    for name, log in results.items():
        if isinstance(log, BaseException):
            lines.append(f"{name}: failed: {log!r}")
        else:
            last = log[-1]
            lines.append(
                f"{name}: {len(log)} events, Lamport clock {last['lamport']}, "
                f"vector clock {last['vector']}"
            )
    if len(lines) == sum(isinstance(r, list) for r in results.values()):
        c = check(results)
        lines.append(f"happened-before: {c['ordered']} ordered pairs, {c['concurrent']} concurrent")
        lines.append(
            f"vector clocks order exactly those pairs: {'no' if c['vector_wrong'] else 'yes'}"
        )
        lines.append(
            f"Lamport clocks respect happened-before: {'no' if c['lamport_wrong'] else 'yes'}"
        )
    return lines


if __name__ == "__main__":
    args = _launch.parser(__doc__).parse_args()
    _launch.main(args, node, NAMES, report, until=60.0)
