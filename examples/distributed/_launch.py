"""Start the nodes of a distributed program: for real, or inside tidal's simulation.

A node is ``async def node(name, peers, **config) -> result``: it serves on
``peers[name]`` (a ``(host, port)`` pair) and reaches node ``n`` at
``peers[n]``.  The node's code is plain asyncio; only how it is started
differs:

- ``--real``: every node in one ``asyncio.run``, on 127.0.0.1, one port each
  (real sockets, real time);
- ``--sim --seed S``: one simulated host per node (its own address, the same
  port everywhere), in virtual time; the same seed prints the same lines.

A test builds the Simulation itself (or takes the ``sim`` fixture) and calls
``add_nodes(sim, node, names)``, adds faults, runs it and checks the results.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
from typing import Any, Callable, Coroutine, Iterable

Peers = dict[str, tuple[str, int]]
Node = Callable[..., Coroutine[Any, Any, Any]]
PORT = 7000  # every simulated host serves here (each has its own address)


def real_peers(names: Iterable[str]) -> Peers:
    """Distinct free ports on 127.0.0.1, free for TCP and UDP both."""
    held: list[socket.socket] = []
    peers: Peers = {}
    try:
        for name in names:
            while name not in peers:
                tcp = socket.socket()
                held.append(tcp)
                tcp.bind(("127.0.0.1", 0))
                port = tcp.getsockname()[1]
                udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                held.append(udp)
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                peers[name] = ("127.0.0.1", port)
    finally:
        for sock in held:
            sock.close()
    return peers


async def run_real(node: Node, names: list[str], until: float, **config: Any) -> dict[str, Any]:
    """Run every node until it returns (at most `until` s); {name: result or exception}."""
    peers = real_peers(names)
    tasks = {name: asyncio.create_task(node(name, peers, **config)) for name in names}
    await asyncio.wait(tasks.values(), timeout=until)
    for task in tasks.values():
        task.cancel()
    await asyncio.wait(tasks.values())
    return {
        name: TimeoutError(f"still running after {until} s")
        if t.cancelled()
        else t.exception() or t.result()
        for name, t in tasks.items()
    }


def add_nodes(
    sim: Any, node: Node, names: list[str], *, deadline: float | None = None, **config: Any
) -> Peers:
    """One host per node in `sim` (a tidal.sim.Simulation); the peers map
    they were given.  A node still running `deadline` s after it booted
    ends with TimeoutError (for a run with no `until`: a test that cannot hang)."""
    peers: Peers = {}
    for name in names:
        peers[name] = (sim.host(name, _start, node, name, peers, deadline, config), PORT)
    return peers


async def _start(
    node: Node, name: str, peers: Peers, deadline: float | None, config: dict[str, Any]
) -> Any:
    async with asyncio.timeout(deadline):
        return await node(name, peers, **config)


async def connect(address: tuple[str, int]) -> asyncio.StreamWriter:
    """A TCP connection to a peer, waiting for it to listen (nodes start at once)."""
    while True:
        try:
            _, writer = await asyncio.open_connection(*address)
            return writer
        except ConnectionRefusedError:
            await asyncio.sleep(0.05)


def parser(description: str | None) -> argparse.ArgumentParser:
    """``--real`` or ``--sim --seed S`` (a program may add its own options)."""
    p = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--real", action="store_true", help="N nodes on 127.0.0.1, real time")
    mode.add_argument("--sim", action="store_true", help="the nodes inside tidal.sim")
    p.add_argument("--seed", type=int, default=0, help="the simulation's seed (with --sim)")
    p.add_argument(
        "--loop",
        choices=("tidal", "asyncio"),
        default="tidal",
        help="the event loop of a --real run",
    )
    return p


def main(
    args: argparse.Namespace,
    node: Node,
    names: list[str],
    report: Callable[[dict[str, Any]], Iterable[str]],
    *,
    until: float,
    faults: Callable[[Any, Peers], None] | None = None,
    swarm: Any = None,
    **config: Any,
) -> None:
    """Run the nodes as `args` say and print ``report(results)``.  In a
    simulation, ``faults(sim, peers)`` may schedule faults first; with
    `swarm` (a tidal.sim.Swarm) the run meets the fault plan it draws from
    the seed (the plan a tidal_sim test with that seed meets), printed last."""
    if args.real:
        coro = run_real(node, names, until, **config)
        if args.loop == "tidal":
            import tidal

            results = tidal.run(coro)
        else:
            results = asyncio.run(coro)
    else:
        from tidal import sim as tidal_sim

        simulation = tidal_sim.Simulation(seed=args.seed, faults=swarm)
        peers = add_nodes(simulation, node, names, **config)
        if faults is not None:
            faults(simulation, peers)
        results = simulation.run(until=until).results
    for line in report(results):
        print(line)
    if swarm is not None and not args.real:
        print(f"faults (swarm plan of seed {args.seed}):")
        for line in str(simulation.plan).splitlines():
            print("  " + line.strip())
