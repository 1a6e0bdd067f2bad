"""``@pytest.mark.tidal_sim``: simulation seeds in a real pytest run of their own.

Each test writes a small suite (over the planted-bug programs of
tidal.sim.examples) and runs it in a child pytest
process, as a user's run would: the marker runs a test once per seed,
stops at the first failure and reports it with its replay commands, and
those commands replay it; ``--tidal-seeds``, ``--tidal-seed``,
``--tidal-plan`` and ``--tidal-jobs`` do what they say.
"""

from __future__ import annotations

import json
import os
import re
import shlex

import pytest

pytest_plugins = ["pytester"]

_SUITE = """
import json
import os

import pytest

from tidal.sim import examples as sim_programs


def _log(sim):
    with open(os.environ["SEED_LOG"], "a") as f:
        f.write(json.dumps([sim.seed, sim.result.trace_hash if sim.result else None,
                            sim.plan is not None]) + "\\n")


@pytest.mark.tidal_sim(seeds=30)
def test_double_apply(sim):
    try:
        sim_programs.deposits(sim, dedup=False)
    finally:
        _log(sim)


@pytest.mark.tidal_sim(seeds=12)
def test_deposits_ok(sim):
    sim_programs.deposits(sim, dedup=True)
    _log(sim)


@pytest.mark.tidal_sim(seeds=5, faults=False)
def test_without_faults(sim):
    sim_programs.deposits(sim, dedup=False)
    assert sim.plan is None
    _log(sim)


def test_unmarked(sim):
    assert sim.seed == 0 and sim.faults is None
"""


def _suite(pytester: pytest.Pytester) -> str:
    pytester.makepyfile(test_suite=_SUITE)
    log = str(pytester.path / "seeds.jsonl")
    os.environ["SEED_LOG"] = log  # (pytester restores the environment after the test)
    return log


def _seeds(log: str) -> list[list[object]]:
    with open(log) as f:
        lines = [json.loads(line) for line in f]
    os.remove(log)
    return lines


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # In this process (pytester's inline run), but for --tidal-jobs' workers;
    # the suite needs no asyncio plugins.
    return pytester.runpytest(
        "-q", "-p", "no:cacheprovider", "-p", "no:asyncio", "-p", "no:anyio", *args
    )


def test_marker_finds_reports_and_replays_a_failing_seed(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = _suite(pytester)
    monkeypatch.setenv("SEED_LOG", log)
    result = _run(pytester)
    result.assert_outcomes(passed=3, failed=1)
    out = result.stdout.str()
    seed = int(re.search(r"tidal.sim: seed (\d+) failed", out).group(1))  # type: ignore[union-attr]
    for text in (
        "AssertionError: balance",
        "PYTHONHASHSEED: ",
        f"fault plan (swarm, seed {seed}",
        "shrunk plan (",
        "replayed: the same failure, the same trace hash",
        f"replay: pytest test_suite.py::test_double_apply --tidal-seed={seed}",
    ):
        assert text in out, (text, out)
    trace = re.search(r"trace \(Perfetto[^:]*: (\S+)", out).group(1)  # type: ignore[union-attr]
    with open(trace) as f:
        assert json.load(f)["otherData"]["seed"] == seed
    shrunk = re.search(
        r"replay the shrunk plan: pytest \S+ (--tidal-seed=\d+ --tidal-plan=\S+)", out
    )
    assert shrunk is not None
    runs = _seeds(log)
    # Seeds 0..seed for the failing test, in order, each with its swarm plan;
    # the correct one passes its 12 seeds; faults=False runs without a plan.
    ran = [s for s, _, planned in runs if planned]
    assert ran[: seed + 1] == list(range(seed + 1))
    assert [s for s, _, planned in runs if not planned] == list(range(5))

    # The replay commands, as printed.
    replay = _run(pytester, "test_suite.py::test_double_apply", f"--tidal-seed={seed}")
    replay.assert_outcomes(failed=1)
    assert f"tidal.sim: seed {seed} failed" in replay.stdout.str()
    first = [h for s, h, _ in _seeds(log) if s == seed]
    original = [h for s, h, _ in runs if s == seed]
    assert first[0] == original[0]  # the same run, in another process
    replay = _run(pytester, "test_suite.py::test_double_apply", *shlex.split(shrunk.group(1)))
    replay.assert_outcomes(failed=1)
    assert "AssertionError: balance" in replay.stdout.str()
    # A seed that passes, passes.
    if seed > 0:
        _run(pytester, "test_suite.py::test_double_apply", "--tidal-seed=0").assert_outcomes(
            passed=1
        )


def test_seeds_option_and_jobs_give_the_serial_results(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = _suite(pytester)
    monkeypatch.setenv("SEED_LOG", log)
    _run(pytester, "test_suite.py::test_deposits_ok", "--tidal-seeds=3").assert_outcomes(passed=1)
    assert [s for s, _, _ in _seeds(log)] == [0, 1, 2]

    serial = _run(pytester, "test_suite.py::test_double_apply")
    serial_hashes: dict[int, str] = {}
    for s, h, _ in _seeds(log):  # (the first run of each seed: shrinking runs more)
        serial_hashes.setdefault(s, h)
    # Workers hash strings as this process does only if the secret is fixed.
    hash_seed = os.environ.get("PYTHONHASHSEED", "random")
    if hash_seed == "random":
        monkeypatch.delenv("PYTHONHASHSEED", raising=False)
        refused = _run(pytester, "test_suite.py::test_double_apply", "--tidal-jobs=2")
        assert refused.ret == pytest.ExitCode.USAGE_ERROR
        refused.stderr.fnmatch_lines(["*--tidal-jobs needs PYTHONHASHSEED set*"])
        # (This process's own secret stays random: the comparison below holds
        # because the suite's programs never iterate sets of strings.)
        monkeypatch.setenv("PYTHONHASHSEED", "0")
    parallel = _run(pytester, "test_suite.py::test_double_apply", "--tidal-jobs=2")
    parallel.assert_outcomes(failed=1)
    # The workers ran each seed (and maybe a few past the failure), then this
    # process ran the failing one again and shrank its plan.
    parallel_hashes: dict[int, str] = {}
    for s, h, _ in _seeds(log):
        parallel_hashes.setdefault(s, h)
    failed = re.compile(r"tidal.sim: seed (\d+) failed \(after (\d+) seeds?\)")
    serial_failure = failed.search(serial.stdout.str())
    parallel_failure = failed.search(parallel.stdout.str())
    assert serial_failure and parallel_failure
    assert parallel_failure.groups() == serial_failure.groups()
    seed = int(serial_failure.group(1))
    assert {s: parallel_hashes[s] for s in range(seed + 1)} == serial_hashes


def test_options_are_listed_and_inert_without_the_marker(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("-p", "no:asyncio", "-p", "no:anyio", "--help")
    result.stdout.fnmatch_lines(["*--tidal-seeds=N*", "*--tidal-seed=N*", "*--tidal-jobs=N*"])
    assert "--tidal-worker" not in result.stdout.str()
    pytester.makepyfile(
        test_plain="def test_plain():\n    assert True\n\ndef test_own(sim):\n    assert sim == 1\n",
        conftest="import pytest\n\n@pytest.fixture\ndef sim():\n    return 1\n",
    )
    _run(pytester, "test_plain.py", "--tidal-seeds=3").assert_outcomes(passed=2)
