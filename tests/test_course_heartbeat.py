"""examples/distributed/heartbeat.py: both failure detectors suspect a
crashed node within their bound, over seeds (which node, when, which link is
slow, whose clock drifts); false suspicions only on the slow link, counted;
the program replayable from its seed and runnable for real."""

from __future__ import annotations

from typing import Any

import pytest

from course import run_program
from tidal import sim

import _launch  # noqa: E402  (examples/distributed, on sys.path through course)
import heartbeat


def test_a_crash_is_suspected_within_the_bound_over_seeds() -> None:
    false = {"fixed": 0, "phi": 0}
    for seed in range(40):
        plan = heartbeat.draw_plan(seed)
        s = sim.Simulation(seed)
        _launch.add_nodes(
            s, heartbeat.node, heartbeat.NODES, duration=heartbeat.DURATION, lifetimes={}
        )
        heartbeat.apply_plan(s, plan)
        results = s.run(until=heartbeat.DURATION + 1).results
        assert isinstance(results.pop(plan["crashed"]), sim.HostCrashed)
        assert heartbeat.check(results, plan) == [], f"seed {seed}"
        for kind in false:
            false[kind] += sum(len(r[kind]["false"]) for r in results.values())
    # The slow link (up to 250 ms of jitter, 10% loss) fools both now and then.
    assert false["fixed"] > 0 and false["phi"] > 0, false


def test_without_the_crash_nothing_is_suspected_for_long() -> None:
    """The detectors' other half: on good links, no live node is ever suspected."""
    s = sim.Simulation(3)
    _launch.add_nodes(s, heartbeat.node, heartbeat.NODES, duration=heartbeat.DURATION, lifetimes={})
    results: dict[str, Any] = s.run().results
    for name, result in results.items():
        for kind in ("fixed", "phi"):
            assert result[kind] == {"suspected": {}, "false": []}, (name, kind)


def test_a_seed_prints_the_same_run_every_time() -> None:
    first = run_program("heartbeat", "--sim", "--seed", "3")
    assert first == run_program("heartbeat", "--sim", "--seed", "3")
    assert first.splitlines()[-1].startswith("check: crash suspected within the bound")


@pytest.mark.parametrize("loop", ["asyncio", "tidal"])
def test_heartbeat_runs_for_real(loop: str) -> None:
    lines = run_program("heartbeat", "--real", "--loop", loop).splitlines()
    # Real time on a busy machine may stretch the delays past the bound:
    # assert only that every live node saw the crash.
    for line, kind in zip(lines[1:3], ("fixed", "phi  ")):
        assert line.startswith(f"{kind}: n4's crash at 1.50 s seen after "), lines
        assert " - " not in line.split("seen after")[1], lines
