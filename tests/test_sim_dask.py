"""Seeds on a Dask cluster: ``sim.search(dask=...)`` and ``python -m tidal sim --dask``.

A real ``distributed.LocalCluster`` (two worker processes, one thread each)
runs in a process of its own (its event loop thread stays out of this
test process), and the searches run in child processes started with a
fixed PYTHONHASHSEED, as the feature requires (the same one, so that the
workers' simulation processes serve every test).  The scenario registers
hosts in the iteration order of a set of strings, so its runs (and their
trace hashes) depend on the hash seed: the Dask workers' own is 6640 (the
nanny's), and a seed's run on a worker is still the run it has here.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import textwrap
from typing import Any, Iterator

import pytest

from tidal import sim

# A cluster of three processes that import dask, then a search in a fourth:
# ~20 s on an idle machine, and several times that beside the rest of `make
# test` on a loaded one (a run there took over 120 s, the suite's default).
pytestmark = pytest.mark.timeout(360)

CLUSTER = """
import sys
from distributed import LocalCluster

with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
    print(c.scheduler_address, flush=True)
    sys.stdin.read()  # until the test closes it
"""

SCENARIO = """
import asyncio

from tidal.sim import examples


async def idle():
    await asyncio.sleep(1)


def scenario(s):
    for name in {"x1", "x2", "x3", "x4", "x5", "x6"}:  # in the order of their hashes
        s.host(name, idle)
    examples.deposits(s, dedup=False)  # the planted bug: a retried deposit applied twice
"""


def _env(hash_seed: str | None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}  # this tidal
    env.pop("PYTHONHASHSEED", None)
    if hash_seed is not None:
        env["PYTHONHASHSEED"] = hash_seed
    return env


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: Any) -> Iterator[str]:
    """The scheduler address of a LocalCluster with two worker processes."""
    log_path = tmp_path_factory.mktemp("cluster") / "stderr"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", CLUSTER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=_env(None),
        )
    assert process.stdout is not None and process.stdin is not None
    address = process.stdout.readline().strip()
    try:
        assert address.startswith("tcp://"), address
        yield address
    finally:
        process.stdin.close()
        process.wait(timeout=60)
        process.stdout.close()
    # The workers' simulation processes (their stderr is the workers') said
    # nothing about themselves: no warning, no traceback of theirs.
    assert "tidal.sim._dask" not in log_path.read_text()


def _python(code: str, *args: str, hash_seed: str | None, cwd: Any = None) -> Any:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=_env(hash_seed),
        cwd=cwd,
        timeout=300,
    )


def test_seeds_on_dask_give_the_serial_runs_and_a_changed_hash_seed_is_named(
    cluster: str,
) -> None:
    script = SCENARIO + textwrap.dedent(
        """
        import os, sys
        from tidal import sim

        serial = sim.search(scenario, 12, keep_hashes=True, shrink_plan=False)
        spread = sim.search(scenario, 12, keep_hashes=True, dask=sys.argv[1])
        assert serial.failure is not None and spread.failure is not None
        assert spread.failure.seed == serial.failure.seed, (spread.failure, serial.failure)
        assert spread.hashes == serial.hashes, (spread.hashes, serial.hashes)
        print(spread.failure.report())
        # The workers' processes get this process's PYTHONHASHSEED: set after
        # it started, it is not the one this process hashes with.
        os.environ["PYTHONHASHSEED"] = "4"
        try:
            sim.search(scenario, 1, dask=sys.argv[1])
        except sim.HashSeedMismatch as exc:
            print(exc)
        """
    )
    done = _python(script, cluster, hash_seed="3")
    assert done.returncode == 0, done.stderr
    report = done.stdout
    assert re.search(r"trace hash: \w+, the same as the run on the Dask worker tcp://", report)
    assert "shrunk plan" in report
    assert re.search(
        r"the Dask worker tcp://\S+ would not run a seed as this process does: it hashes "
        r"strings as PYTHONHASHSEED=4 does, and this process does not",
        report,
    ), report


def test_the_command_line_finds_on_dask_and_replays_here(cluster: str, tmp_path: Any) -> None:
    (tmp_path / "hashed.py").write_text(SCENARIO)

    def tidal_sim(*args: str) -> Any:
        code = "import sys; from tidal.__main__ import main; sys.exit(main(sys.argv[1:]))"
        return _python(code, "sim", *args, hash_seed="3", cwd=tmp_path)

    found = tidal_sim("hashed.py", "--seeds", "12", "--dask", cluster, "--no-shrink")
    assert found.returncode == 1, found.stderr
    seed = int(found.stdout.split("seed ", 1)[1].split()[0])
    trace_hash = re.search(r"trace hash: (\w+), the same as the run on the Dask", found.stdout)
    assert trace_hash is not None, found.stdout
    replay = f"replay: PYTHONHASHSEED=3 python -m tidal sim hashed.py --seed={seed}\n"
    assert replay in found.stdout
    again = tidal_sim(*shlex.split(replay)[6:], "--no-shrink")
    assert again.returncode == 1
    assert f"trace hash: {trace_hash[1]}\n" in again.stdout


def test_without_dask_the_error_names_the_extra(tmp_path: Any, monkeypatch: Any) -> None:
    (tmp_path / "hashed.py").write_text(SCENARIO)
    code = (
        "import sys; sys.modules['distributed'] = None\n"
        "from tidal.__main__ import main; sys.exit(main(sys.argv[1:]))"
    )
    done = _python(
        code, "sim", "hashed.py", "--dask", "tcp://127.0.0.1:9", hash_seed="0", cwd=tmp_path
    )
    assert done.returncode == 2
    assert "pip install 'tidal[dask]'" in done.stderr
    # Nor can a search go to Dask without a fixed hash seed here.
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    with pytest.raises(sim.HashSeedMismatch, match="need PYTHONHASHSEED set"):
        sim.search(lambda s: None, 1, dask="tcp://127.0.0.1:9")


def test_an_unreachable_scheduler_is_said(tmp_path: Any, monkeypatch: Any) -> None:
    (tmp_path / "hashed.py").write_text(SCENARIO)
    monkeypatch.setenv("DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT", "1s")
    code = "import sys; from tidal.__main__ import main; sys.exit(main(sys.argv[1:]))"
    done = _python(
        code, "sim", "hashed.py", "--dask", "tcp://127.0.0.1:9", hash_seed="0", cwd=tmp_path
    )
    assert done.returncode == 2, done.stderr
    assert "tidal.sim: Timed out trying to connect to tcp://127.0.0.1:9" in done.stderr
