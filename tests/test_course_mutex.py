"""examples/distributed/mutex.py: Ricart-Agrawala, checked over seeds.

Each seed runs the nodes with the fault plan drawn from it
(``@pytest.mark.tidal_sim``): slow or lossy links, partitions (some one
way) that heal within TCP's timeout, and the order of simultaneous events
explored.  Never two nodes inside the critical
section at once; once the network heals, every request is granted.
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers import course_program, course_sim_output, run_course_real

from tidal.sim import Simulation, Swarm

mutex = course_program("mutex")
_launch = course_program("_launch")


# Partitions (some one way) that heal, bad links, latency: not crashes (a
# node that dies never replies, and Ricart-Agrawala waits for every reply),
# nor clock faults (the check compares the nodes' own clocks).
FAULTS = Swarm(kinds=("partition", "loss", "link"), horizon=0.6)


def run_nodes(simulation: Simulation) -> dict[str, Any]:
    _launch.add_nodes(simulation, mutex.node, mutex.NAMES, deadline=300)
    return simulation.run().results


@pytest.mark.tidal_sim(seeds=40, faults=FAULTS, explore=True)
def test_never_two_holders_and_every_request_granted(sim: Simulation) -> None:
    results = run_nodes(sim)
    c = mutex.check(results)
    assert not c["overlaps"], c
    assert c["granted"] == c["asked"], results


def test_check_sees_two_holders() -> None:
    results = run_nodes(Simulation(0, faults=FAULTS))
    first, second = results["n1"][0], results["n2"][0]  # type: ignore[index]
    second[1], second[2] = first[1], first[2] + 0.001
    assert mutex.check(results)["overlaps"]


def test_sim_output_is_the_same_for_a_seed() -> None:
    first = course_sim_output("mutex", "--seed", "5")
    assert "never two nodes inside at once: yes\nrequests granted: 12 of 12\n" in first


def test_real_run() -> None:
    for loop, out in run_course_real("mutex").items():
        assert "never two nodes inside at once: yes\nrequests granted: 12 of 12\n" in out, (
            loop,
            out,
        )
