"""Simulation speed, side by side: tidal.sim against simloop, simloom and seedloop.

``python -m tidal.bench.simulation [--seeds N]`` runs each workload for N
seeds on every simulator that is installed (the others need Python 3.12+)
and prints the median seconds per seed and each one's ratio to tidal's:

* **timers**: 10,000 tasks, each sleeping ten random virtual delays;
* **dht**: twenty hosts running the kademlia DHT from PyPI (datagram
  endpoints): they join, one stores a value, all look it up (tidal and
  simloop only: seedloop has no datagram endpoints; simloom not tried);
* **streams**: a server and four clients on five hosts, each client sending
  250 lines over TCP and reading each one back (1,000 round trips) with
  asyncio streams (tidal, simloop and simloom: seedloop has no asyncio
  streams or sockets);
* **messages**: the same exchange as datagrams, 250 messages per client each
  awaiting its echo: over UDP (create_datagram_endpoint) on tidal, simloop
  and simloom, through seedloop's own message endpoints there.

The delays and message counts are the same for every simulator (drawn from a
``random.Random`` of the seed, not the simulators' own generators), so each
does the same work.  Each simulator runs one seed first, unmeasured
(imports); then the medians of CPU time (process time: other processes on a
shared machine do not count) are measured in one process, one seed at a
time, the simulators taking turns.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import random
import statistics
import time
from typing import Any, Callable

TASKS = 10_000
SLEEPS = 10
CLIENTS = 4
LINES = 250


# -- timers ------------------------------------------------------------------


def _timer_delays(seed: int) -> list[list[float]]:
    rng = random.Random(seed)
    return [[rng.random() for _ in range(SLEEPS)] for _ in range(TASKS)]


async def _timers(delays: list[list[float]]) -> float:
    async def sleeper(mine: list[float]) -> None:
        for delay in mine:
            await asyncio.sleep(delay)

    await asyncio.gather(*(sleeper(mine) for mine in delays))
    return asyncio.get_running_loop().time()


def timers_tidal(seed: int) -> Any:
    from tidal import sim

    return sim.run(_timers(_timer_delays(seed)), seed=seed)


def timers_simloop(seed: int) -> Any:
    import simloop

    loop = simloop.SimLoop(seed)
    try:
        return loop.run_until_complete(_timers(_timer_delays(seed)))
    finally:
        loop.close()


def timers_simloom(seed: int) -> Any:
    import simloom

    delays = _timer_delays(seed)
    return simloom.run(lambda: _timers(delays), seed=seed, world=False).value


def timers_seedloop(seed: int) -> Any:
    import seedloop

    delays = _timer_delays(seed)

    async def scenario(world: Any) -> None:
        await _timers(delays)

    seedloop.replay(scenario, seed=seed)


# -- streams -------------------------------------------------------------------


async def _echo_server(port: int, listen_host: str | None = None) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            writer.write(line)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, listen_host, port)
    async with server:
        await asyncio.sleep(3600)


async def _echo_client(host: str, port: int, lines: int) -> int:
    await asyncio.sleep(0.01)
    reader, writer = await asyncio.open_connection(host, port)
    total = 0
    for i in range(lines):
        writer.write(b"line %d of the exchange\n" % i)
        total += len(await reader.readline())
    writer.close()
    await writer.wait_closed()
    return total


def streams_tidal(seed: int) -> Any:
    from tidal import sim

    s = sim.Simulation(seed=seed, latency=(0.001, 0.01))
    s.host("server", _echo_server, 7000)
    for i in range(CLIENTS):
        s.host(f"c{i}", _echo_client, "server", 7000, LINES)
    # The server serves forever: the run ends when the clients are done.
    return s.run(until=3000).results


async def _drive_clients(spawn: Callable[[str, Any], Any]) -> list[int]:
    # (simloom's servers listen on their host's name)
    spawn("server", lambda: _echo_server(7000, "server"))
    await asyncio.sleep(0)
    tasks = [spawn(f"c{i}", lambda: _echo_client("server", 7000, LINES)) for i in range(CLIENTS)]
    results = await asyncio.gather(*tasks)
    await asyncio.sleep(1)  # the server's handlers see EOF and finish
    return list(results)


def streams_simloop(seed: int) -> Any:
    import simloop

    loop = simloop.SimLoop(seed)
    loop.net.set_defaults(latency=(0.001, 0.01))

    async def main() -> list[int]:
        return await _drive_clients(lambda name, make: loop.net.host(name).create_task(make()))

    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def streams_simloom(seed: int) -> Any:
    import simloom

    async def main(world: Any) -> list[int]:
        return await _drive_clients(lambda name, make: world.host(name).spawn(make))

    return simloom.run(main, seed=seed).value


# -- messages ------------------------------------------------------------------
#
# The streams exchange as datagrams: each client sends a message and awaits
# its echo, 250 times.  On the asyncio simulators it is UDP
# (create_datagram_endpoint, no drops or duplicates) with a small protocol
# that hands each datagram to the task awaiting it, shaped as seedloop's
# endpoints are (a deque and a future), so every simulator's tasks take the
# same steps: the server is a task that receives and sends back, as
# seedloop's is.  The latency range is seedloop's (1-20 ms, fixed there).

MESSAGE_LATENCY = (0.001, 0.02)


class _Inbox(asyncio.DatagramProtocol):
    """A datagram endpoint's arrivals, for a task to await one by one."""

    def __init__(self) -> None:
        self.arrived: collections.deque[tuple[bytes, Any]] = collections.deque()
        self.waiter: asyncio.Future[None] | None = None

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.arrived.append((data, addr))
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def recv(self) -> tuple[bytes, Any]:
        while not self.arrived:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        return self.arrived.popleft()


async def _message_server(port: int, listen_host: str = "0.0.0.0") -> None:
    loop = asyncio.get_running_loop()
    transport, inbox = await loop.create_datagram_endpoint(_Inbox, local_addr=(listen_host, port))
    try:
        while True:
            message, sender = await inbox.recv()
            transport.sendto(message, sender)
    finally:
        transport.close()


async def _message_client(host: str, port: int, messages: int) -> int:
    await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    transport, inbox = await loop.create_datagram_endpoint(_Inbox, remote_addr=(host, port))
    total = 0
    for i in range(messages):
        transport.sendto(b"line %d of the exchange\n" % i)
        total += len((await inbox.recv())[0])
    transport.close()
    return total


def messages_tidal(seed: int) -> Any:
    from tidal import sim

    s = sim.Simulation(seed=seed, latency=MESSAGE_LATENCY)
    s.host("server", _message_server, 7000)
    for i in range(CLIENTS):
        s.host(f"c{i}", _message_client, "server", 7000, LINES)
    return s.run(until=3000).results


async def _drive_messages(spawn: Callable[[str, Any], Any]) -> list[int]:
    server = spawn("server", lambda: _message_server(7000, "server"))
    await asyncio.sleep(0)
    tasks = [spawn(f"c{i}", lambda: _message_client("server", 7000, LINES)) for i in range(CLIENTS)]
    results = await asyncio.gather(*tasks)
    server.cancel()
    await asyncio.wait([server])  # (it closes its endpoint)
    return list(results)


def messages_simloop(seed: int) -> Any:
    import simloop

    loop = simloop.SimLoop(seed)
    loop.net.set_defaults(latency=MESSAGE_LATENCY)

    async def main() -> list[int]:
        return await _drive_messages(lambda name, make: loop.net.host(name).create_task(make()))

    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def messages_simloom(seed: int) -> Any:
    import simloom

    async def main(world: Any) -> list[int]:
        world.net.set_latency(*MESSAGE_LATENCY)
        return await _drive_messages(lambda name, make: world.host(name).spawn(make))

    return simloom.run(main, seed=seed).value


def messages_seedloop(seed: int) -> Any:
    """seedloop has no asyncio sockets: its own message endpoints (datagrams
    with its fixed 1-20 ms latency, delivered into a deque and a future)."""
    import seedloop

    async def scenario(world: Any) -> None:
        server = world.net.bind(0)

        async def serve() -> None:
            while True:
                sender, message = await server.recv()
                await server.send(sender, message)

        async def client(address: int) -> int:
            await asyncio.sleep(0.01)
            endpoint = world.net.bind(address)
            total = 0
            for i in range(LINES):
                await endpoint.send(0, b"line %d of the exchange\n" % i)
                total += len((await endpoint.recv())[1])
            return total

        serving = asyncio.ensure_future(serve())
        await asyncio.gather(*(client(i + 1) for i in range(CLIENTS)))
        serving.cancel()

    seedloop.replay(scenario, seed=seed)


# -- a UDP protocol from PyPI: a Kademlia DHT ----------------------------------

DHT_NODES = 20


async def _dht_node(i: int, bootstrap: str | None) -> str | None:
    from kademlia.network import Server

    server = Server()
    await server.listen(8468)
    try:
        if bootstrap is not None:
            await asyncio.sleep(0.1 * i)
            await server.bootstrap([(bootstrap, 8468)])
        await asyncio.sleep(5)
        if i == 3:
            await server.set("answer", "42")
        await asyncio.sleep(5)
        return await server.get("answer")  # type: ignore[no-any-return]
    finally:
        server.stop()


def dht_tidal(seed: int) -> Any:
    from tidal import sim

    s = sim.Simulation(seed=seed, latency=(0.001, 0.02))
    s.host("n0", _dht_node, 0, None)
    for i in range(1, DHT_NODES):
        s.host(f"n{i}", _dht_node, i, s.address("n0"))
    return s.run().results


def dht_simloop(seed: int) -> Any:
    import simloop

    loop = simloop.SimLoop(seed)
    loop.net.set_defaults(latency=(0.001, 0.02))

    async def main() -> list[Any]:
        first = loop.net.host("n0").create_task(_dht_node(0, None))
        address = loop.net.address("n0")
        rest = [
            loop.net.host(f"n{i}").create_task(_dht_node(i, address)) for i in range(1, DHT_NODES)
        ]
        return list(await asyncio.gather(first, *rest))

    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def _quiet_dht_logs() -> None:
    import logging

    for name in ("kademlia", "rpcudp"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


WORKLOADS: dict[str, dict[str, Callable[[int], Any]]] = {
    "timers": {
        "tidal": timers_tidal,
        "simloop": timers_simloop,
        "simloom": timers_simloom,
        "seedloop": timers_seedloop,
    },
    "streams": {
        "tidal": streams_tidal,
        "simloop": streams_simloop,
        "simloom": streams_simloom,
    },
    "messages": {
        "tidal": messages_tidal,
        "simloop": messages_simloop,
        "simloom": messages_simloom,
        "seedloop": messages_seedloop,
    },
    "dht": {"tidal": dht_tidal, "simloop": dht_simloop},
}


def _available(name: str) -> bool:
    if name == "tidal":
        return True
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def measure(
    seeds: int, only: list[str] | None = None, without: list[str] | None = None
) -> dict[str, dict[str, list[float]]]:
    """CPU seconds per seed: {workload: {simulator: [one per seed]}}, for the
    simulators installed here (tidal always), taking turns seed by seed."""
    _quiet_dht_logs()
    out: dict[str, dict[str, list[float]]] = {}
    for workload, runners in WORKLOADS.items():
        if only and workload not in only:
            continue
        if workload == "dht" and not _available("kademlia"):
            continue
        present = {
            name: run
            for name, run in runners.items()
            if name not in (without or ()) and _available(name)
        }
        for run in present.values():
            run(seeds)  # warm up: imports, first-call costs (a seed not measured)
        times: dict[str, list[float]] = {name: [] for name in present}
        for seed in range(seeds):
            for name, run in present.items():  # taking turns, seed by seed
                gc.collect()
                t0 = time.process_time()
                run(seed)
                times[name].append(time.process_time() - t0)
        out[workload] = times
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--only", choices=list(WORKLOADS), action="append", default=[])
    parser.add_argument(
        "--without", action="append", default=[], help="leave a contestant out (repeatable)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON line (the bench's sim section reads it)"
    )
    args = parser.parse_args(argv)
    import platform

    import tidal

    build = "compiled" if tidal.COMPILED else "interpreted"
    if not args.json:
        print(f"tidal {build}, Python {platform.python_version()}; {args.seeds} seeds each")
    results = measure(args.seeds, args.only, args.without)
    if args.json:
        missing = [name for name in ("simloop", "simloom", "seedloop") if not _available(name)]
        info = {"python": platform.python_version(), "tidal": build, "missing": missing}
        print(json.dumps({**info, "times": results}))
        return
    for workload, times in results.items():
        base = statistics.median(times["tidal"])
        print(f"\n{workload}: median CPU s per seed (ratio: tidal's speed over theirs)")
        for name, measured in times.items():
            median = statistics.median(measured)
            print(f"  {name:10s} {median:8.4f} s   {median / base:6.2f}x")


if __name__ == "__main__":
    main()
