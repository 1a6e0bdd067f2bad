"""pytest plugin: ``pytest --tidal`` runs a suite's asyncio tests on tidal's loop.

Installed with tidal (the ``pytest11`` entry point) and inert until asked:
without ``--tidal`` it adds the option and nothing else, so a suite that has
tidal installed but does not ask runs exactly as before.

With ``--tidal``:

* every pytest-asyncio test (pytest-asyncio >= 1.4) runs on a tidal loop,
  through pytest-asyncio's own ``pytest_asyncio_loop_factories`` hook (so its
  loop scopes, fixtures and ``loop_factories`` marks keep working);
* every anyio test on the asyncio backend runs on a tidal loop, through the
  ``loop_factory`` backend option anyio's test runner takes: the value of the
  ``anyio_backend`` fixture gets ``loop_factory=tidal.new_event_loop`` added
  unless the suite already chose a loop factory (or uvloop) of its own.

Simulation seeds (docs/simulation.md), for tests that ask, with or without
``--tidal``::

    @pytest.mark.tidal_sim(seeds=500)
    def test_replication(sim):           # a fresh tidal.sim.Simulation per seed
        sim.host("n0", server); sim.host("n1", client)
        res = sim.run(until=60)
        assert res.results["n1"] == "ok"

runs the test once per seed, each simulation with a fault plan drawn from
its seed (``faults=False`` in the marker: none), and stops at the first
failure.  That failure is run again with a timeline, its plan shrunk, and
the test fails with a report: seed, PYTHONHASHSEED, the plan and the shrunk
plan, the trace's path, and the commands that replay it
(``pytest path::test --tidal-seed=N``, ``--tidal-plan=FILE`` for the
shrunk plan).  ``--tidal-seeds=N`` changes how many seeds, ``--tidal-jobs=N``
runs them in N worker processes (pytest runs of the one test, each a stride
of the seeds; the first failure in seed order is the one reported).  Other
fixtures are set up once for all seeds.  Without the marker, ``sim`` is one
Simulation (seed 0, or ``--tidal-seed``) and the test runs once.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import Any

import pytest

_OPTION = "--tidal"
_MARKER = "tidal_sim"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tidal")
    group.addoption(
        _OPTION,
        action="store_true",
        default=False,
        help="run pytest-asyncio tests and anyio's asyncio-backend tests on tidal's event loop",
    )
    group.addoption(
        "--tidal-seeds",
        type=int,
        metavar="N",
        help="tidal_sim tests: run N seeds (0 .. N-1) instead of the marker's number",
    )
    group.addoption(
        "--tidal-seed",
        type=int,
        metavar="N",
        help="tidal_sim tests: run seed N only (a replay)",
    )
    group.addoption(
        "--tidal-plan",
        metavar="FILE",
        help="tidal_sim tests: with --tidal-seed, run this fault plan (a report's shrunk plan)",
    )
    group.addoption(
        "--tidal-jobs",
        type=int,
        default=1,
        metavar="N",
        help="tidal_sim tests: run the seeds in N worker processes",
    )
    # A worker of --tidal-jobs: K/N:FILE runs seeds K, K+N, ... and writes their outcomes to FILE.
    group.addoption("--tidal-worker", help=argparse.SUPPRESS)


def pytest_configure(config: pytest.Config) -> None:
    if (config.getoption("tidal_jobs", default=1) or 1) > 1 and os.environ.get(
        "PYTHONHASHSEED", "random"
    ) == "random":
        # Workers would hash strings with secrets of their own: a seed could
        # pass in a worker and fail here, or the other way round.
        raise pytest.UsageError(
            "--tidal-jobs needs PYTHONHASHSEED set (for example PYTHONHASHSEED=0 "
            "pytest ... --tidal-jobs N): every worker must hash strings as this "
            "process does for a seed's run to be the same in both"
        )
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(seeds=100, faults=True, **simulation_options): run a test that takes the "
        "`sim` fixture once per simulation seed, with a fault plan drawn from each seed "
        "(tidal.sim); the first failure is shrunk and reported with its replay command",
    )
    # Registered only when asked: pytest-asyncio treats any implementation of
    # its hook as "use these factories", even one that would return None.
    if config.getoption("tidal", default=False):
        config.pluginmanager.register(_TidalLoops(), "tidal-loops")


def _new_loop() -> Any:
    import tidal

    return tidal.new_event_loop()


def _with_tidal(backend: Any) -> Any:
    """The anyio_backend value with tidal's loop factory, where it is asyncio's and unset."""
    if backend == "asyncio":
        return ("asyncio", {"loop_factory": _new_loop})
    if (
        isinstance(backend, tuple)
        and len(backend) == 2
        and backend[0] == "asyncio"
        and isinstance(backend[1], dict)
        and "loop_factory" not in backend[1]
        and not backend[1].get("use_uvloop")
    ):
        return ("asyncio", {**backend[1], "loop_factory": _new_loop})
    return backend  # trio, or a loop the suite chose itself: left alone


class _TidalLoops:
    """The hooks that do the work, registered by ``--tidal`` only."""

    # optionalhook: pytest-asyncio may not be installed; then this is unused.
    @pytest.hookimpl(optionalhook=True)
    def pytest_asyncio_loop_factories(
        self, config: pytest.Config, item: pytest.Item
    ) -> Mapping[str, Callable[[], Any]]:
        return {"tidal": _new_loop}

    @pytest.hookimpl(hookwrapper=True)
    def pytest_fixture_setup(
        self, fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
    ) -> Generator[None, None, None]:
        if fixturedef.argname != "anyio_backend":
            yield
            return
        # Wrap the fixture's function for this one setup, as anyio's plugin
        # wraps async fixtures: the cached value is then the wrapped one, so
        # every test and fixture that asks for anyio_backend sees tidal.
        func = fixturedef.func

        def anyio_backend_on_tidal(*args: Any, **kwargs: Any) -> Any:
            return _with_tidal(func(*args, **kwargs))

        fixturedef.func = anyio_backend_on_tidal  # type: ignore[misc]
        try:
            yield
        finally:
            fixturedef.func = func  # type: ignore[misc]


# -- simulation seeds ----------------------------------------------------------------


def _settings(item: pytest.Item) -> dict[str, Any] | None:
    """The tidal_sim marker's settings for `item` (None: not marked)."""
    marker = item.get_closest_marker(_MARKER)
    if marker is None:
        return None
    options = dict(marker.kwargs)
    seeds = options.pop("seeds", marker.args[0] if marker.args else 100)
    faults = options.pop("faults", True)
    if faults is True:
        faults = "swarm"
    elif faults is False:
        faults = None
    return {
        "seeds": seeds,
        "faults": faults,
        "shrink": options.pop("shrink", True),
        "options": options,
    }


@pytest.fixture
def sim(request: pytest.FixtureRequest) -> Generator[Any, None, None]:
    """A fresh tidal.sim.Simulation.  Under ``@pytest.mark.tidal_sim`` the test
    runs once per seed, each with its own (this one is then unused)."""
    from tidal.sim import Simulation

    settings = _settings(request.node)
    seed = request.config.getoption("tidal_seed")
    simulation = Simulation(0 if seed is None else seed, **(settings or {}).get("options", {}))
    yield simulation
    if not simulation._ran:
        simulation._shut_down()


class SimulationFailed(AssertionError):
    """A tidal_sim test failed for a seed: the message is the report."""


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    settings = _settings(pyfuncitem)
    if settings is None:
        return None
    __tracebackhide__ = True  # the report and the test's own traceback are what matter
    if "sim" not in pyfuncitem.fixturenames:
        raise pytest.UsageError(
            f"{pyfuncitem.nodeid}: @pytest.mark.{_MARKER} needs the `sim` fixture"
        )
    from tidal.sim import FaultPlan, investigate, run_seed, search

    config = pyfuncitem.config
    function = pyfuncitem.obj
    argnames = pyfuncitem._fixtureinfo.argnames
    funcargs = {name: pyfuncitem.funcargs[name] for name in argnames if name != "sim"}

    def scenario(simulation: Any) -> None:
        function(sim=simulation, **funcargs)

    faults = settings["faults"]
    options = settings["options"]
    worker = config.getoption("tidal_worker")
    if worker:
        _work(
            worker, scenario, faults, options, config.getoption("tidal_seeds") or settings["seeds"]
        )
        return True

    seed = config.getoption("tidal_seed")
    plan_file = config.getoption("tidal_plan")

    def replay(seed: int, plan: str | None) -> str:
        command = f"pytest {shlex.quote(pyfuncitem.nodeid)} --tidal-seed={seed}"
        plan = plan or plan_file
        return command + (f" --tidal-plan={shlex.quote(plan)}" if plan else "")

    if seed is not None:
        if plan_file is not None:
            faults = FaultPlan.load(plan_file)
        outcome = run_seed(scenario, seed, faults, **options)
        if outcome.error is None:
            return True
        failure = investigate(
            scenario,
            seed,
            faults,
            shrink_plan=settings["shrink"],
            replay=replay,
            **options,
        )
    else:
        seeds = config.getoption("tidal_seeds") or settings["seeds"]
        jobs = config.getoption("tidal_jobs")
        found = search(
            scenario,
            seeds,
            faults=faults,
            shrink_plan=settings["shrink"],
            replay=replay,
            runner=_pytest_workers(pyfuncitem, jobs, seeds) if jobs > 1 else None,
            **options,
        )
        failure = found.failure
    if failure is None:
        return True
    raise SimulationFailed(failure.report()) from failure.error


def _work(spec: str, scenario: Any, faults: Any, options: dict[str, Any], seeds: int) -> None:
    """A --tidal-jobs worker: seeds K, K+N, ... below `seeds`, each outcome a
    line of FILE (seed, error text or '-', trace hash), up to the first failure."""
    from tidal.sim import run_seed

    share, _, path = spec.partition(":")
    k, _, n = share.partition("/")
    with open(path, "a") as out:
        for seed in range(int(k), seeds, int(n)):
            outcome = run_seed(scenario, seed, faults, **options)
            error = "-" if outcome.error is None else repr(outcome.error).replace("\n", " ")
            out.write(f"{seed}\t{outcome.trace_hash}\t{error}\n")
            out.flush()
            if outcome.failed:
                return


def _pytest_workers(
    item: pytest.Item, jobs: int, seeds: int
) -> Callable[[list[int]], Iterator[tuple[int, str | None, str | None]]]:
    """search()'s runner for --tidal-jobs: `jobs` pytest processes running
    this one test, each a stride of the seeds, read back in seed order."""
    config = item.config

    def runner(seed_list: list[int]) -> Iterator[tuple[int, str | None, str | None]]:
        directory = tempfile.mkdtemp(prefix="tidal-sim-jobs-")
        base = [sys.executable, "-m", "pytest", item.nodeid, "-q", "-p", "no:cacheprovider"]
        base += [f"--rootdir={config.rootpath}", f"--tidal-seeds={seeds}"]
        if config.inipath is not None:
            base += ["-c", str(config.inipath)]
        workers = []
        for k in range(jobs):
            path = os.path.join(directory, f"worker-{k}.tsv")
            open(path, "w").close()
            log = open(os.path.join(directory, f"worker-{k}.log"), "w")
            command = [*base, f"--tidal-worker={k}/{jobs}:{path}"]
            process = subprocess.Popen(
                command, cwd=config.rootpath, stdout=log, stderr=subprocess.STDOUT
            )
            workers.append((process, path, log))
        outcomes: dict[int, tuple[str | None, str | None]] = {}
        offsets = [0] * jobs
        try:
            for seed in seed_list:
                while seed not in outcomes:
                    finished = all(process.poll() is not None for process, _, _ in workers)
                    for k, (_, path, _) in enumerate(workers):
                        with open(path) as f:
                            f.seek(offsets[k])
                            text = f.read()
                        complete = text[: text.rfind("\n") + 1]
                        offsets[k] += len(complete)
                        for line in complete.splitlines():
                            number, digest, text = line.split("\t", 2)
                            outcomes[int(number)] = (None if text == "-" else text, digest)
                    if seed in outcomes:
                        break
                    if finished:
                        k = seed_list.index(seed) % jobs
                        with open(os.path.join(directory, f"worker-{k}.log")) as f:
                            log_text = f.read()
                        raise RuntimeError(
                            f"tidal_sim worker {k} ended without running seed {seed}:\n{log_text}"
                        )
                    time.sleep(0.02)
                yield seed, *outcomes[seed]
        finally:
            for process, _, log in workers:
                if process.poll() is None:
                    process.terminate()
                process.wait()
                log.close()

    return runner
