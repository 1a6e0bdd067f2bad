"""tidal.sim fault plans, swarm draws, seed search, replay and shrinking.

The planted bugs (tidal.sim.examples) are small real asyncio programs
over the simulated network, each with a bug of a different kind: a lost
acknowledgement that makes a client retry a deposit the bank applies twice,
a split brain when a candidate that hears no one elects itself, a lease two
clients hold at once when a client's clock runs slow.  Each is found by the
seed search, replayed by its seed and by its plan, and shrunk to faults that
are each needed; the correct version of each passes every seed searched.
(The simulation is tidal's alone: there is no asyncio-loop twin to compare.)
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from tidal import sim
from tidal.sim import examples as sim_programs
from tidal.trace import check


def _two_hosts(s: sim.Simulation) -> sim.SimResult:
    async def ticker(name: str) -> int:
        ticks = 0
        for _ in range(40):
            await asyncio.sleep(0.5)
            ticks += 1
        return ticks

    s.host("a", ticker, "a")
    s.host("b", ticker, "b")
    s.host("c", ticker, "c")
    return s.run(until=30)


def test_plan_round_trips_through_json_and_reads_as_a_list() -> None:
    plans = [sim.swarm(seed, ["a", "b", "c"], 30.0) for seed in range(30)]
    plans.append(
        sim.FaultPlan(
            (
                sim.Partition(1.0, {"a"}, {"b", "c"}, one_way=True, duration=2.5),
                sim.Heal(2.0, "a", "b"),
                sim.Crash(3.0, "b", downtime=0.25),
                sim.Restart(4.0, "c"),
                sim.Clock(5.0, "c", offset=0.5, drift=-0.001, step=1.5),
                sim.Link(6.0, "a", "c", latency=(0.01, 0.02), drop=0.5, both_ways=False),
            ),
            latency=(0.001, 0.003),
            drop=0.1,
            liveness=20.0,
            explore=True,
        )
    )
    for plan in plans:
        again = sim.FaultPlan.loads(json.dumps(json.loads(plan.dumps())))
        assert again == plan
        assert str(again) == str(plan)
    text = str(plans[-1])
    assert "partition {a} -> {b, c} for 2.5 s" in text
    assert "crash b, restarts after 250 ms" in text
    assert "link a -> c: latency 10 ms..20 ms, drop 50%" in text
    assert "liveness" in text.splitlines()[-1]
    # The draw is a function of the seed; seeds differ in the kinds of trouble.
    assert sim.swarm(7, ["a", "b", "c"], 30.0) == sim.swarm(7, ["a", "b", "c"], 30.0)
    kinds = {frozenset(type(f).__name__ for f in p.faults) for p in plans[:-1]}
    assert len(kinds) >= 6
    assert any(p.drop for p in plans) and any(not p.drop for p in plans)


def test_swarm_replays_from_its_plan_and_leaves_the_network_draws_alone() -> None:
    first = _two_hosts(sim.Simulation(3, faults="swarm"))
    assert first.plan is not None and first.plan.origin == "swarm, seed 3"
    replayed = _two_hosts(sim.Simulation(3, faults=first.plan))
    assert replayed.trace_hash == first.trace_hash
    # A plan with the network's own defaults and no faults is the plain run:
    # the swarm draw took nothing from the network's random stream.
    calm = sim.FaultPlan()
    assert (
        _two_hosts(sim.Simulation(3, faults=calm)).trace_hash
        == _two_hosts(sim.Simulation(3)).trace_hash
    )
    only_crashes = sim.Swarm(kinds={"crash"}, crash=("b",))
    for seed in range(10):
        assert all(
            isinstance(f, sim.Crash) and f.host == "b"
            for f in only_crashes.draw(seed, "abc", 30).faults
        )


def test_a_plan_replays_in_another_process() -> None:
    child = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, sys.argv[1])
        import test_sim_search
        from tidal import sim
        res = test_sim_search._two_hosts(sim.Simulation(11, faults="swarm"))
        print(res.trace_hash)
        print(res.plan.dumps())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", child, os.path.dirname(__file__)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    trace_hash, plan_json = out.split("\n", 1)
    plan = sim.FaultPlan.loads(plan_json)
    assert _two_hosts(sim.Simulation(11, faults=plan)).trace_hash == trace_hash


def test_each_fault_kind_acts_at_its_time_and_liveness_restarts() -> None:
    plan = sim.FaultPlan(
        (
            sim.Partition(1.0, "a", None, one_way=True, duration=2.0),
            sim.Crash(2.0, "b"),  # stays down until the liveness phase
            sim.Crash(2.5, "c", downtime=1.0),
            sim.Clock(4.0, "a", step=3.0),
            sim.Link(5.0, "a", "b", drop=1.0, duration=1.0),
        ),
        drop=0.2,
        liveness=8.0,
    )
    s = sim.Simulation(1, faults=plan, keep_trace=True)
    res = _two_hosts(s)
    events = [line.split(" ", 1) for line in res.trace]
    timed = [(int(ns), what) for ns, what in events if not what.startswith(("udp", "tcp"))]
    expected = [
        (1_000_000_000, "partition ['a'] -> ['b', 'c']"),
        (2_000_000_000, "crash b"),
        (2_500_000_000, "crash c"),
        (3_000_000_000, "heal ['a'] ['b', 'c']"),
        (3_500_000_000, "restart c"),
        (4_000_000_000, "clock a offset=None drift=None step=3.0"),
        (5_000_000_000, "link a <-> b None 1.0 None None"),
        (6_000_000_000, "link a <-> b None None None None"),
        (8_000_000_000, "restart b"),
    ]
    for item in expected:
        assert any(t == item[0] and w.startswith(item[1]) for t, w in timed), (item, timed)
    # b came back at liveness and finished its 40 ticks; c was restarted at 3.5 s.
    assert res.results == {"a": 40, "b": 40, "c": 40}
    assert res.time == pytest.approx(8.0 + 20.0)


def test_a_plan_does_not_keep_a_finished_run_going_or_rerun_finished_hosts() -> None:
    async def quick() -> str:
        await asyncio.sleep(1)
        return "done"

    plan = sim.FaultPlan((sim.Crash(5.0, "a", downtime=1.0), sim.Partition(7.0, "a")))
    s = sim.Simulation(0, faults=plan, keep_trace=True)
    s.host("a", quick)
    res = s.run(until=30)
    # The crash at 5 s found a's program done: nothing crashed or restarted.
    assert res.results == {"a": "done"}
    assert not any(" crash " in line or " boot a 2" in line for line in res.trace)


# program, the flag that plants the bug when False, the swarm, how many seeds,
# and what the shrunk plan must still have: the trouble the bug needs.
PLANTED = {
    "double-apply": (
        sim_programs.deposits,
        "dedup",
        sim.Swarm(),
        40,
        lambda plan: (
            plan.drop or plan.duplicate or any(isinstance(f, sim.Crash) for f in plan.faults)
        ),
    ),
    "split-brain": (
        sim_programs.election,
        "quorum",
        sim.Swarm(),
        12,
        lambda plan: any(isinstance(f, sim.Partition) for f in plan.faults),
    ),
    "lease-overlap": (
        sim_programs.lease,
        "margin",
        sim_programs.LEASE_SWARM,
        12,
        lambda plan: any(isinstance(f, sim.Clock) and f.drift for f in plan.faults),
    ),
}


@pytest.mark.parametrize("bug", list(PLANTED))
def test_planted_bug_is_found_replayed_and_shrunk(bug: str, tmp_path: Any) -> None:
    program, flag, swarm, seeds, needs = PLANTED[bug]
    buggy = functools.partial(program, **{flag: False})
    found = sim.search(
        buggy,
        seeds,
        faults=swarm,
        trace_dir=str(tmp_path),
        replay=lambda seed, plan: f"replay {seed} {plan}",
    )
    failure = found.failure
    assert failure is not None, f"{bug}: not found in {seeds} seeds"
    assert isinstance(failure.error, AssertionError)
    assert failure.replayed
    assert failure.plan is not None and failure.shrunk is not None

    # Replayed by its seed, and by its plan (from its file), identically.
    by_seed = sim.run_seed(buggy, failure.seed, swarm)
    by_plan = sim.run_seed(buggy, failure.seed, sim.FaultPlan.load(failure.plan_path or ""))
    assert str(by_seed.error) == str(by_plan.error) == str(failure.error)
    assert by_seed.trace_hash == by_plan.trace_hash

    # Shrunk: smaller, still failing, and every remaining fault is needed.
    shrunk = sim.FaultPlan.load(failure.shrunk_plan_path or "")
    assert shrunk == failure.shrunk
    assert shrunk.weight < failure.plan.weight
    assert needs(shrunk), shrunk
    assert isinstance(sim.run_seed(buggy, failure.seed, shrunk).error, AssertionError)
    for index in range(len(shrunk.faults)):
        without = dataclasses.replace(
            shrunk, faults=shrunk.faults[:index] + shrunk.faults[index + 1 :]
        )
        assert not isinstance(sim.run_seed(buggy, failure.seed, without).error, AssertionError), (
            f"{bug}: fault {index} of the shrunk plan is not needed:\n{shrunk}"
        )

    # The report says it all; the trace has a process per host, in virtual time.
    report = failure.report()
    for text in (
        f"seed {failure.seed} failed",
        "PYTHONHASHSEED",
        "fault plan (swarm",
        "shrunk plan",
        f"replay {failure.seed} None",
        f"replay {failure.seed} {failure.shrunk_plan_path}",
        "same trace hash",
    ):
        assert text in report, (text, report)
    with open(failure.trace_path or "") as f:
        trace = json.load(f)
    assert check(trace) == []
    processes = {e["args"]["name"] for e in trace["traceEvents"] if e.get("name") == "process_name"}
    assert "simulation" in processes and len(processes) >= 3, processes
    assert all(p == "simulation" or p.startswith("host ") for p in processes)
    assert max(e.get("ts", 0) + e.get("dur", 0) for e in trace["traceEvents"]) <= 20e6

    # The correct version passes every seed the search covered.
    correct = sim.search(functools.partial(program, **{flag: True}), seeds, faults=swarm)
    assert correct.ok, correct.failure and correct.failure.report()
    assert correct.seeds_run == seeds


def test_shrinking_turns_schedule_exploration_off_when_it_is_not_needed(tmp_path: Any) -> None:
    buggy = functools.partial(sim_programs.deposits, dedup=False)
    found = sim.search(buggy, 20, trace_dir=str(tmp_path), explore=True)
    assert found.failure is not None and found.failure.plan is not None
    assert found.failure.plan.explore is True
    assert found.failure.shrunk is not None and not found.failure.shrunk.explore


def test_jobs_give_each_seed_the_serial_run_and_the_same_first_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    buggy = functools.partial(sim_programs.deposits, dedup=False)
    # Workers hash strings as this process does only with a fixed secret.
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    with pytest.raises(sim.HashSeedMismatch, match="worker processes need PYTHONHASHSEED"):
        sim.search(buggy, 12, jobs=2)
    monkeypatch.setenv("PYTHONHASHSEED", "0")  # (deposits iterates no set of strings)
    serial = sim.search(buggy, 12, keep_hashes=True, shrink_plan=False)
    parallel = sim.search(buggy, 12, jobs=2, keep_hashes=True, shrink_plan=False)
    assert serial.failure is not None and parallel.failure is not None
    assert parallel.failure.seed == serial.failure.seed
    assert parallel.seeds_run == serial.seeds_run
    assert parallel.hashes == serial.hashes
    assert str(parallel.failure.error) == str(serial.failure.error)
    with pytest.raises(TypeError, match="must pickle"):
        sim.search(lambda s: None, 2, jobs=2)


def test_the_command_line_searches_reports_and_replays(tmp_path: Any) -> None:
    scenario = tmp_path / "scenario.py"
    scenario.write_text(
        textwrap.dedent(
            """
            from tidal.sim import examples as sim_programs

            def scenario(sim):
                sim_programs.deposits(sim, dedup=False)

            def correct(sim):
                sim_programs.deposits(sim, dedup=True)
            """
        )
    )
    # The hash seed the command would start itself again with when it is
    # unset (tests/test_sim_cli.py checks that): set, each run starts once.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "PYTHONHASHSEED": "0"}

    def tidal_sim(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tidal", "sim", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
        )

    found = tidal_sim("scenario.py", "--seeds", "10", "--trace-dir", str(tmp_path))
    assert found.returncode == 1, found.stderr
    report = found.stdout
    seed = int(report.split("seed ", 1)[1].split()[0])
    assert f"replay: python -m tidal sim scenario.py --seed={seed}\n" in report
    shrunk_plan = tmp_path / f"seed-{seed}.shrunk-plan.json"
    assert f"--seed={seed} --plan={shrunk_plan}" in report
    for replay in ([f"--seed={seed}"], [f"--seed={seed}", f"--plan={shrunk_plan}"]):
        again = tidal_sim("scenario.py", *replay, "--no-shrink")
        assert again.returncode == 1
        assert "AssertionError: balance" in again.stdout
    passed = tidal_sim("scenario.py::correct", "--seeds", "5")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert passed.stdout.startswith("tidal.sim: 5 seeds passed")


def _two_crashes(s: sim.Simulation) -> None:
    async def idle() -> None:
        await asyncio.sleep(10)

    s.host("a", idle)
    s.host("b", idle)
    res = s.run(until=10)
    a_down, b_down = (isinstance(res.results[h], sim.HostCrashed) for h in "ab")
    if a_down and b_down:
        raise AssertionError("both down")  # the bug being shrunk
    if b_down:
        raise AssertionError("b down")  # another one, raised by another line


def test_shrinking_keeps_to_the_failure_it_started_from() -> None:
    plan = sim.FaultPlan((sim.Crash(1.0, "a"), sim.Crash(2.0, "b")))
    failed = sim.run_seed(_two_crashes, 0, plan)
    assert str(failed.error) == "both down" and failed.error is not None
    shrunk, runs = sim.shrink(_two_crashes, 0, plan, failed.error)
    # Without crash a it still raises AssertionError, but from the other line:
    # that is another bug, so both crashes stay.
    assert shrunk.faults == plan.faults, shrunk


def _pings(s: sim.Simulation) -> None:
    """a sends c a datagram every 100 ms: every one must arrive."""
    got: list[int] = []

    class Count(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            got.append(int(data))

    async def receiver() -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(Count, local_addr=("0.0.0.0", 9))
        await asyncio.sleep(5)

    async def sender() -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=("c", 9)
        )
        for n in range(30):
            transport.sendto(b"%d" % n)
            await asyncio.sleep(0.1)

    s.host("a", sender)
    s.host("b", sender)
    s.host("c", receiver)
    s.run(until=5)
    if len(got) != 60:
        raise AssertionError(f"{60 - len(got)} datagrams lost")


def test_shrinking_narrows_a_partition_to_the_hosts_and_direction_that_matter() -> None:
    plan = sim.FaultPlan((sim.Partition(1.0, {"a", "b"}, {"c"}, duration=2.0),))
    failed = sim.run_seed(_pings, 0, plan)
    assert failed.error is not None
    shrunk, _ = sim.shrink(_pings, 0, plan, failed.error)
    (partition,) = shrunk.faults
    assert isinstance(partition, sim.Partition)
    assert partition.one_way and len(tuple(partition.a)) == 1 and partition.b == ("c",)
    assert partition.duration is not None and partition.duration < 0.2
