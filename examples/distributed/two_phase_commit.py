"""Two-phase commit, with a coordinator that crashes.

A coordinator runs transactions over three participants (Gray, 1978;
Bernstein, Hadzilacos and Goodman, ch. 7).  Every message is one JSON line
over a fresh TCP connection (asyncio streams); a message that gets no answer
is sent again later.

  phase 1 (voting)    the coordinator writes "begin" to its log and sends
                      PREPARE; a participant votes YES only after writing
                      "prepared" to its log (it can no longer abort on its
                      own), or votes NO and aborts;
  phase 2 (decision)  all YES: the coordinator writes COMMIT to its log (the
                      commit point), else ABORT (a missing vote by the
                      deadline counts as NO); then it sends the decision to
                      every participant until each acknowledges.

Recovery: a restarted coordinator reads its log; a transaction begun and
not decided is aborted (presumed abort), a decided one is sent again.  A
prepared participant is *uncertain*: it may not decide alone, so it keeps
asking the coordinator (the termination protocol), blocked while the
coordinator is down: the price of 2PC, shown in the output.

Checked over seeds with coordinator crashes, participant crashes, partitions
and restarts: atomicity (every participant that decides, decides as the
coordinator did; all of them decide once the faults heal) and validity
(commit only if every participant voted YES).  --buggy plants the classic
mistake: an uncertain participant that waits too long aborts on a timeout.
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import _launch

Addr = tuple[str, int]
Journal = list[tuple[Any, ...]]

PARTICIPANTS = ["p1", "p2", "p3"]
TRANSACTIONS = 6
VOTE_DEADLINE = 1.0  # phase 1: votes not in by then count as NO (s)
RETRY = 0.2  # how often an unanswered message is sent again (s)
UNCERTAIN_TIMEOUT = 1.0  # --buggy: an uncertain participant gives up after this (s)


async def send(peers: dict[str, Addr], to: str, message: dict[str, Any]) -> dict[str, Any] | None:
    """One request, one reply, over a new connection; None if it fails."""
    try:
        async with asyncio.timeout(RETRY):
            reader, writer = await asyncio.open_connection(*peers[to])
            try:
                writer.write(json.dumps(message).encode() + b"\n")
                line = await reader.readline()
            finally:
                writer.close()
        return json.loads(line) if line else None
    except (OSError, TimeoutError):
        return None


async def listen(peers: dict[str, Addr], me: str, handle: Any) -> asyncio.Server:
    """Answer each connection's one JSON line with ``handle(message)``."""

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            if line:
                writer.write(json.dumps(handle(json.loads(line))).encode() + b"\n")
                await writer.drain()
        except OSError:
            pass
        except asyncio.CancelledError:
            pass  # our process is dying (Python 3.11's streams would log the cancellation)
        finally:
            writer.close()

    return await asyncio.start_server(on_connection, *peers[me])


# -- the coordinator -------------------------------------------------------------


async def coordinator(peers: dict[str, Addr], log: dict[str, str], journal: Journal) -> list[str]:
    """Run TRANSACTIONS transactions (recovering those a crash interrupted)."""
    loop = asyncio.get_running_loop()

    def on_status(m: dict[str, Any]) -> dict[str, Any]:  # the termination protocol's question
        return {"decision": log.get(m["tx"], "none")}

    async def decide(tx: str, decision: str) -> None:
        if log.get(tx) == "begin":
            log[tx] = decision  # the commit point (or abort), on disk first
            journal.append(("decide", "coordinator", tx, decision, loop.time()))
        pending = set(PARTICIPANTS)
        while pending:  # phase 2: until every participant acknowledges
            for p in sorted(pending):
                if await send(peers, p, {"type": decision, "tx": tx}) is not None:
                    pending.discard(p)
            if pending:
                await asyncio.sleep(RETRY)

    async def run_transaction(tx: str) -> None:
        log[tx] = "begin"
        votes: dict[str, bool] = {}
        try:
            async with asyncio.timeout(VOTE_DEADLINE):
                while len(votes) < len(PARTICIPANTS) and all(votes.values()):
                    for p in PARTICIPANTS:  # phase 1
                        if p not in votes:
                            reply = await send(peers, p, {"type": "prepare", "tx": tx})
                            if reply is not None:
                                votes[p] = reply["vote"]
                    if len(votes) < len(PARTICIPANTS):
                        await asyncio.sleep(RETRY)
        except TimeoutError:
            pass  # the missing votes count as NO
        commit = len(votes) == len(PARTICIPANTS) and all(votes.values())
        await decide(tx, "commit" if commit else "abort")

    async with await listen(peers, "coordinator", on_status):
        for tx, state in sorted(log.items()):  # recovery: finish what a crash interrupted
            await decide(tx, "abort" if state == "begin" else state)
        for i in range(TRANSACTIONS):
            tx = f"t{i}"
            if tx not in log:
                await run_transaction(tx)
                await asyncio.sleep(0.2)  # the next transaction comes later
    return [log[f"t{i}"] for i in range(TRANSACTIONS)]


# -- a participant -------------------------------------------------------------


async def participant(
    me: str, peers: dict[str, Addr], log: dict[str, str], journal: Journal, buggy: bool
) -> None:
    """Vote, then obey the decision; while uncertain, ask the coordinator."""
    loop = asyncio.get_running_loop()
    prepared_at: dict[str, float] = {}

    def record(tx: str, decision: str) -> None:
        log[tx] = decision
        journal.append(("decide", me, tx, decision, loop.time()))

    def handle(m: dict[str, Any]) -> dict[str, Any]:
        tx, state = m["tx"], log.get(m["tx"])
        if m["type"] == "prepare":
            if state is None:
                if random.random() < 0.9:  # can this participant commit its part?
                    log[tx] = "prepared"
                    prepared_at[tx] = loop.time()
                    journal.append(("vote", me, tx, True, loop.time()))
                else:
                    journal.append(("vote", me, tx, False, loop.time()))
                    record(tx, "abort")  # a NO voter aborts on its own
            return {"vote": log[tx] != "abort"}
        if state != m["type"]:  # a decision (sent again after our ack was lost: no-op)
            record(tx, m["type"])
        return {"ack": True}

    async def termination_protocol() -> None:
        while True:
            await asyncio.sleep(RETRY)
            for tx in sorted(t for t, state in log.items() if state == "prepared"):
                since = prepared_at.setdefault(tx, loop.time())
                reply = await send(peers, "coordinator", {"type": "status", "tx": tx})
                if log.get(tx) != "prepared":
                    continue  # decided while we asked
                if reply is not None and reply["decision"] in ("commit", "abort"):
                    record(tx, reply["decision"])
                elif buggy and loop.time() - since > UNCERTAIN_TIMEOUT:
                    record(tx, "abort")  # the planted bug: uncertain, yet decides

    async with await listen(peers, me, handle):
        await termination_protocol()


async def node(
    me: str,
    peers: dict[str, Addr],
    *,
    disks: dict[str, dict[str, str]],
    journal: Journal,
    buggy: bool = False,
) -> Any:
    """The coordinator returns the outcomes; a participant serves until stopped."""
    log = disks.setdefault(me, {})
    if me == "coordinator":
        return await coordinator(peers, log, journal)
    await participant(me, peers, log, journal, buggy)


# -- checking ------------------------------------------------------------------


def check(journal: Journal, disks: dict[str, dict[str, str]]) -> list[str]:
    """Atomicity, validity, and termination once the faults are healed."""
    problems = []
    decided: dict[str, list[tuple[str, str]]] = {}  # tx -> [(who, decision)], in order
    for event in journal:
        if event[0] == "decide":
            _, who, tx, decision, _ = event
            decided.setdefault(tx, []).append((who, decision))
    for tx, by in sorted(decided.items()):
        if len({decision for _, decision in by}) > 1:
            problems.append(f"atomicity: {tx} decided " + ", ".join(f"{w} {d}" for w, d in by))
        no = [e[1] for e in journal if e[0] == "vote" and e[2] == tx and not e[3]]
        if ("coordinator", "commit") in by and no:
            problems.append(f"validity: {tx} committed though {no[0]} voted no")
    for tx, state in sorted(disks.get("coordinator", {}).items()):
        for p in PARTICIPANTS:
            if disks.get(p, {}).get(tx, "none") != state and state != "begin":
                problems.append(f"termination: {p} has {tx} {disks.get(p, {}).get(tx)}")
    return problems[:3]


def report(
    results: dict[str, Any], journal: Journal, disks: dict[str, dict[str, str]]
) -> list[str]:
    outcomes = results.get("coordinator")
    shown = " ".join(outcomes) if isinstance(outcomes, list) else repr(outcomes)
    decided = {(e[1], e[2]): e[4] for e in journal if e[0] == "decide"}
    waits = [decided.get((e[1], e[2]), e[4]) - e[4] for e in journal if e[0] == "vote" and e[3]]
    problems = check(journal, disks)
    return [
        f"outcomes: {shown}; {len(waits)} YES votes, "
        f"longest uncertain wait {max(waits, default=0.0):.2f} s",
        "check: "
        + ("; ".join(problems) if problems else "atomicity, validity and termination hold"),
    ]


# -- running: for real, or inside the simulation -------------------------------


def plan_faults(sim: Any, plan: list[str]) -> None:
    """The coordinator crashes during the run and restarts later; a
    participant is cut off for a while, another crashes and restarts."""
    rng = random.Random(sim.seed)
    crash = rng.uniform(0.0, 1.5)
    back = crash + rng.uniform(0.1, 3.0)
    sim.at(crash, sim.crash, "coordinator")
    sim.at(back, sim.restart, "coordinator")
    plan.append(f"coordinator down {crash:.2f}-{back:.2f}s")
    cut, down = rng.sample(PARTICIPANTS, 2)
    t = rng.uniform(0.0, 2.0)
    cut_for = rng.uniform(0.5, 2.5)
    sim.at(t, sim.partition, cut)
    sim.at(t + cut_for, sim.heal)
    u = rng.uniform(0.0, 2.0)
    sim.at(u, sim.crash, down)
    sim.at(u + 0.5, sim.restart, down)
    plan.append(f"{cut} cut off {t:.2f}-{t + cut_for:.2f}s, {down} down {u:.2f}-{u + 0.5:.2f}s")


def main() -> None:
    p = _launch.parser(__doc__)
    p.add_argument("--buggy", action="store_true", help="an uncertain participant times out")
    args = p.parse_args()
    journal: Journal = []
    disks: dict[str, dict[str, str]] = {}
    plan: list[str] = []

    def lines(results: dict[str, Any]) -> list[str]:
        head = f"2pc: a coordinator, {len(PARTICIPANTS)} participants, {TRANSACTIONS} transactions"
        head += f"; {', '.join(plan)}" if plan else ""
        return [head, *report(results, journal, disks)]

    _launch.main(
        args,
        node,
        ["coordinator", *PARTICIPANTS],
        lines,
        until=2.5 if args.real else 30.0,
        faults=lambda sim, peers: plan_faults(sim, plan),
        disks=disks,
        journal=journal,
        buggy=args.buggy,
    )


if __name__ == "__main__":
    main()
