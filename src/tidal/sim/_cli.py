"""``python -m tidal sim``: a scenario file over many seeds, outside pytest.

    python -m tidal sim scenario.py --seeds 1000 --jobs 4     # search, shrink, report
    python -m tidal sim scenario.py --seed 17                 # replay one seed
    python -m tidal sim scenario.py --seed 17 --plan shrunk.json
    python -m tidal sim scenario.py --seeds 100000 --dask tcp://scheduler:8786

The file defines ``scenario(sim)`` (or the function named by
``scenario.py::name``): it adds hosts to the fresh Simulation it is given,
runs it and asserts.  The report is ``sim.search``'s, with the replay
commands spelled for this command.  Exit status: 0 when every seed passed,
1 on a failure, 2 on a usage error.

The command runs with a fixed hash seed: PYTHONHASHSEED from the
environment, or 0 (it starts itself again with it), so that worker
processes, Dask workers and the replay hash strings alike.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from typing import Any

from ._search import HashSeedMismatch
from ._faults import FaultPlan, Swarm
from ._search import investigate, search

_loaded: dict[str, dict[str, Any]] = {}


class FileScenario:
    """The scenario function `name` of the file at `path`, loaded on first
    call in each process.  It carries the file's text, so that a worker
    process, here or on another machine, runs the file this process read."""

    def __init__(self, path: str, name: str = "scenario") -> None:
        self.path = os.path.abspath(path)
        self.name = name
        with open(self.path, encoding="utf-8") as file:
            self.source = file.read()

    def __call__(self, sim: Any) -> Any:
        namespace = _loaded.get(self.source)
        if namespace is None:
            # Its neighbours import as they would for `python scenario.py`.
            sys.path.insert(0, os.path.dirname(self.path))
            namespace = {"__name__": "tidal_sim_scenario", "__file__": self.path}
            exec(compile(self.source, self.path, "exec"), namespace)
            _loaded[self.source] = namespace
        function = namespace.get(self.name)
        if function is None:
            raise SystemExit(f"{self.path} defines no function {self.name!r}")
        return function(sim)


class _Progress:
    """Progress on stderr: a bar redrawn in place on a terminal (or when
    asked); else a plain line at each tenth of the seeds, and at least every
    30 seconds (a CI log, a file)."""

    def __init__(self, stream: Any, bar: bool) -> None:
        self.stream = stream
        self.bar = bar
        self.started = self.last = time.perf_counter()
        self.tenths = 0
        self.drawn = False

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        rate = done / max(now - self.started, 1e-9)
        if self.bar:
            if now - self.last < 0.1 and done < total:
                return
            width = 30
            filled = width * done // max(total, 1)
            self.stream.write(
                f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} seeds, {rate:.1f}/s "
            )
            self.drawn = True
        else:
            tenths = 10 * done // max(total, 1)
            if tenths == self.tenths and now - self.last < 30.0:
                return
            self.tenths = tenths
            self.stream.write(f"tidal.sim: {done}/{total} seeds, {rate:.1f} seeds/s\n")
        self.last = now
        self.stream.flush()

    def end(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()


def _with_fixed_hash_seed(argv: list[str]) -> None:
    """Start this command again with PYTHONHASHSEED=0 if it is unset: a
    seed's run must not depend on a hash secret nobody can give again."""
    if os.environ.get("PYTHONHASHSEED", "random") != "random":
        return
    sys.stdout.flush()
    sys.stderr.flush()
    command = [sys.executable, "-m", "tidal", "sim", *argv]
    os.execve(sys.executable, command, {**os.environ, "PYTHONHASHSEED": "0"})


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tidal sim",
        description="Run a simulation scenario over seeds with swarm faults; shrink and "
        "report the first failure (docs/simulation.md).",
    )
    parser.add_argument("scenario", help="FILE.py or FILE.py::function (default: scenario)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--seeds", type=int, default=100, help="how many seeds (default 100)")
    which.add_argument("--seed", type=int, help="run this one seed (a replay)")
    parser.add_argument("--start", type=int, default=0, help="the first seed (default 0)")
    parser.add_argument("--plan", metavar="FILE", help="with --seed: run this fault plan")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    where.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run the seeds on this Dask cluster (tcp://scheduler:8786; the tidal[dask] extra)",
    )
    parser.add_argument("--no-faults", action="store_true", help="no swarm fault plans")
    parser.add_argument("--explore", action="store_true", help="schedule exploration on")
    parser.add_argument("--no-shrink", action="store_true", help="report without shrinking")
    parser.add_argument("--trace-dir", help="where the failing run's trace and plans go")
    parser.add_argument(
        "--progress", action="store_true", help="a progress bar even off a terminal"
    )
    args = parser.parse_args(argv)
    if args.plan is not None and args.seed is None:
        parser.error("--plan replays one seed: give --seed too")
    if not os.path.isfile(args.scenario.partition("::")[0]):
        parser.error(f"no such file: {args.scenario.partition('::')[0]}")
    _with_fixed_hash_seed(argv)

    path, _, name = args.scenario.partition("::")
    scenario = FileScenario(path, name or "scenario")
    faults: FaultPlan | Swarm | str | None = None if args.no_faults else "swarm"
    options: dict[str, Any] = {"explore": True} if args.explore else {}
    command = ["python", "-m", "tidal", "sim", args.scenario]
    if os.environ["PYTHONHASHSEED"] != "0":  # 0 is what the command sets by itself
        command.insert(0, f"PYTHONHASHSEED={os.environ['PYTHONHASHSEED']}")
    if args.no_faults:
        command.append("--no-faults")
    if args.explore:
        command.append("--explore")

    def replay(seed: int, plan: str | None) -> str:
        plan = plan or args.plan
        return shlex.join(command + [f"--seed={seed}"] + ([f"--plan={plan}"] if plan else []))

    if args.seed is not None:
        if args.plan is not None:
            faults = FaultPlan.load(args.plan)
        failure = investigate(
            scenario,
            args.seed,
            faults,
            shrink_plan=not args.no_shrink,
            trace_dir=args.trace_dir,
            replay=replay,
            **options,
        )
        if failure is None:
            print(f"tidal.sim: seed {args.seed} passed")
            return 0
        print(failure.report())
        return 1
    client = None
    if args.dask is not None:
        from ._dask import distributed

        try:
            client = distributed().Client(args.dask)
        except (ImportError, OSError) as exc:  # OSError: the scheduler did not answer
            print(f"tidal.sim: {exc}", file=sys.stderr)
            return 2
    progress = _Progress(sys.stderr, bar=args.progress or sys.stderr.isatty())
    try:
        found = search(
            scenario,
            range(args.start, args.start + args.seeds),
            faults=faults,
            shrink_plan=not args.no_shrink,
            jobs=args.jobs,
            trace_dir=args.trace_dir,
            replay=replay,
            progress=progress,
            dask=client,
            **options,
        )
    except HashSeedMismatch as exc:
        progress.end()
        print(f"tidal.sim: {exc}", file=sys.stderr)
        return 2
    finally:
        if client is not None:
            client.close()
    progress.end()
    rate = found.seeds_run / max(found.seconds, 1e-9)
    if found.failure is None:
        print(f"tidal.sim: {found.seeds_run} seeds passed ({rate:.1f} seeds/s)")
        return 0
    print(found.failure.report())
    return 1
