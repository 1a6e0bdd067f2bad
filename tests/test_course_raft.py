"""examples/distributed/raft.py: Raft's safety over seeds, crashes, restarts,
partitions and a lossy network; the planted --buggy vote found by the search;
the program replayable from its seed and runnable for real."""

from __future__ import annotations

from typing import Any

import pytest

from course import run_program
from tidal import sim

import _launch  # noqa: E402  (examples/distributed, on sys.path through course)
import raft


def run_raft(seed: int, buggy: bool = False) -> tuple[list[str], Any]:
    """One run under the seed's faults: (Raft's violated properties, the client's result)."""
    s = sim.Simulation(seed)
    journal: list[Any] = []
    disks: dict[str, dict[str, Any]] = {}
    peers = _launch.add_nodes(
        s, raft.node, [*raft.SERVERS, "client"], disks=disks, journal=journal, buggy=buggy
    )
    raft.plan_faults(s, peers, [])
    result = s.run(until=12.0)
    return raft.check(journal, disks), result.results["client"]


def test_raft_is_safe_and_live_over_seeds() -> None:
    for seed in range(40):
        problems, committed = run_raft(seed)
        assert problems == [], f"seed {seed}: {problems}"
        assert committed == len(raft.COMMANDS), f"seed {seed}: the client ended with {committed!r}"


def test_the_planted_vote_bug_is_found_by_a_seed_search() -> None:
    found = next((seed for seed in range(40) if run_raft(seed, buggy=True)[0]), None)
    assert found is not None, "no seed in 0..39 caught the vote granted without the log check"
    assert run_raft(found, buggy=False)[0] == []  # the same faults, the correct vote: safe


def test_a_seed_prints_the_same_run_every_time() -> None:
    first = run_program("raft", "--sim", "--seed", "5", "--buggy")
    assert first == run_program("raft", "--sim", "--seed", "5", "--buggy")
    assert "leader completeness" in first.splitlines()[-1]


@pytest.mark.parametrize("loop", ["asyncio", "tidal"])
def test_raft_runs_for_real(loop: str) -> None:
    lines = run_program("raft", "--real", "--loop", loop).splitlines()
    assert lines[2].startswith(f"client: {len(raft.COMMANDS)} commands committed"), lines
    assert lines[3].endswith("hold"), lines
