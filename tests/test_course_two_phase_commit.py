"""examples/distributed/two_phase_commit.py: atomicity, validity and
termination over seeds with a coordinator crash and restart, a participant
cut off and another crashed; the planted timeout abort (--buggy) found by the
search; the program replayable from its seed and runnable for real."""

from __future__ import annotations

from typing import Any

import pytest

from course import run_program
from tidal import sim

import _launch  # noqa: E402  (examples/distributed, on sys.path through course)
import two_phase_commit as tpc


def run_2pc(seed: int, buggy: bool = False) -> tuple[list[str], Any]:
    """(violated properties, the coordinator's outcomes) of one run under the seed's faults."""
    s = sim.Simulation(seed)
    journal: list[Any] = []
    disks: dict[str, dict[str, str]] = {}
    _launch.add_nodes(
        s, tpc.node, ["coordinator", *tpc.PARTICIPANTS], disks=disks, journal=journal, buggy=buggy
    )
    tpc.plan_faults(s, [])
    results = s.run(until=30.0).results
    return tpc.check(journal, disks), results["coordinator"]


def test_all_participants_decide_the_same_over_seeds() -> None:
    for seed in range(80):
        problems, outcomes = run_2pc(seed)
        assert problems == [], f"seed {seed}"
        assert isinstance(outcomes, list) and len(outcomes) == tpc.TRANSACTIONS, (seed, outcomes)


def test_deciding_on_a_timeout_is_found_by_a_seed_search() -> None:
    found = next((seed for seed in range(80) if run_2pc(seed, buggy=True)[0]), None)
    assert found is not None, "no seed in 0..79 caught the uncertain participant's abort"
    assert run_2pc(found, buggy=True)[0][0].startswith("atomicity: ")


def test_a_seed_prints_the_same_run_every_time() -> None:
    first = run_program("two_phase_commit", "--sim", "--seed", "15", "--buggy")
    assert first == run_program("two_phase_commit", "--sim", "--seed", "15", "--buggy")
    assert first.splitlines()[-1].startswith("check: atomicity: t1 decided coordinator commit")


@pytest.mark.parametrize("loop", ["asyncio", "tidal"])
def test_two_phase_commit_runs_for_real(loop: str) -> None:
    lines = run_program("two_phase_commit", "--real", "--loop", loop).splitlines()
    assert lines[-1] == "check: atomicity, validity and termination hold", lines
