"""examples/distributed/election.py: the bully and the ring election, over seeds.

Each seed runs five nodes with the faults drawn from it: latency, lost,
duplicated and reordered datagrams, drifting clocks, partitions of any
shape, and up to two nodes (a minority) crashing for good, all within the
first 10 s; the network heals by then.  At most one leader per epoch,
through it all; at the end, every live node follows one leader, which
leads.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from helpers import course_program, run_course

from tidal import sim

election = course_program("election")
_launch = course_program("_launch")


def faulty_run(algorithm: str, seed: int) -> tuple[list[Any], dict[str, Any]]:
    rng = random.Random(seed)
    s = sim.Simulation(
        seed,
        latency=rng.choice([(0.0005, 0.002), (0.001, 0.03)]),
        drop=rng.choice([0.0, 0.05, 0.1]),
        duplicate=rng.choice([0.0, 0.05]),
        reorder=rng.choice([0.0, 0.1]),
        explore=True,
    )
    names = election.NAMES
    journal: list[Any] = []
    _launch.add_nodes(s, election.node, names, algorithm=algorithm, duration=20.0, journal=journal)
    for name in names:
        s.clock(name, drift=rng.uniform(-1e-3, 1e-3))
    for name in rng.sample(names, rng.randrange(3)):
        s.at(rng.uniform(0, 10), s.crash, name)
    for _ in range(rng.randrange(4)):
        start = rng.uniform(0, 9)
        s.at(start, s.partition, set(rng.sample(names, rng.randrange(1, len(names)))))
        s.at(min(10, start + rng.uniform(0.2, 5)), s.heal)
    return journal, s.run(until=25).results


@pytest.mark.parametrize("algorithm", ["bully", "ring"])
def test_one_leader_per_epoch_and_one_after_healing(algorithm: str) -> None:
    elections = 0
    for seed in range(30):
        journal, results = faulty_run(algorithm, seed)
        c = election.check(journal, results)
        assert not c["split"], f"seed {seed}: two leaders in one epoch: {c}"
        assert c["agreed"], f"seed {seed}: no single leader at the end: {results}"
        elections += len(c["leaders"])
    assert elections > 60  # leaders died and were replaced


def test_check_sees_two_leaders_in_one_epoch() -> None:
    journal, results = faulty_run("bully", 0)
    epoch = next(e for _, _, event, e in journal if event == "leads")
    journal.append([30.0, "n1", "leads", epoch])
    assert election.check(journal, results)["split"]


def test_sim_output_is_the_same_for_a_seed() -> None:
    for algorithm in ([], ["--ring"]):
        first = run_course("election", "--sim", "--seed", "5", *algorithm, hash_seed="1")
        assert first == run_course("election", "--sim", "--seed", "5", *algorithm, hash_seed="2")
        assert "at most one leader per epoch: yes\n" in first


def test_real_run() -> None:
    out = run_course("election", "--real", "--duration", "2")
    assert "at most one leader per epoch: yes\none leader at the end, followed by all: n5" in out
