"""A UDP protocol from PyPI inside the simulation: a Kademlia DHT (kademlia,
over rpcudp's datagram endpoints), twelve simulated hosts, unmodified.

The nodes join through one bootstrap node, one of them stores a value, all
of them look it up; datagrams are lost now and then (rpcudp times out and
kademlia drops the silent peer from its routing table, as on a real
network).  The run is checked for determinism (the same seed twice: the
same trace) and the value is found by most nodes.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from tidal import sim

network = pytest.importorskip("kademlia.network")

NODES = 12


async def node(i: int, bootstrap: str | None) -> str | None:
    server = network.Server()
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


def dht(seed: int) -> sim.Simulation:
    s = sim.Simulation(seed=seed, latency=(0.001, 0.02), drop=0.02)
    s.host("n0", node, 0, None)
    for i in range(1, NODES):
        s.host(f"n{i}", node, i, s.address("n0"))
    return s


@pytest.mark.parametrize("seed", [1, 2])
def test_a_kademlia_dht_in_a_simulation(seed: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="kademlia")  # its warnings on lost replies
    caplog.set_level(logging.CRITICAL, logger="rpcudp")
    res = sim.check_determinism(dht, seed)
    found = [name for name, value in res.results.items() if value == "42"]
    assert res.results["n3"] == "42"
    assert len(found) > NODES // 2, res.results
    assert res.time > 10  # ten virtual seconds of sleeps, in no real time to speak of
