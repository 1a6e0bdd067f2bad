"""examples/distributed/raft.py: Raft's safety over seeds of swarm faults
(loss, partitions, clock faults, crashes and restarts of servers), the
planted --buggy vote found, replayed and shrunk by the seed search, the
program replayable from its seed and runnable for real."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from helpers import course_program, course_sim_output, run_course_real

from tidal import sim as tidal_sim

raft = course_program("raft")
_launch = course_program("_launch")


def raft_scenario(sim: tidal_sim.Simulation, buggy: bool = False) -> None:
    """Five servers and the client under the seed's faults: Raft's
    properties hold, and the client's commands are all committed."""
    journal: list[Any] = []
    disks: dict[str, dict[str, Any]] = {}
    _launch.add_nodes(
        sim, raft.node, [*raft.SERVERS, "client"], disks=disks, journal=journal, buggy=buggy
    )
    results = sim.run(until=12.0).results
    problems = raft.check(journal, disks)
    assert not problems, "; ".join(problems)
    assert results["client"] == len(raft.COMMANDS), results["client"]


@pytest.mark.tidal_sim(seeds=40, faults=raft.swarm())
def test_raft_is_safe_and_live(sim: tidal_sim.Simulation) -> None:
    raft_scenario(sim)


def test_the_planted_vote_bug_is_found_replayed_and_shrunk(tmp_path: Any) -> None:
    found = tidal_sim.search(
        functools.partial(raft_scenario, buggy=True),
        40,
        faults=raft.swarm(),
        trace_dir=str(tmp_path),
        max_shrink_runs=15,
    )
    failure = found.failure
    assert failure is not None, "no seed in 0..39 caught the vote granted without the log check"
    assert "leader completeness" in str(failure.error)
    assert failure.replayed  # the same failure, the same trace hash
    assert failure.shrunk is not None and failure.plan is not None
    assert failure.shrunk.weight < failure.plan.weight
    # The same seed, the correct vote: safe.
    outcome = tidal_sim.run_seed(raft_scenario, failure.seed, raft.swarm())
    assert outcome.error is None, outcome.error


def test_a_seed_prints_the_same_run_every_time() -> None:
    lines = course_sim_output("raft", "--seed", "0", "--buggy").splitlines()
    assert lines[3].startswith("safety: leader completeness: n3 leads term 6"), lines
    assert lines[4:6] == ["faults (swarm plan of seed 0):", "  network: the simulation defaults"]


def test_raft_runs_for_real() -> None:
    for loop, out in run_course_real("raft").items():
        lines = out.splitlines()
        assert lines[2].startswith(f"client: {len(raft.COMMANDS)} commands committed"), (
            loop,
            lines,
        )
        assert lines[3].endswith("hold"), (loop, lines)
