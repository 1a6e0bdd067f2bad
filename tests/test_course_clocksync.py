"""examples/distributed/clocksync.py: Cristian and Berkeley, checked over seeds.

Under ``@pytest.mark.tidal_sim`` each seed draws its fault plan: clocks'
offsets and drift, latency, bad links, lost, duplicated and reordered
datagrams, partitions, then calm.  The true error of every synchronisation must
stay within the bound the algorithm promises (half the round trip the node
measured; the sum of two for Berkeley's pairs), and every node must be
synchronised again once the network is calm.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
from helpers import course_program, course_sim_output, run_course_real

from tidal.sim import Clock, Simulation, Swarm

clocksync = course_program("clocksync")
_launch = course_program("_launch")
ROUNDS = 8


# Offsets (up to 1 s) and drift (up to 1000 ppm) set at the start, latency,
# lost, duplicated and reordered datagrams, bad links, partitions: all
# within the first 70% of the 5 s the rounds take, then calm.  Not crashes
# (a restarted node's clock would start afresh), nor clock steps (the check
# models each clock as an offset and a drift).
FAULTS = Swarm(kinds=("partition", "loss", "link", "drift"), max_drift=1e-3, horizon=5.0)


def run_nodes(algorithm: str, simulation: Simulation) -> dict[str, Any]:
    """Run `algorithm`; its check (true errors against bounds), and when the calm began."""
    node = clocksync.cristian if algorithm == "cristian" else clocksync.berkeley
    _launch.add_nodes(simulation, node, clocksync.NAMES, rounds=ROUNDS, deadline=60)
    result = simulation.run()
    assert all(isinstance(r, dict) for r in result.results.values()), result.results
    model = dict.fromkeys(clocksync.NAMES, (0.0, 0.0))
    for fault in result.plan.faults if result.plan else ():
        if isinstance(fault, Clock):
            model[fault.host] = (fault.offset or 0.0, fault.drift or 0.0)
    calm = result.plan.liveness if result.plan and result.plan.liveness else 0.0
    return {"calm": calm, **clocksync.check(algorithm, result.results, model)}


@pytest.mark.tidal_sim(seeds=40, faults=FAULTS, explore=True)
@pytest.mark.parametrize("algorithm", ["cristian", "berkeley"])
def test_offsets_converge_within_the_promised_bound(sim: Simulation, algorithm: str) -> None:
    c = run_nodes(algorithm, sim)
    assert c["over"] == 0, c
    assert c["last"] > c["calm"], f"a node not synchronised once calm: {c}"


def test_check_catches_a_clock_off_by_more_than_its_bound() -> None:
    simulation = Simulation(1)
    _launch.add_nodes(simulation, clocksync.cristian, clocksync.NAMES, rounds=ROUNDS)
    model = clocksync.draw_model(1)
    for name, (offset, drift) in model.items():
        simulation.clock(name, offset=offset, drift=drift)
    results = simulation.run().results
    assert clocksync.check("cristian", results, model)["over"] == 0
    for result in results.values():
        for entry in result["log"]:
            entry["adjustment"] += 2 * entry["bound"]
    assert clocksync.check("cristian", results, model)["over"] > 0


def test_a_correction_overtaken_by_the_next_poll_is_not_applied() -> None:
    """Berkeley's corrections are relative to the clock the round measured.
    Here (seed 337) n1's round-0 correction is held back on a reordering
    link until after round 1 has measured n1 again: applying it would count
    it twice (round 1 corrects the whole offset already), 270 ms off."""
    simulation = Simulation(337)
    _launch.add_nodes(simulation, clocksync.berkeley, clocksync.NAMES, rounds=3)
    model = clocksync.draw_model(1)
    for name, (offset, drift) in model.items():
        simulation.clock(name, offset=offset, drift=drift)
    slow = functools.partial(simulation.link, "n0", "n1", both_ways=False)
    simulation.at(0.5, functools.partial(slow, latency=(0.25, 0.25), reorder=1.0))
    simulation.at(0.51, functools.partial(slow, latency=(0.0005, 0.002), reorder=0.0))
    results = simulation.run().results
    assert [entry["round"] for entry in results["n1"]["log"]] == [1, 2]  # round 0's came late
    assert clocksync.check("berkeley", results, model)["over"] == 0


def test_sim_output_is_the_same_for_a_seed() -> None:
    first = course_sim_output("clocksync", "--seed", "5")
    assert first.count("0 of ") == 2, first


def test_real_run() -> None:
    for loop, out in run_course_real("clocksync", "--rounds", "1").items():
        assert out.startswith("cristian: n0 is the server\n"), (loop, out)
        # (How many answers came in time depends on the machine's load.)
        assert out.count(" beyond their bound") == 2, (loop, out)
