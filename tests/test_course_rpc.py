"""examples/distributed/rpc.py: at-most-once RPC over lossy UDP, over seeds
(loss, duplication, reordering, a partition, a server crash and restart):
no request runs twice, every call is answered with its execution's value;
without the reply cache (--buggy) retries run twice; the program replayable
from its seed and runnable for real."""

from __future__ import annotations

from typing import Any

import pytest

from course import run_program
from tidal import sim

import _launch  # noqa: E402  (examples/distributed, on sys.path through course)
import rpc


def run_rpc(seed: int, buggy: bool = False) -> list[str]:
    s = sim.Simulation(seed)
    journal: list[Any] = []
    _launch.add_nodes(
        s,
        rpc.node,
        ["server", *rpc.CLIENTS],
        disks={},
        journal=journal,
        calls=rpc.CALLS,
        buggy=buggy,
    )
    rpc.plan_faults(s, [])
    return rpc.check(s.run(until=30.0).results, journal, rpc.CALLS)


def test_every_call_runs_once_and_is_answered_over_seeds() -> None:
    for seed in range(100):
        assert run_rpc(seed) == [], f"seed {seed}"


def test_without_the_reply_cache_a_retry_runs_twice() -> None:
    problems = run_rpc(0, buggy=True)
    assert problems and "executed twice" in problems[0], problems


def test_a_seed_prints_the_same_run_every_time() -> None:
    first = run_program("rpc", "--sim", "--seed", "4")
    assert first == run_program("rpc", "--sim", "--seed", "4")
    assert first.splitlines()[1] == f"{3 * rpc.CALLS} calls answered, {3 * rpc.CALLS} executions"


@pytest.mark.parametrize("loop", ["asyncio", "tidal"])
def test_rpc_runs_for_real(loop: str) -> None:
    lines = run_program("rpc", "--real", "--loop", loop).splitlines()
    assert lines[2] == "check: every call answered, each executed once, with its own value", lines
