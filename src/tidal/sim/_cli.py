"""``python -m tidal sim``: a scenario file over many seeds, outside pytest.

    python -m tidal sim scenario.py --seeds 1000 --jobs 4     # search, shrink, report
    python -m tidal sim scenario.py --seed 17                 # replay one seed
    python -m tidal sim scenario.py --seed 17 --plan shrunk.json

The file defines ``scenario(sim)`` (or the function named by
``scenario.py::name``): it adds hosts to the fresh Simulation it is given,
runs it and asserts.  The report is ``sim.search``'s, with the replay
commands spelled for this command.  Exit status: 0 when every seed passed,
1 on a failure.
"""

from __future__ import annotations

import argparse
import os
import runpy
import shlex
import sys
import time
from typing import Any

from ._faults import FaultPlan, Swarm
from ._search import investigate, search

_loaded: dict[str, dict[str, Any]] = {}


class FileScenario:
    """The scenario function `name` of the file at `path`, loaded on first
    call in each process (so that worker processes can be handed it)."""

    def __init__(self, path: str, name: str = "scenario") -> None:
        self.path = os.path.abspath(path)
        self.name = name

    def __call__(self, sim: Any) -> Any:
        namespace = _loaded.get(self.path)
        if namespace is None:
            sys.path.insert(0, os.path.dirname(self.path))
            namespace = _loaded[self.path] = runpy.run_path(
                self.path, run_name="tidal_sim_scenario"
            )
        function = namespace.get(self.name)
        if function is None:
            raise SystemExit(f"{self.path} defines no function {self.name!r}")
        return function(sim)


class _Progress:
    """A one-line progress bar on stderr (when it is a terminal, or asked)."""

    def __init__(self, stream: Any, on: bool) -> None:
        self.stream = stream
        self.on = on
        self.started = time.perf_counter()
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if not self.on or (now - self.last < 0.1 and done < total):
            return
        self.last = now
        width = 30
        filled = width * done // max(total, 1)
        rate = done / max(now - self.started, 1e-9)
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} seeds, {rate:.1f}/s "
        )
        self.stream.flush()

    def end(self) -> None:
        if self.on:
            self.stream.write("\n")
            self.stream.flush()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tidal sim",
        description="Run a simulation scenario over seeds with swarm faults; shrink and "
        "report the first failure (docs/simulation.md).",
    )
    parser.add_argument("scenario", help="FILE.py or FILE.py::function (default: scenario)")
    parser.add_argument("--seeds", type=int, default=100, help="how many seeds (default 100)")
    parser.add_argument("--start", type=int, default=0, help="the first seed (default 0)")
    parser.add_argument("--seed", type=int, help="run this one seed (a replay)")
    parser.add_argument("--plan", metavar="FILE", help="with --seed: run this fault plan")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--no-faults", action="store_true", help="no swarm fault plans")
    parser.add_argument("--explore", action="store_true", help="schedule exploration on")
    parser.add_argument("--no-shrink", action="store_true", help="report without shrinking")
    parser.add_argument("--trace-dir", help="where the failing run's trace and plans go")
    parser.add_argument(
        "--progress", action="store_true", help="a progress bar even off a terminal"
    )
    args = parser.parse_args(argv)

    path, _, name = args.scenario.partition("::")
    scenario = FileScenario(path, name or "scenario")
    faults: FaultPlan | Swarm | str | None = None if args.no_faults else "swarm"
    options: dict[str, Any] = {"explore": True} if args.explore else {}
    command = ["python", "-m", "tidal", "sim", args.scenario]
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
    progress = _Progress(sys.stderr, args.progress or sys.stderr.isatty())
    found = search(
        scenario,
        range(args.start, args.start + args.seeds),
        faults=faults,
        shrink_plan=not args.no_shrink,
        jobs=args.jobs,
        trace_dir=args.trace_dir,
        replay=replay,
        progress=progress,
        **options,
    )
    progress.end()
    rate = found.seeds_run / max(found.seconds, 1e-9)
    if found.failure is None:
        print(f"tidal.sim: {found.seeds_run} seeds passed ({rate:.1f} seeds/s)")
        return 0
    print(found.failure.report())
    return 1
