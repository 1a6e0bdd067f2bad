"""examples/distributed/clocks.py: Lamport and vector clocks, checked over seeds.

Each seed runs the nodes inside a Simulation with a fault plan drawn from
it (``@pytest.mark.tidal_sim``: latency, bad links, partitions that heal,
clocks that drift and jump, simultaneous events in a seeded order) and
checks the logs against happened-before, rebuilt from the logs alone: vector timestamps order exactly the pairs where one event could have
caused the other; Lamport timestamps respect every such pair.
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers import course_program, course_sim_output, run_course_real

from tidal.sim import Simulation, Swarm

clocks = course_program("clocks")
_launch = course_program("_launch")


# Every kind of fault but crashes (a crashed node's log, and so part of the
# happened-before graph, would be lost), within the half second the nodes talk for;
# TCP stalls across a partition and resumes when it heals.
FAULTS = Swarm(kinds=("partition", "loss", "link", "drift", "step"), horizon=0.5)


def run_nodes(simulation: Simulation) -> dict[str, Any]:
    _launch.add_nodes(simulation, clocks.node, clocks.NAMES, deadline=300)
    results = simulation.run().results
    assert all(isinstance(log, list) for log in results.values()), results
    return results


@pytest.mark.tidal_sim(seeds=40, faults=FAULTS, explore=True)
def test_vector_clocks_order_exactly_happened_before(sim: Simulation) -> None:
    counts = clocks.check(run_nodes(sim))
    assert counts["vector_wrong"] == 0 and counts["lamport_wrong"] == 0, counts
    assert counts["ordered"] > 0 and counts["concurrent"] > 0, counts


def test_check_catches_a_wrong_clock() -> None:
    """A receive that forgets to merge the sender's vector is caught."""
    results = run_nodes(Simulation(1, faults=FAULTS))
    log = next(log for log in results.values() if any(e["kind"] == "receive" for e in log))
    receive = next(e for e in log if e["kind"] == "receive")
    receive["vector"] = [0] * len(receive["vector"])
    assert clocks.check(results)["vector_wrong"] > 0


def test_sim_output_is_the_same_for_a_seed() -> None:
    first = course_sim_output("clocks", "--seed", "5")
    assert "vector clocks order exactly those pairs: yes" in first


def test_real_run() -> None:
    for loop, out in run_course_real("clocks").items():
        assert out.count(" events, Lamport clock ") == len(clocks.NAMES), (loop, out)
        assert "vector clocks order exactly those pairs: yes" in out, (loop, out)
        assert "Lamport clocks respect happened-before: yes" in out, (loop, out)
