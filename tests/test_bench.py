"""`make bench` / `python -m tidal bench` is a user-facing command: it must run end to end.

No timed assertions: numbers on a shared machine mean nothing here.  What is
checked is the harness: the plan, the workers on every loop, the C tools, every
cell sampled every round, the table, the Markdown/JSON and the chart.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tidal.bench import loadgen, report
from tidal.bench.sections import SECTIONS, Measurement

HAS_CC = bool(shutil.which("cc") or shutil.which("gcc"))
HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None
HAS_RLOOP = importlib.util.find_spec("rloop") is not None
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
HAS_HTTPTOOLS = importlib.util.find_spec("httptools") is not None


# The end-to-end run costs ~1 min of both cores (10,000-connection scaling,
# C tools, every contestant).  The harness does not depend on the Python
# version, so `make test` runs it once, on the default Python, in a job of its
# own (`make test-bench` sets TIDAL_BENCH_E2E=1); the report tests below run
# on every Python.
@pytest.mark.skipif(
    not os.environ.get("TIDAL_BENCH_E2E"),
    reason="end-to-end bench runs in `make test-bench` (TIDAL_BENCH_E2E=1)",
)
@pytest.mark.timeout(600)
def test_quick_bench_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "results"
    contestants = "asyncio,tidal-interp,tidal,C-epoll" + (",uvloop" if HAS_UVLOOP else "")
    contestants += ",rloop" if HAS_RLOOP else ""
    cmd = [
        sys.executable,
        "-m",
        "tidal",
        "bench",
        "--quick",
        "--duration",
        "0.1",
        "--micro-seconds",
        "0.02",
        "--contestants",
        contestants,
        # Not the sim section, which has tests of its own below and runs only
        # where a 3.12+ Python has the simulators it compares with.
        "--only",
        "micro,echo,tracing,http,scaling,memory",
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=560)
    stdout = proc.stdout
    assert proc.returncode == 0, stdout[-4000:] + proc.stderr[-4000:]

    # The plan comes first, the table after the rounds.
    assert stdout.index("estimated time") < stdout.index("round 1/2") < stdout.index("== micro")

    data = json.loads((out / "bench.json").read_text())
    meta, rows = data["meta"], data["results"]
    assert meta["rounds"] == 2
    assert "TIDAL_NO_EXT=1" in meta["contestants"]["tidal-interp"]
    assert "interpreted" in meta["contestants"]["tidal-interp"]  # the worker said what ran

    expected = {"micro"}
    if HAS_CC:
        expected |= {"echo", "tracing", "scaling", "memory"}
    if HAS_HTTPTOOLS and (HAS_CC or shutil.which("wrk")):
        expected.add("http")
    assert {r["section"] for r in rows} == expected, meta["skipped"]

    python = {"asyncio", "tidal-interp", "tidal"} | ({"uvloop"} if HAS_UVLOOP else set())
    python |= {"rloop"} if HAS_RLOOP else set()
    by_case: dict[tuple[str, str], set[str]] = {}
    for r in rows:
        by_case.setdefault((r["section"], r["case"]), set()).add(r["contestant"])
        # Every cell was measured in both rounds (a failed one would be missing).
        assert len(r["samples"]) == 2, (r, meta["warnings"])
        assert r["min"] <= r["median"] <= r["max"]
        if r["section"] != "memory":
            assert r["min"] > 0, r
        if r["contestant"] == "asyncio":
            assert r["vs"]["asyncio"] == pytest.approx(1.0)
    for (section, case), names in by_case.items():
        if section == "tracing":  # tidal's own cost of tracing: tidal only
            assert names == {"tidal"}, (case, names)
            continue
        assert python <= names, (section, case, names)
    if HAS_CC:
        # The C reference line sits with the Protocol servers.
        assert "C epoll" in by_case[("echo", "protocol 1 KiB x10")]
        assert "C epoll" in by_case[("scaling", "1,000 conns")]
        assert meta["headroom"]

    # The table on the terminal, and the same as Markdown.
    md = (out / "bench.md").read_text()
    for section in expected:
        assert f"== {section}:" in stdout
        assert f"## {section}:" in md
    assert "vs asyncio" in stdout and "| case | contestant |" in md
    assert "== summary" in stdout
    if HAS_CC:
        assert "tracing cost, echo protocol 1 KiB x10: flight recorder" in stdout

    if HAS_MATPLOTLIB:
        assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert "chart skipped" in stdout and not (out / "bench.png").exists()


@pytest.mark.skipif(
    not os.environ.get("TIDAL_BENCH_E2E"),
    reason="end-to-end bench runs in `make test-bench` (TIDAL_BENCH_E2E=1)",
)
@pytest.mark.skipif(not shutil.which("valgrind"), reason="valgrind is not installed")
@pytest.mark.timeout(720)
def test_instructions_section_counts_in_the_first_round_only(tmp_path: Path) -> None:
    out = tmp_path / "results"
    cmd = [
        sys.executable,
        "-m",
        "tidal.bench",
        "--only",
        "instructions",
        "--micro",
        "call_soon",
        # tidal alone: asyncio's loop costs eight times the instructions per
        # callback, and valgrind's time follows them (the ratio columns are
        # checked by the quick run above).
        "--contestants",
        "tidal",
        "--rounds",
        "3",
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=350)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "round 1/1" in proc.stdout and "round 2/" not in proc.stdout  # deterministic: once
    data = json.loads((out / "bench.json").read_text())
    [r] = data["results"]
    assert not data["meta"]["warnings"]
    assert r["section"] == "instructions" and r["contestant"] == "tidal"
    assert r["case"] == "call_soon chain" and len(r["samples"]) == 1
    # A call_soon round trip costs thousands of instructions on any loop,
    # not a handful (a broken difference) nor millions (start-up counted).
    assert 1_000 < r["median"] < 100_000, r


def test_instructions_section_counts_the_two_thread_benchmark_three_times() -> None:
    # How call_soon_threadsafe's two threads take turns follows real time even
    # under valgrind, so its count is sampled three times.  Not run here:
    # under valgrind each run is minutes of real time on a loaded machine
    # (its threads hand over through the kernel), the same code path as the
    # single count above with a repeat of 3.
    from tidal.bench.loadgen import Tools
    from tidal.bench.sections import Config

    section = SECTIONS["instructions"]
    plan = section.plan(Config(micro_only=("threadsafe", "call_soon")), Tools())
    assert "(threadsafe: 3 times)" in plan, plan
    assert "call_soon:" not in plan, plan


def test_a_peer_loop_not_installed_is_reported_missing() -> None:
    # Without site-packages (python -S, tidal from the source tree), neither
    # peer of the bench extra is importable: the bench names them as skipped
    # and goes on with the loops it has.
    src = Path(__file__).resolve().parent.parent / "src"
    code = (
        "import argparse; from tidal.bench.run import choose_contestants; skipped = []; "
        "ns = argparse.Namespace(contestants='asyncio,uvloop,rloop,tidal'); "
        "print([c.name for c in choose_contestants(ns, skipped)]); print(skipped)"
    )
    env = dict(os.environ, PYTHONPATH=str(src), TIDAL_NO_EXT="1")
    proc = subprocess.run(
        [sys.executable, "-S", "-c", code], check=False, capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    pool, skipped = proc.stdout.splitlines()
    assert pool == "['asyncio', 'tidal']"
    assert "uvloop: uvloop is not installed" in skipped and "rloop: rloop is not installed" in skipped


@pytest.mark.skipif(not HAS_RLOOP, reason="rloop is not installed (the bench extra)")
def test_rloop_runs_the_micro_worker() -> None:
    cmd = [sys.executable, "-m", "tidal.bench.micro", "--loop", "rloop", "--only", "future"]
    proc = subprocess.run(cmd + ["--batches", "1"], check=False, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    assert data["loop"].startswith("rloop ") and data["errors"] == 0
    assert data["results"] == {"future": 2_000.0}


@pytest.mark.skipif(not HAS_CC, reason="no C compiler to build the load generator")
def test_loadgen_reports_the_servers_cpu_per_reply(tmp_path: Path) -> None:
    # The echo section's server, loaded for a moment: asked for (--cpu-pid),
    # the load generator reads the server's CPU time as its window opens and
    # closes; not asked for, it says -1 and there is no per-reply figure.
    tools = loadgen.build_tools(tmp_path)
    assert tools.get("loadgen"), tools.problems
    cmd = [sys.executable, "-m", "tidal.bench.echo", "--loop", "asyncio", "--kind", "protocol"]
    with loadgen.server_process(cmd, dict(os.environ), 60) as server:
        run = dict(conns=2, size=1024, warmup=0.05, duration=0.2)
        asked = loadgen.run_loadgen(tools, server.port, cpu_pid=server.proc.pid, **run)
        plain = loadgen.run_loadgen(tools, server.port, **run)
    assert asked["server_cpu_s"] > 0
    assert asked["cpu_us"] == pytest.approx(asked["server_cpu_s"] / asked["messages"] * 1e6)
    assert plain["server_cpu_s"] == -1 and "cpu_us" not in plain
    assert not server.stderr


def test_report_medians_spread_ratios_headroom(tmp_path: Path) -> None:
    sections = [SECTIONS["echo"], SECTIONS["memory"]]
    ms = []
    for value_a, value_u, value_t, value_c in [
        (10, 20, 15, 40),
        (12, 22, 18, 44),
        (11, 21, 30, 42),
    ]:
        for name, v in [
            ("asyncio", value_a),
            ("uvloop", value_u),
            ("tidal", value_t),
            ("C epoll", value_c),
        ]:
            ms.append(
                Measurement(
                    "echo", "protocol 1 KiB x10", name, v, {"p99_us": v * 10.0, "cpu_us": v / 4}
                )
            )
    ms.append(Measurement("memory", "protocol, 10 idle", "asyncio", 3000.0))
    ms.append(Measurement("memory", "protocol, 10 idle", "tidal", 1500.0))
    cases = {"echo": ["protocol 1 KiB x10"], "memory": ["protocol, 10 idle"]}
    rows = report.aggregate(ms, sections, cases, ["asyncio", "uvloop", "tidal", "C epoll"])
    assert [(r.section, r.contestant) for r in rows] == [
        ("echo", "asyncio"),
        ("echo", "uvloop"),
        ("echo", "tidal"),
        ("echo", "C epoll"),
        ("memory", "asyncio"),
        ("memory", "tidal"),
    ]
    tidal = rows[2]
    assert (tidal.median, tidal.min, tidal.max) == (18, 15, 30)
    assert tidal.vs["asyncio"] == pytest.approx(18 / 11)
    assert tidal.vs["uvloop"] == pytest.approx(18 / 21)
    assert tidal.extra("p99_us") == 180.0
    assert tidal.extra("cpu_us") == 4.5
    assert rows[5].vs == {"asyncio": 0.5}  # memory: lower is better, the ratio says "half"
    # Headroom: the C server over the fastest loop, rates only.
    assert report.headroom(rows) == [("echo protocol 1 KiB x10", pytest.approx(42 / 21))]

    table = report.text_table(rows, sections)
    assert "1.64x" in table and "15 - 30" in table and "180us" in table
    assert "server CPU" in table and "4.5us" in table
    assert "2.9 KiB" in table and "lower is better" in table
    if HAS_MATPLOTLIB:
        assert report.write_chart(tmp_path / "c.png", rows, sections) is None
        assert (tmp_path / "c.png").stat().st_size > 0


def test_sim_section_ratios_are_over_tidal_sim(tmp_path: Path) -> None:
    sim = SECTIONS["sim"]
    case = sim.case("streams", "streams")
    ms = [Measurement("sim", case, name, v) for name, v in [
        ("tidal.sim", 0.02), ("simloop", 0.06), ("tidal.sim", 0.04), ("simloop", 0.12),
        ("tidal.sim", 0.03), ("simloop", 0.09), ("seedloop", 0.015),
    ]]  # fmt: skip
    # The pool's names come first; a section's own contestants follow in the order they came.
    rows = report.aggregate(ms, [sim], {"sim": [case]}, ["asyncio", "tidal"])
    assert [r.contestant for r in rows] == ["tidal.sim", "simloop", "seedloop"]
    assert rows[1].vs == {"tidal.sim": pytest.approx(3.0)}
    assert rows[2].vs == {"tidal.sim": pytest.approx(0.5)}
    table = report.text_table(rows, [sim])
    assert "vs tidal.sim" in table and "vs asyncio" not in table
    assert "3.00x" in table and "30.0 ms" in table and "lower is better" in table
    assert "== summary" not in table  # its ratios are in its own table
    md = report.markdown(rows, [sim], {
        "when": "now", "python": "3.12", "machine": "m", "rounds": 3, "contestants": {},
        "load_before": "0", "load_after": "0",
    })  # fmt: skip
    assert "| vs tidal.sim |" in md


def test_sim_section_says_why_it_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tidal.bench.loadgen import Tools
    from tidal.bench.sections import Config

    sim = SECTIONS["sim"]
    tools = Tools()
    monkeypatch.chdir(tmp_path)  # (no .venv-3.12 here)
    if sys.version_info < (3, 12):
        reason = sim.unavailable(Config(), tools)
        assert reason and "need Python 3.12+" in reason and "--sim-python" in reason
    else:
        assert sim.python(Config()) == sys.executable
    reason = sim.unavailable(Config(sim_python=str(tmp_path / "no-python")), tools)
    assert reason and "cannot run" in reason


@pytest.mark.timeout(120)
def test_simulation_bench_json_for_the_sim_section() -> None:
    cmd = [sys.executable, "-m", "tidal.bench.simulation", "--json"]
    proc = subprocess.run(
        [*cmd, "--only", "streams", "--only", "messages", "--seeds", "1", "--without", "simloom"],
        capture_output=True, text=True, check=False, timeout=110,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    assert data["python"] == sys.version.split()[0]
    assert data["tidal"] in ("compiled", "interpreted")
    assert list(data["times"]) == ["streams", "messages"]
    for times in data["times"].values():
        assert "tidal" in times and "simloom" not in times
        assert all(len(samples) == 1 and min(samples) > 0 for samples in times.values())
    # seedloop has no asyncio streams: it runs the messages workload only.
    assert "seedloop" not in data["times"]["streams"]
    if "seedloop" not in data["missing"]:
        assert "seedloop" in data["times"]["messages"]


@pytest.mark.timeout(120)
def test_simulation_bench_measures_in_fresh_processes() -> None:
    """Each simulator's seeds are measured in processes of their own (one run
    slows down the next in the same process), --per-process seeds each."""
    cmd = [sys.executable, "-m", "tidal.bench.simulation", "--json", "--only", "streams"]
    cmd += ["--without", "simloom", "--without", "seedloop"]
    for per_process, processes in ((1, 3), (2, 2)):
        proc = subprocess.run(
            [*cmd, "--seeds", "3", "--per-process", str(per_process)],
            capture_output=True, text=True, check=False, timeout=110,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        data = json.loads(proc.stdout.strip().splitlines()[-1])
        pids = data["pids"]["streams"]
        assert set(pids) == set(data["times"]["streams"])
        assert len(data["times"]["streams"]["tidal"]) == len(pids["tidal"]) == 3
        assert len(set(pids["tidal"])) == processes
        everyone = [pid for where in pids.values() for pid in where]
        assert len(set(everyone)) == processes * len(pids)  # no process shared by two simulators
