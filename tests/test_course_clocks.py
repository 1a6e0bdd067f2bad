"""examples/distributed/clocks.py: Lamport and vector clocks, checked over seeds.

Each seed runs the nodes inside a Simulation with faults drawn from it (slow
and jittery links, partitions that heal, simultaneous events in a seeded
order) and checks the logs against happened-before, rebuilt from the logs
alone: vector timestamps order exactly the pairs where one event could have
caused the other; Lamport timestamps respect every such pair.
"""

from __future__ import annotations

import random

from helpers import course_program, run_course

from tidal import sim

clocks = course_program("clocks")
_launch = course_program("_launch")


def faulty_simulation(seed: int) -> sim.Simulation:
    rng = random.Random(seed)
    s = sim.Simulation(seed, latency=rng.choice([(0.0005, 0.002), (0.001, 0.08)]), explore=True)
    names = clocks.NAMES
    _launch.add_nodes(s, clocks.node, names)
    for _ in range(rng.randrange(3)):
        # Shorter than TCP's 60 s timeout: the connections stall, then resume.
        start = rng.uniform(0, 0.3)
        cut = set(rng.sample(names, rng.randrange(1, len(names))))
        s.at(start, s.partition, cut)
        s.at(start + rng.uniform(0.01, 30), s.heal)
    return s


def test_vector_clocks_order_exactly_happened_before() -> None:
    totals = {"ordered": 0, "concurrent": 0, "vector_wrong": 0, "lamport_wrong": 0}
    for seed in range(60):
        results = faulty_simulation(seed).run(until=300).results
        assert all(isinstance(log, list) for log in results.values()), (seed, results)
        counts = clocks.check(results)
        assert counts["vector_wrong"] == 0 and counts["lamport_wrong"] == 0, (seed, counts)
        for key, value in counts.items():
            totals[key] += value
    # The check saw both kinds of pair (a property over empty logs proves nothing).
    assert totals["ordered"] > 0 and totals["concurrent"] > 0, totals


def test_check_catches_a_wrong_clock() -> None:
    """A receive that forgets to merge the sender's vector is caught."""
    results = faulty_simulation(1).run(until=300).results
    log = next(log for log in results.values() if any(e["kind"] == "receive" for e in log))
    receive = next(e for e in log if e["kind"] == "receive")
    receive["vector"] = [0] * len(receive["vector"])
    assert clocks.check(results)["vector_wrong"] > 0


def test_sim_output_is_the_same_for_a_seed() -> None:
    first = run_course("clocks", "--sim", "--seed", "5", hash_seed="1")
    assert first == run_course("clocks", "--sim", "--seed", "5", hash_seed="2")
    assert "vector clocks order exactly those pairs: yes" in first


def test_real_run() -> None:
    out = run_course("clocks", "--real")
    assert out.count(" events, Lamport clock ") == len(clocks.NAMES), out
    assert "vector clocks order exactly those pairs: yes" in out
    assert "Lamport clocks respect happened-before: yes" in out
