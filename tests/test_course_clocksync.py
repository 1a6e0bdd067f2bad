"""examples/distributed/clocksync.py: Cristian and Berkeley, checked over seeds.

Each seed gives every node's clock an offset (up to 500 ms) and a drift (up
to 100 ppm) with sim.clock, and the network faults drawn from it: latency,
asymmetric links, lost, duplicated and reordered datagrams, partitions that
heal by the middle of the run.  The true error of every synchronisation must
stay within the bound the algorithm promises (half the round trip the node
measured; the sum of two for Berkeley's pairs), and every node must be
synchronised again after the network heals.
"""

from __future__ import annotations

import random

import pytest
from helpers import course_program, run_course

from tidal import sim

clocksync = course_program("clocksync")
_launch = course_program("_launch")
ROUNDS = 8


def faulty_run(algorithm: str, seed: int) -> tuple[dict[str, object], dict[str, float]]:
    """Run `algorithm` with the faults of `seed`: its check, and when the network healed."""
    rng = random.Random(seed)
    s = sim.Simulation(
        seed,
        latency=rng.choice([(0.0005, 0.002), (0.001, 0.03)]),
        drop=rng.choice([0.0, 0.05, 0.1]),
        duplicate=rng.choice([0.0, 0.05]),
        reorder=rng.choice([0.0, 0.1]),
        explore=True,
    )
    names = clocksync.NAMES
    node = clocksync.cristian if algorithm == "cristian" else clocksync.berkeley
    _launch.add_nodes(s, node, names, rounds=ROUNDS)
    model = clocksync.draw_model(seed)
    for name, (offset, drift) in model.items():
        s.clock(name, offset=offset, drift=drift)
    a, b = rng.sample(names, 2)
    s.link(a, b, latency=(0.02, 0.04), both_ways=False)  # a slow way there, a fast way back
    healed = 0.0
    for _ in range(rng.randrange(3)):
        start = rng.uniform(0, 1.5)
        healed = max(healed, start + rng.uniform(0.1, 1.0))
        s.at(start, s.partition, set(rng.sample(names, rng.randrange(1, len(names)))))
        s.at(healed, s.heal)
    results = s.run(until=60).results
    assert all(isinstance(r, dict) for r in results.values()), (seed, results)
    return results, {"healed": healed, **clocksync.check(algorithm, results, model)}


@pytest.mark.parametrize("algorithm", ["cristian", "berkeley"])
def test_offsets_converge_within_the_promised_bound(algorithm: str) -> None:
    checked = 0
    for seed in range(40):
        _, c = faulty_run(algorithm, seed)
        assert c["over"] == 0, f"seed {seed}: {c}"
        assert c["last"] > c["healed"], f"seed {seed}: a node not synchronised after healing: {c}"
        checked += int(c["checked"])
    assert checked > 40 * ROUNDS


def test_check_catches_a_clock_set_without_the_half_round_trip() -> None:
    """A client that sets its clock to T + (t1 - t0), not T + (t1 - t0) / 2,
    is wrong by about half a round trip, beyond its bound on a slow link."""
    results, c = faulty_run("cristian", 1)
    assert c["over"] == 0
    model = clocksync.draw_model(1)
    for name, result in results.items():
        for entry in result["log"]:  # type: ignore[index]
            entry["adjustment"] += 3 * entry["bound"]
    assert clocksync.check("cristian", results, model)["over"] > 0


def test_sim_output_is_the_same_for_a_seed() -> None:
    first = run_course("clocksync", "--sim", "--seed", "5", hash_seed="1")
    assert first == run_course("clocksync", "--sim", "--seed", "5", hash_seed="2")
    assert first.count("0 of ") == 2, first


def test_real_run() -> None:
    out = run_course("clocksync", "--real", "--rounds", "1")
    assert out.startswith("cristian: n0 is the server\n"), out
    assert out.count("adjusted 1 times") >= 6, out  # loopback loses nothing
