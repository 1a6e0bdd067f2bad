"""examples/distributed/two_phase_commit.py: atomicity, validity and
termination over seeds with a coordinator crash and restart, a participant
cut off and another crashed; the planted timeout abort (--buggy) found by the
search; the program replayable from its seed and runnable for real."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from helpers import course_program, course_sim_output, run_course_real

from tidal import sim as tidal_sim

tpc = course_program("two_phase_commit")
_launch = course_program("_launch")


def two_phase_commit(sim: tidal_sim.Simulation, buggy: bool = False) -> None:
    """The coordinator and participants under the seed's crash, cut and
    restart: atomicity, validity and termination hold; all transactions end."""
    journal: list[Any] = []
    disks: dict[str, dict[str, str]] = {}
    _launch.add_nodes(
        sim,
        tpc.node,
        ["coordinator", *tpc.PARTICIPANTS],
        disks=disks,
        journal=journal,
        buggy=buggy,
    )
    tpc.plan_faults(sim, [])
    outcomes = sim.run(until=30.0).results["coordinator"]
    problems = tpc.check(journal, disks)
    assert not problems, "; ".join(problems)
    assert isinstance(outcomes, list) and len(outcomes) == tpc.TRANSACTIONS, outcomes


# The program's own faults (a coordinator crash in the middle of the
# transactions), not a swarm plan: they are what 2PC is about.
@pytest.mark.tidal_sim(seeds=40, faults=False)
def test_all_participants_decide_the_same(sim: tidal_sim.Simulation) -> None:
    two_phase_commit(sim)


def test_deciding_on_a_timeout_is_found_by_a_seed_search() -> None:
    found = tidal_sim.search(
        functools.partial(two_phase_commit, buggy=True), 80, faults=None, shrink_plan=False
    )
    assert found.failure is not None, "no seed in 0..79 caught the uncertain participant's abort"
    assert str(found.failure.error).startswith("atomicity: ")


def test_a_seed_prints_the_same_run_every_time() -> None:
    first = course_sim_output("two_phase_commit", "--seed", "15", "--buggy")
    assert first.splitlines()[-1].startswith("check: atomicity: t1 decided coordinator commit")


def test_two_phase_commit_runs_for_real() -> None:
    for loop, out in run_course_real("two_phase_commit").items():
        lines = out.splitlines()
        assert lines[-1] == "check: atomicity, validity and termination hold", (loop, lines)
