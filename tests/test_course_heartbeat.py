"""examples/distributed/heartbeat.py: both failure detectors suspect a
crashed node within their bound, over seeds (which node, when, which link is
slow, whose clock drifts); false suspicions only on the slow link, counted;
the program replayable from its seed and runnable for real."""

from __future__ import annotations

from typing import Any

import pytest

from helpers import course_program, course_sim_output, run_course_real

from tidal import sim as tidal_sim

heartbeat = course_program("heartbeat")
_launch = course_program("_launch")


def run_detectors(sim: tidal_sim.Simulation) -> tuple[dict[str, Any], dict[str, Any]]:
    """The seed's plan (crash, slow link, drift) run: (the plan, the live nodes' results)."""
    plan = heartbeat.draw_plan(sim.seed)
    _launch.add_nodes(
        sim, heartbeat.node, heartbeat.NODES, duration=heartbeat.DURATION, lifetimes={}
    )
    heartbeat.apply_plan(sim, plan)
    results = sim.run(until=heartbeat.DURATION + 1).results
    assert isinstance(results.pop(plan["crashed"]), tidal_sim.HostCrashed)
    return plan, results


@pytest.mark.tidal_sim(seeds=40, faults=False)
def test_a_crash_is_suspected_within_the_bound(sim: tidal_sim.Simulation) -> None:
    plan, results = run_detectors(sim)
    assert heartbeat.check(results, plan) == []


def test_the_slow_link_fools_both_detectors_now_and_then() -> None:
    """Up to 250 ms of jitter and 10% loss: false suspicions, counted, and
    only ever between the two ends of the slow link."""
    fooled = {"fixed": 0, "phi": 0}
    for seed in range(1, 6):
        plan, results = run_detectors(tidal_sim.Simulation(seed))
        for kind in fooled:
            wrong = {(name, peer) for name, r in results.items() for peer in r[kind]["false"]}
            assert all({a, b} == set(plan["slow"]) for a, b in wrong), (seed, kind, wrong)
            fooled[kind] += bool(wrong)
    assert all(fooled.values()), fooled


def test_without_the_crash_nothing_is_suspected_for_long() -> None:
    """The detectors' other half: on good links, no live node is ever suspected."""
    s = tidal_sim.Simulation(3)
    _launch.add_nodes(s, heartbeat.node, heartbeat.NODES, duration=heartbeat.DURATION, lifetimes={})
    results: dict[str, Any] = s.run().results
    for name, result in results.items():
        for kind in ("fixed", "phi"):
            assert result[kind] == {"suspected": {}, "false": []}, (name, kind)


def test_a_seed_prints_the_same_run_every_time() -> None:
    first = course_sim_output("heartbeat", "--seed", "3")
    assert first.splitlines()[-1].startswith("check: crash suspected within the bound")


def test_heartbeat_runs_for_real() -> None:
    for loop, out in run_course_real("heartbeat").items():
        lines = out.splitlines()
        # Real time on a busy machine may stretch the delays past the bound:
        # assert only that every live node saw the crash.
        for line, kind in zip(lines[1:3], ("fixed", "phi  ")):
            assert line.startswith(f"{kind}: n4's crash at 1.00 s seen after "), (loop, lines)
            assert " - " not in line.split("seen after")[1], (loop, lines)
