"""Raft: leader election and log replication, as plain asyncio over UDP.

Five servers keep a replicated log of key-value commands; a client submits
commands to whoever it thinks leads and retries elsewhere until the leader
answers that the command is committed.  The steps are named as in the Raft
paper (Ongaro and Ousterhout, figure 2): RequestVote and AppendEntries,
currentTerm / votedFor / log kept on "disk" before answering, commitIndex
advanced by the leader from the followers' matchIndex, entries applied in
order.  UDP may lose, duplicate and reorder: Raft's messages are idempotent,
and every one carries the sender's term.

What is checked, over seeds, crashes, restarts and partitions:
  election safety      at most one leader per term;
  leader completeness  a new leader's log holds every entry already applied;
  state machine safety no two servers apply different entries at one index;
  log matching         two logs with the same term at an index agree up to it;
  durability           every command the client saw committed is in the log.

--buggy plants a classic mistake: a server grants its vote without checking
that the candidate's log is at least as up to date as its own (section
5.4.1), so a server that was cut off can win and overwrite committed entries.
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import _launch

Addr = tuple[str, int]
Journal = list[tuple[Any, ...]]

HEARTBEAT = 0.1  # the leader's AppendEntries period (s)
ELECTION_TIMEOUT = (0.3, 0.6)  # a follower's randomized wait for a leader (s)
MAX_ENTRIES = 16  # entries per AppendEntries datagram


class RaftServer(asyncio.DatagramProtocol):
    """One Raft server.  `disk` is its stable storage: it survives a crash
    (a restart makes a new RaftServer over the same dict)."""

    def __init__(
        self, me: str, peers: dict[str, Addr], disk: dict[str, Any], journal: Journal, buggy: bool
    ) -> None:
        self.me, self.peers, self.journal, self.buggy = me, peers, journal, buggy
        self.others = [p for p in peers if p != me and p.startswith("n")]
        disk.setdefault("currentTerm", 0)
        disk.setdefault("votedFor", None)
        disk.setdefault("log", [])  # [term, command]; index 1 is log[0]
        self.disk = disk
        self.role = "follower"
        self.leader: str | None = None
        self.commit_index = 0
        self.last_applied = 0
        self.kv: dict[str, str] = {}
        self.votes: set[str] = set()
        self.next_index: dict[str, int] = {}
        self.match_index: dict[str, int] = {}
        self.waiting: dict[int, Addr] = {}  # log index -> the client to answer
        self.heard = asyncio.Event()  # from a leader, or a vote granted
        self.transport: asyncio.DatagramTransport | None = None

    # -- helpers ---------------------------------------------------------
    @property
    def term(self) -> int:
        return self.disk["currentTerm"]

    @property
    def log(self) -> list[list[Any]]:
        return self.disk["log"]

    def last_log(self) -> tuple[int, int]:
        """(lastLogIndex, lastLogTerm)."""
        return len(self.log), self.log[-1][0] if self.log else 0

    def term_at(self, index: int) -> int:
        return self.log[index - 1][0] if 0 < index <= len(self.log) else 0

    def send(self, to: str, **msg: Any) -> None:
        assert self.transport is not None
        msg.update(src=self.me, term=self.term)
        self.transport.sendto(json.dumps(msg).encode(), self.peers[to])

    def step_down(self, term: int) -> None:
        """Rule for all servers: a higher term seen makes us a follower."""
        if term > self.term:
            self.disk["currentTerm"], self.disk["votedFor"] = term, None
        self.role = "follower"

    # -- the election ----------------------------------------------------
    def start_election(self) -> None:
        self.disk["currentTerm"] += 1
        self.disk["votedFor"] = self.me
        self.role, self.leader, self.votes = "candidate", None, {self.me}
        index, term = self.last_log()
        for peer in self.others:
            self.send(peer, type="RequestVote", lastLogIndex=index, lastLogTerm=term)

    def on_request_vote(self, m: dict[str, Any]) -> None:
        index, term = self.last_log()
        up_to_date = (m["lastLogTerm"], m["lastLogIndex"]) >= (term, index)
        if self.buggy:
            up_to_date = True  # the planted bug: the candidate's log is not checked
        granted = (
            m["term"] == self.term and self.disk["votedFor"] in (None, m["src"]) and up_to_date
        )
        if granted:
            self.disk["votedFor"] = m["src"]
            self.heard.set()
        self.send(m["src"], type="RequestVoteReply", granted=granted)

    def on_request_vote_reply(self, m: dict[str, Any]) -> None:
        if self.role != "candidate" or m["term"] != self.term or not m["granted"]:
            return
        self.votes.add(m["src"])
        if len(self.votes) * 2 > len(self.others) + 1:
            self.become_leader()

    def become_leader(self) -> None:
        self.role, self.leader = "leader", self.me
        self.journal.append(("leader", self.term, self.me, [tuple(e) for e in self.log]))
        self.next_index = {p: len(self.log) + 1 for p in self.others}
        self.match_index = {p: 0 for p in self.others}
        self.heard.set()
        self.send_append_entries()

    # -- log replication -------------------------------------------------
    def send_append_entries(self) -> None:
        for peer in self.others:
            prev = self.next_index[peer] - 1
            self.send(
                peer,
                type="AppendEntries",
                prevLogIndex=prev,
                prevLogTerm=self.term_at(prev),
                entries=self.log[prev : prev + MAX_ENTRIES],
                leaderCommit=self.commit_index,
            )

    def on_append_entries(self, m: dict[str, Any]) -> None:
        if m["term"] < self.term:
            self.send(m["src"], type="AppendEntriesReply", success=False, matchIndex=0)
            return
        self.role, self.leader = "follower", m["src"]
        self.heard.set()
        prev = m["prevLogIndex"]
        if prev > len(self.log) or self.term_at(prev) != m["prevLogTerm"]:
            self.send(m["src"], type="AppendEntriesReply", success=False, matchIndex=0)
            return
        for offset, entry in enumerate(m["entries"]):
            index = prev + 1 + offset
            if index <= len(self.log) and self.term_at(index) != entry[0]:
                del self.log[index - 1 :]  # a conflict: delete it and all that follow
            if index > len(self.log):
                self.log.append(entry)
        match = prev + len(m["entries"])
        # (An old AppendEntries, delayed, may know less: commitIndex never goes back.)
        if min(m["leaderCommit"], match) > self.commit_index:
            self.commit_index = min(m["leaderCommit"], match)
            self.apply()
        self.send(m["src"], type="AppendEntriesReply", success=True, matchIndex=match)

    def on_append_entries_reply(self, m: dict[str, Any]) -> None:
        if self.role != "leader" or m["term"] != self.term:
            return
        peer = m["src"]
        if m["success"]:
            self.match_index[peer] = max(self.match_index[peer], m["matchIndex"])
            self.next_index[peer] = self.match_index[peer] + 1
        else:
            self.next_index[peer] = max(1, self.next_index[peer] - 1)
        # Commit N if a majority has it and it is from the current term (5.4.2).
        for n in range(len(self.log), self.commit_index, -1):
            replicas = 1 + sum(1 for p in self.others if self.match_index[p] >= n)
            if replicas * 2 > len(self.others) + 1 and self.term_at(n) == self.term:
                self.commit_index = n
                self.apply()
                break

    def apply(self) -> None:
        """Apply committed entries to the state machine, in order."""
        while self.last_applied < self.commit_index:
            self.last_applied += 1
            term, command = self.log[self.last_applied - 1]
            key, value = command.split("=")
            self.kv[key] = value
            self.journal.append(("apply", self.me, self.term, self.last_applied, (term, command)))
            client = self.waiting.pop(self.last_applied, None)
            if client is not None and self.role == "leader":
                assert self.transport is not None
                reply = {"type": "Committed", "command": command, "src": self.me}
                self.transport.sendto(json.dumps(reply).encode(), client)

    def on_submit(self, m: dict[str, Any], addr: Addr) -> None:
        assert self.transport is not None
        if self.role != "leader":
            hint = {"type": "NotLeader", "leader": self.leader, "src": self.me}
            self.transport.sendto(json.dumps(hint).encode(), addr)
            return
        self.log.append([self.term, m["command"]])
        self.waiting[len(self.log)] = addr
        self.send_append_entries()

    # -- the protocol ----------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        m = json.loads(data)
        if m["type"] == "Submit":
            self.on_submit(m, addr)
            return
        if m["term"] > self.term:
            self.step_down(m["term"])
        getattr(self, "on_" + _snake(m["type"]))(m)

    async def run(self) -> None:
        """Followers wait for a leader; a timeout starts an election; a
        leader sends AppendEntries (heartbeats) every HEARTBEAT."""
        while True:
            if self.role == "leader":
                self.send_append_entries()
                await asyncio.sleep(HEARTBEAT)
                continue
            self.heard.clear()
            try:
                async with asyncio.timeout(random.uniform(*ELECTION_TIMEOUT)):
                    await self.heard.wait()
            except TimeoutError:
                self.start_election()


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


async def server(
    me: str, peers: dict[str, Addr], disk: dict[str, Any], journal: Journal, buggy: bool
) -> None:
    """One server's process: bind its address and run until killed."""
    loop = asyncio.get_running_loop()
    raft = RaftServer(me, peers, disk, journal, buggy)
    transport, _ = await loop.create_datagram_endpoint(lambda: raft, local_addr=peers[me])
    try:
        await raft.run()
    finally:
        transport.close()


class Inbox(asyncio.DatagramProtocol):
    """The client's socket: every reply, decoded, into a queue."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        self.queue.put_nowait(json.loads(data))


async def client(me: str, peers: dict[str, Addr], commands: list[str], journal: Journal) -> int:
    """Submit each command until a leader says it is committed."""
    loop = asyncio.get_running_loop()
    inbox = Inbox()
    replies = inbox.queue
    transport, _ = await loop.create_datagram_endpoint(lambda: inbox, local_addr=peers[me])
    servers = sorted(p for p in peers if p.startswith("n"))
    guess = servers[0]
    try:
        for command in commands:
            while True:
                transport.sendto(
                    json.dumps({"type": "Submit", "command": command}).encode(), peers[guess]
                )
                try:
                    async with asyncio.timeout(0.5):
                        reply = await replies.get()
                        while reply["type"] == "Committed" and reply["command"] != command:
                            reply = await replies.get()  # a late answer to an earlier try
                except TimeoutError:
                    guess = servers[(servers.index(guess) + 1) % len(servers)]
                    continue
                if reply["type"] == "Committed":
                    journal.append(("committed", command))
                    break
                leader = reply["leader"]
                guess = (
                    leader
                    if leader in servers and leader != guess
                    else servers[(servers.index(guess) + 1) % len(servers)]
                )
                await asyncio.sleep(0.05)
        return len(commands)
    finally:
        transport.close()


# -- checking ------------------------------------------------------------------


def check(journal: Journal, disks: dict[str, dict[str, Any]]) -> list[str]:
    """Raft's safety properties over what the run recorded; [] if all hold."""
    problems: list[str] = []
    leaders: dict[int, str] = {}
    applied: dict[int, tuple[int, str]] = {}
    for event in journal:
        if event[0] == "leader":
            _, term, who, log = event
            if leaders.setdefault(term, who) != who:
                problems.append(f"election safety: {leaders[term]} and {who} both lead term {term}")
            for index, (entry, at_term) in applied.items():
                if at_term < term and (index > len(log) or tuple(log[index - 1]) != entry):
                    problems.append(
                        f"leader completeness: {who} leads term {term} without "
                        f"committed entry {index} {entry}"
                    )
                    break
        elif event[0] == "apply":
            _, who, term, index, entry = event
            first = applied.setdefault(index, (entry, term))
            if first[0] != entry:
                problems.append(
                    f"state machine safety: {who} applies {entry} at {index}, "
                    f"another server {first[0]}"
                )
    logs = {name: disk.get("log", []) for name, disk in disks.items()}
    for a in logs:
        for b in logs:
            la, lb = logs[a], logs[b]
            for i in range(min(len(la), len(lb)) - 1, -1, -1):
                if la[i][0] == lb[i][0]:
                    if la[: i + 1] != lb[: i + 1]:
                        problems.append(f"log matching: {a} and {b} differ before index {i + 1}")
                    break
    longest = max(logs.values(), key=len)
    for event in journal:
        if event[0] == "committed" and all(event[1] != e[1] for e in longest):
            problems.append(f"durability: committed {event[1]} is in no log")
    return problems[:3]


def report(journal: Journal, disks: dict[str, dict[str, Any]]) -> list[str]:
    leaders = [f"t{e[1]}:{e[2]}" for e in journal if e[0] == "leader"]
    committed = sum(1 for e in journal if e[0] == "committed")
    lengths = " ".join(f"{n}={len(d.get('log', []))}" for n, d in sorted(disks.items()))
    problems = check(journal, disks)
    return [
        f"leaders by term: {' '.join(leaders)}",
        f"client: {committed} commands committed; log lengths {lengths}",
        "safety: "
        + (
            "; ".join(problems)
            if problems
            else "election safety, leader completeness, state machine safety, "
            "log matching, durability hold"
        ),
    ]


# -- running: for real, or inside the simulation -------------------------------

SERVERS = [f"n{i}" for i in range(5)]
COMMANDS = [f"k{i % 4}={i}" for i in range(20)]


async def node(
    me: str,
    peers: dict[str, Addr],
    *,
    disks: dict[str, dict[str, Any]],
    journal: Journal,
    buggy: bool = False,
) -> Any:
    """A server, or the client; a server's disk outlives its crashes."""
    if me == "client":
        return await client(me, peers, COMMANDS, journal)
    return await server(me, peers, disks.setdefault(me, {}), journal, buggy)


def swarm() -> Any:
    """The faults of a --sim run: tidal.sim's swarm plan drawn from the seed
    (loss, partitions, clock faults, crashes of servers, not of the client),
    then a calm phase (the last 30% of the run) where all is healed."""
    from tidal.sim import Swarm

    return Swarm(crash=SERVERS)


def main() -> None:
    p = _launch.parser(__doc__)
    p.add_argument("--buggy", action="store_true", help="grant votes without the log check")
    args = p.parse_args()
    journal: Journal = []
    disks: dict[str, dict[str, Any]] = {}

    def lines(results: dict[str, Any]) -> list[str]:
        return [f"raft: {len(SERVERS)} servers, {len(COMMANDS)} commands", *report(journal, disks)]

    _launch.main(
        args,
        node,
        [*SERVERS, "client"],
        lines,
        until=1.5 if args.real else 12.0,
        swarm=swarm(),
        disks=disks,
        journal=journal,
        buggy=args.buggy,
    )


if __name__ == "__main__":
    main()
