"""Schedule exploration (explore=True): which orders it varies, which it keeps.

It varies, from the seed, the order of task steps in one turn that descend
from different events (an I/O callback, a timer, a thread's result): the
orders a real loop takes when those events come in another order.  It
keeps what asyncio's order makes certain without any outside event (plain
callbacks' FIFO, tasks started one after another, sleep(0) round-robin, an
Event or Queue waking its waiters in turn).  It finds the planted bug of
tidal.sim.examples.wal, which no run without it shows.
"""

from __future__ import annotations

import asyncio
import functools
import subprocess
import sys
from typing import Any

from tidal import sim
from tidal.sim import examples

SEEDS = range(10)


def _wal_fails(seed: int, *, ordered: bool, explore: bool) -> bool:
    try:
        examples.wal(sim.Simulation(seed, explore=explore), ordered=ordered)
    except AssertionError:
        return True
    return False


def test_exploration_finds_a_bug_that_needs_two_tasks_in_the_other_order(tmp_path: Any) -> None:
    assert not any(_wal_fails(seed, ordered=False, explore=False) for seed in SEEDS)
    found = [seed for seed in SEEDS if _wal_fails(seed, ordered=False, explore=True)]
    assert len(found) >= 3, found
    assert not any(_wal_fails(seed, ordered=True, explore=True) for seed in SEEDS)

    result = sim.search(
        functools.partial(examples.wal, ordered=False),
        SEEDS,
        faults=sim.FaultPlan(()),  # no faults: only the schedule to shrink
        explore=True,
        trace_dir=str(tmp_path),
    )
    failure = result.failure
    assert failure is not None and failure.seed == found[0]
    assert failure.replayed is True
    # The shrinker tried exploration off first: the bug needs it.
    assert failure.shrunk is not None and failure.shrunk.explore is True


async def orders() -> dict[str, list[str]]:
    """What ran in which order, by kind of ordering."""
    loop = asyncio.get_running_loop()
    seen: dict[str, list[str]] = {"soon": [], "rr": [], "event": [], "queue": [], "threads": []}
    for i in range(5):
        loop.call_soon(seen["soon"].append, str(i))

    async def steps(name: str) -> None:
        for i in range(3):
            seen["rr"].append(f"{name}{i}")
            await asyncio.sleep(0)

    await asyncio.gather(steps("x"), steps("y"), steps("z"))

    event = asyncio.Event()

    async def waiter(name: str) -> None:
        await event.wait()
        seen["event"].append(name)

    waiters = [asyncio.create_task(waiter(f"w{i}")) for i in range(4)]
    await asyncio.sleep(0)
    event.set()
    await asyncio.gather(*waiters)

    queue: asyncio.Queue[int] = asyncio.Queue()

    async def getter(name: str) -> None:
        seen["queue"].append(f"{name}:{await queue.get()}")

    getters = [asyncio.create_task(getter(f"g{i}")) for i in range(3)]
    await asyncio.sleep(0)
    for item in range(3):
        queue.put_nowait(item)
    await asyncio.gather(*getters)

    async def threaded(name: str) -> None:
        await asyncio.to_thread(len, name)  # a thread's result: its own event
        seen["threads"].append(name)

    await asyncio.gather(*(threaded(f"t{i}") for i in range(4)))
    return seen


def test_exploration_keeps_what_asyncio_promises_and_varies_the_rest() -> None:
    plain = sim.run(orders(), seed=0)
    assert plain == {
        "soon": ["0", "1", "2", "3", "4"],
        "rr": ["x0", "y0", "z0", "x1", "y1", "z1", "x2", "y2", "z2"],
        "event": ["w0", "w1", "w2", "w3"],
        "queue": ["g0:0", "g1:1", "g2:2"],
        "threads": ["t0", "t1", "t2", "t3"],
    }
    thread_orders = set()
    for seed in SEEDS:
        explored = sim.run(orders(), seed=seed, explore=True)
        assert {k: v for k, v in explored.items() if k != "threads"} == {
            k: v for k, v in plain.items() if k != "threads"
        }
        assert sorted(explored["threads"]) == plain["threads"]
        thread_orders.add(tuple(explored["threads"]))
        assert sim.run(orders(), seed=seed, explore=True) == explored
    assert len(thread_orders) >= 4, thread_orders


_HASH = """
from tidal import sim
from tidal.sim import examples
s = sim.Simulation({seed}, explore=True)
s.host("db", examples.store, [], False)
s.host("client", examples.writer)
print(s.run(until=5).trace_hash)
"""


def test_an_explored_run_is_the_same_in_another_process() -> None:
    def scenario(seed: int) -> sim.Simulation:
        s = sim.Simulation(seed, explore=True)
        s.host("db", examples.store, [], False)
        s.host("client", examples.writer)
        return s

    here = sim.check_determinism(scenario, 1, until=5)
    there = subprocess.run(
        [sys.executable, "-c", _HASH.format(seed=1)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert there.stdout.strip() == here.trace_hash
    unexplored = sim.Simulation(1)
    unexplored.host("db", examples.store, [], False)
    unexplored.host("client", examples.writer)
    assert unexplored.run(until=5).trace_hash != here.trace_hash


def test_exploring_tcp_streams() -> None:
    """Streams over the simulated network, explored: a stream transport
    queued for its read (it is its fd's reader entry, no Handle) is an I/O
    event of its own, and every client gets its answers."""

    async def server() -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while line := await reader.readline():
                writer.write(line.upper())
                await writer.drain()
            writer.close()

        async with await asyncio.start_server(handle, None, 7000):
            await asyncio.sleep(5)
        return "served"

    async def client() -> list[bytes]:
        await asyncio.sleep(0.01)  # the server listens first
        reader, writer = await asyncio.open_connection("server", 7000)
        got = []
        for i in range(5):
            writer.write(b"line %d\n" % i)
            got.append(await reader.readline())
        writer.close()
        await writer.wait_closed()
        return got

    for seed in range(3):
        s = sim.Simulation(seed, explore=True)
        s.host("server", server)
        for i in range(3):
            s.host(f"c{i}", client)
        res = s.run(until=60)
        for i in range(3):
            assert res.results[f"c{i}"] == [b"LINE %d\n" % n for n in range(5)]
