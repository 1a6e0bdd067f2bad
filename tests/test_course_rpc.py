"""examples/distributed/rpc.py: at-most-once RPC over UDP, over seeds of
swarm faults (loss, duplication, reordering, partitions, clock faults,
server crashes and restarts): no request runs twice, every call is answered
with its execution's value; without the reply cache (--buggy) a retry runs
again; the program replayable from its seed and runnable for real."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from helpers import course_program, course_sim_output, run_course_real

from tidal import sim as tidal_sim

rpc = course_program("rpc")
_launch = course_program("_launch")


def rpc_scenario(sim: tidal_sim.Simulation, buggy: bool = False) -> None:
    journal: list[Any] = []
    _launch.add_nodes(
        sim,
        rpc.node,
        ["server", *rpc.CLIENTS],
        disks={},
        journal=journal,
        calls=rpc.CALLS,
        buggy=buggy,
    )
    problems = rpc.check(sim.run(until=8.0).results, journal, rpc.CALLS)
    assert not problems, "; ".join(problems)


@pytest.mark.tidal_sim(seeds=40, faults=rpc.swarm())
def test_every_call_runs_once_and_is_answered(sim: tidal_sim.Simulation) -> None:
    rpc_scenario(sim)


def test_without_the_reply_cache_a_retry_runs_again() -> None:
    found = tidal_sim.search(
        functools.partial(rpc_scenario, buggy=True), 20, faults=rpc.swarm(), shrink_plan=False
    )
    assert found.failure is not None
    assert "executed twice" in str(found.failure.error)


def test_a_seed_prints_the_same_run_every_time() -> None:
    first = course_sim_output("rpc", "--seed", "1", "--buggy")
    check = first.splitlines()[2]
    assert check.startswith("check: ") and "executed twice" in check, first


def test_rpc_runs_for_real() -> None:
    for loop, out in run_course_real("rpc").items():
        lines = out.splitlines()
        assert lines[-1] == "check: every call answered, each executed once, with its own value", (
            loop,
            lines,
        )
