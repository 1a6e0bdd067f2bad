"""Seed search, replay and shrinking: find a failing seed, say how to run it
again, and reduce its fault plan to the faults that matter.

A *scenario* is a callable that takes a fresh ``Simulation`` (its seed and
fault plan already chosen), adds the hosts, runs it and checks what must
hold; raising means the seed failed::

    def scenario(sim):
        sim.host("n0", server); sim.host("n1", client)
        res = sim.run(until=60)
        assert res.results["n1"] == "ok"

``search(scenario, seeds=500)`` runs it for each seed, each with a swarm
plan drawn from the seed (``_faults``), and stops at the first failure.
Then it shrinks: the plan is made smaller (schedule exploration off, fewer
faults by delta debugging, lower network rates, shorter partitions and
downtimes, smaller clock faults), keeping each change only if the scenario
still fails the same way (the same exception type, raised by the same
line), for the same seed.  The failing
run (and the shrunk one) is run once more with a timeline, written as a
Perfetto trace with one process per host in virtual time.  ``Failure``
holds all of it, and ``report()`` says it for a person: seed,
PYTHONHASHSEED, both plans, the error, the trace and the replay command.

With ``jobs=N`` the seeds run in N worker processes; each seed is one
Simulation, a function of its seed only, so its outcome is the one a
serial run gives, and the first failure in seed order is the one reported
(found again, and shrunk, in this process).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import multiprocessing
import os
import pickle
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Generator, Iterable, Iterator, Sequence

from ._faults import FaultPlan, Swarm, _with
from ._simulation import NondeterminismError, SimResult, Simulation

Scenario = Callable[[Simulation], Any]
# A seed's outcome as workers report it: (seed, error text or None, trace hash).
SeedOutcome = tuple[int, "str | None", "str | None"]


@dataclass
class Outcome:
    """One run of a scenario for one seed."""

    seed: int
    error: BaseException | None
    plan: FaultPlan | None
    result: SimResult | None  # None when the scenario raised before run() returned

    @property
    def failed(self) -> bool:
        return self.error is not None

    @property
    def trace_hash(self) -> str | None:
        return None if self.result is None else self.result.trace_hash


def run_seed(
    scenario: Scenario,
    seed: int,
    faults: FaultPlan | Swarm | str | None = "swarm",
    *,
    timeline: str | None = None,
    **options: Any,
) -> Outcome:
    """Run `scenario` once for `seed` with `faults` (a plan replays it; "swarm"
    draws one); `timeline`: a path to write the run's Perfetto trace to.
    `options` go to Simulation (explore, latency, ...)."""
    sim = Simulation(seed, faults=faults, timeline=timeline is not None, **options)
    error: BaseException | None = None
    try:
        scenario(sim)
    except Exception as exc:  # the scenario's verdict (KeyboardInterrupt stops the search)
        error = exc
    if timeline is not None and sim._ran:
        sim.write_timeline(timeline)
    return Outcome(seed, error, sim.plan, sim.result)


def _error_text(error: BaseException) -> str:
    """The exception's first line (pytest's assertion rewriting adds more)."""
    return "".join(traceback.format_exception_only(type(error), error)).strip().splitlines()[0]


def _where(error: BaseException) -> tuple[type[BaseException], str | None, int | None]:
    """An error's type and the line that raised it: what makes two failures
    the same bug (Hypothesis tells failures apart the same way)."""
    tb = error.__traceback__
    if tb is None:
        return type(error), None, None
    while tb.tb_next is not None:
        tb = tb.tb_next
    return type(error), tb.tb_frame.f_code.co_filename, tb.tb_lineno


def _same_failure(error: BaseException | None, original: BaseException) -> bool:
    return error is not None and _where(error) == _where(original)


# -- shrinking ------------------------------------------------------------------


def shrink(
    scenario: Scenario,
    seed: int,
    plan: FaultPlan,
    error: BaseException,
    *,
    max_runs: int = 300,
    **options: Any,
) -> tuple[FaultPlan, int]:
    """The smallest plan found for which `scenario` at `seed` still fails
    as `error` did (its type, raised by the same line: not another bug the
    smaller plan may reveal), and how many runs that took.

    Greedy, to a fixed point (or `max_runs`): schedule exploration off;
    faults removed by delta debugging (halves, quarters, ... single
    faults); network rates and latency back to the simulation's defaults;
    then each fault made smaller in its own ways (shorter, one-way, fewer
    hosts, a smaller clock fault) as long as the failure stays.  At the end no
    single fault can be removed (unless the budget ran out)."""
    runs = 0

    def fails(candidate: FaultPlan) -> bool:
        nonlocal runs
        runs += 1
        return _same_failure(run_seed(scenario, seed, candidate, **options).error, error)

    current = plan
    end = plan.liveness if plan.liveness is not None else max([f.at for f in plan.faults] + [0.0])
    changed = True
    while changed and runs < max_runs:
        changed = False
        if current.explore:
            candidate = dataclasses.replace(current, explore=False)
            if fails(candidate):
                current, changed = candidate, True
        # Delta debugging over the faults: remove chunks, halving their size.
        faults = list(current.faults)
        chunks = 2
        while faults and runs < max_runs:
            size = -(-len(faults) // chunks)
            for start in range(0, len(faults), size):
                rest = faults[:start] + faults[start + size :]
                candidate = dataclasses.replace(current, faults=tuple(rest))
                if fails(candidate):
                    current, faults, changed = candidate, rest, True
                    chunks = max(chunks - 1, 2)
                    break
                if runs >= max_runs:
                    break
            else:
                if size == 1:
                    break
                chunks = min(chunks * 2, len(faults))
        # The network's rates and latency back to the simulation's own.
        for name in ("drop", "duplicate", "reorder", "latency"):
            if getattr(current, name) is not None and runs < max_runs:
                candidate = _with(current, name, None)
                if fails(candidate):
                    current, changed = candidate, True
        for name in ("drop", "duplicate", "reorder"):
            while (value := getattr(current, name)) and value > 0.001 and runs < max_runs:
                candidate = _with(current, name, round(value / 2, 4))
                if not fails(candidate):
                    break
                current, changed = candidate, True
        # Each fault smaller, as far as it goes.
        for index in range(len(current.faults)):
            progress = True
            while progress and runs < max_runs:
                progress = False
                for smaller in current.faults[index].smaller(end):
                    faults = list(current.faults)
                    faults[index] = smaller
                    candidate = dataclasses.replace(current, faults=tuple(faults))
                    if fails(candidate):
                        current, changed, progress = candidate, True, True
                        break
                    if runs >= max_runs:
                        break
    return dataclasses.replace(current, origin=f"shrunk from {plan.origin or 'a plan'}"), runs


# -- the report --------------------------------------------------------------------


@dataclass
class Failure:
    """A failing seed, and what a person needs to understand and replay it."""

    seed: int
    error: BaseException
    plan: FaultPlan | None
    hash_seed: str
    seeds_run: int
    shrunk: FaultPlan | None = None
    shrunk_error: BaseException | None = None
    shrink_runs: int = 0
    replayed: bool | None = None  # the failure came back, with the same trace hash, when run again
    trace_path: str | None = None
    shrunk_trace_path: str | None = None
    plan_path: str | None = None
    shrunk_plan_path: str | None = None
    replay: str = ""
    replay_shrunk: str = ""
    traceback: str = ""
    trace_hash: str | None = None  # this process's run of the seed
    # Where another process (a worker) found the failure: its run's trace hash
    # and where that was, to compare with this process's run.
    found_trace_hash: str | None = None
    found_where: str = ""

    def report(self) -> str:
        lines = [
            f"tidal.sim: seed {self.seed} failed (after {self.seeds_run} seed"
            f"{'s' if self.seeds_run != 1 else ''})",
            f"  {_error_text(self.error)}",
            f"PYTHONHASHSEED: {self.hash_seed}"
            + (
                "  (unset: set it to replay runs that depend on the order of sets of strings)"
                if self.hash_seed == "random"
                else ""
            ),
        ]
        if self.replayed is not None:
            lines.append(
                "replayed: "
                + (
                    "the same failure, the same trace hash"
                    if self.replayed
                    else "DID NOT REPRODUCE"
                )
            )
        if self.trace_hash is not None:
            found, where = self.found_trace_hash, self.found_where or "the worker"
            lines.append(
                f"trace hash: {self.trace_hash}"
                + (
                    ""
                    if found is None
                    else f", the same as the run on {where}"
                    if found == self.trace_hash
                    else f", NOT that of the run on {where} ({found}): not the same run"
                )
            )
        if self.plan is not None:
            lines.append(f"fault plan ({self.plan.origin or 'given'}, {len(self.plan)} faults):")
            lines.append(_indent(str(self.plan)))
        if self.shrunk is not None:
            lines.append(
                f"shrunk plan ({self.shrink_runs} runs; {len(self.plan or ())} -> "
                f"{len(self.shrunk)} faults, weight "
                f"{self.plan.weight if self.plan is not None else '?'} -> "
                f"{self.shrunk.weight}):"
            )
            lines.append(_indent(str(self.shrunk)))
            if self.shrunk_error is not None:
                lines.append(f"  fails with: {_error_text(self.shrunk_error)}")
        if self.trace_path:
            lines.append(f"trace (Perfetto, one process per host, virtual time): {self.trace_path}")
        if self.shrunk_trace_path:
            lines.append(f"trace of the shrunk run: {self.shrunk_trace_path}")
        if self.replay:
            lines.append(f"replay: {self.replay}")
        if self.replay_shrunk:
            lines.append(f"replay the shrunk plan: {self.replay_shrunk}")
        return "\n".join(lines)

    __str__ = report


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


@dataclass
class SearchResult:
    """What ``search`` found: how many seeds ran, and the first failure (or None)."""

    seeds_run: int
    failure: Failure | None
    seconds: float
    hashes: dict[int, str | None] = field(
        default_factory=dict
    )  # seed -> trace hash (kept if asked)

    @property
    def ok(self) -> bool:
        return self.failure is None


# -- the search ----------------------------------------------------------------------


def _seed_list(seeds: int | Iterable[int]) -> list[int]:
    return list(range(seeds)) if isinstance(seeds, int) else list(seeds)


def _run_chunk(
    scenario: Scenario, seeds: Sequence[int], faults: Any, options: dict[str, Any]
) -> list[SeedOutcome]:
    """A worker's share: (seed, error text or None, trace hash) up to its first failure."""
    out = []
    for seed in seeds:
        outcome = run_seed(scenario, seed, faults, **options)
        out.append(
            (
                seed,
                None if outcome.error is None else _error_text(outcome.error),
                outcome.trace_hash,
            )
        )
        if outcome.failed:
            break
    return out


class HashSeedMismatch(RuntimeError):
    """A worker would not run a seed as this process does."""


def fixed_hash_seed(what: str) -> str:
    """This process's PYTHONHASHSEED, which worker processes get too; an
    error when it is unset (then no other process hashes strings as this
    one does, and a seed could pass there and fail here)."""
    value = os.environ.get("PYTHONHASHSEED", "random")
    if value == "random":
        raise HashSeedMismatch(
            f"{what} need PYTHONHASHSEED set in this process, so that the workers "
            "hash strings as it does and a failure replays here: run it as "
            "PYTHONHASHSEED=0 python ... (python -m tidal sim sets it itself)"
        )
    return value


def _outcomes_in_parallel(
    scenario: Scenario, seeds: list[int], faults: Any, options: dict[str, Any], jobs: int
) -> Generator[SeedOutcome, None, None]:
    """Every seed's (seed, error, hash), in seed order, computed by `jobs`
    worker processes; the caller stops reading at the first failure."""
    chunk = max(1, min(64, len(seeds) // (jobs * 4) or 1))
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
        futures = [
            pool.submit(_run_chunk, scenario, seeds[i : i + chunk], faults, options)
            for i in range(0, len(seeds), chunk)
        ]
        try:
            for future in futures:
                yield from future.result()
        finally:
            for future in futures:
                future.cancel()


def search(
    scenario: Scenario,
    seeds: int | Iterable[int] = 100,
    *,
    faults: FaultPlan | Swarm | str | None = "swarm",
    shrink_plan: bool = True,
    max_shrink_runs: int = 300,
    jobs: int = 1,
    trace_dir: str | None = None,
    replay: Callable[[int, str | None], str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    keep_hashes: bool = False,
    runner: Callable[[list[int]], Iterator[SeedOutcome]] | None = None,
    dask: Any = None,
    **options: Any,
) -> SearchResult:
    """Run `scenario` for each seed until one fails; replay, shrink and
    report that one.

    `faults`: "swarm" (a plan drawn from each seed; a ``Swarm`` narrows
    what it draws), a fixed ``FaultPlan``, or None.  `jobs`: worker
    processes (the scenario must then be picklable: a module-level
    function).  `trace_dir`: where the failing run's trace and plans go (a
    new temporary directory by default).  `replay(seed, plan_file)`: the
    command that replays a seed (with a plan file for the shrunk plan), for
    the report.  `progress(done, total)` is called after each seed.
    `runner(seeds)`: seeds run elsewhere (the pytest plugin's worker
    processes), as (seed, error text or None, trace hash) in seed order.
    `dask`: a ``distributed.Client`` or a scheduler address: the seeds run
    on that Dask cluster (``_dask``; needs the ``tidal[dask]`` extra).
    `options` go to each Simulation (explore=True, latency, ...)."""
    seed_list = _seed_list(seeds)
    started = time.perf_counter()
    hashes: dict[int, str | None] = {}
    failed_seed: int | None = None
    done = 0
    stream: Iterator[SeedOutcome]
    if dask is not None:
        from ._dask import DaskRunner

        runner = DaskRunner(dask, scenario, faults, options)
    if runner is not None:
        stream = runner(seed_list)
    elif jobs > 1:
        try:
            pickle.dumps((scenario, faults, options))
        except Exception as exc:
            raise TypeError(
                f"jobs={jobs} hands the scenario to worker processes: it must pickle "
                f"(a module-level function, or a functools.partial of one): {exc}"
            ) from exc
        fixed_hash_seed(f"seeds in {jobs} worker processes")
        stream = _outcomes_in_parallel(scenario, seed_list, faults, options, jobs)
    else:
        stream = (
            (o.seed, None if o.error is None else "", o.trace_hash)
            for o in (run_seed(scenario, seed, faults, **options) for seed in seed_list)
        )
    failed_error = failed_hash = None
    for seed, error, trace_hash in stream:
        done += 1
        if keep_hashes:
            hashes[seed] = trace_hash
        if progress is not None:
            progress(done, len(seed_list))
        if error is not None:
            failed_seed, failed_error, failed_hash = seed, error, trace_hash
            break
    close = getattr(stream, "close", None)
    if close is not None:
        close()  # (workers still running are stopped)
    elapsed = time.perf_counter() - started
    if failed_seed is None:
        return SearchResult(done, None, elapsed, hashes)
    failure = investigate(
        scenario,
        failed_seed,
        faults,
        seeds_run=done,
        shrink_plan=shrink_plan,
        max_shrink_runs=max_shrink_runs,
        trace_dir=trace_dir,
        replay=replay,
        **options,
    )
    if failure is None:
        raise NondeterminismError(
            f"seed {failed_seed} failed in a worker process ({failed_error}) "
            "but passed when run again here: something escaped the seed"
        )
    if runner is not None or jobs > 1:
        failure.found_trace_hash = failed_hash
        failure.found_where = getattr(runner, "where", "") or "a worker process"
    return SearchResult(done, failure, elapsed, hashes)


def investigate(
    scenario: Scenario,
    seed: int,
    faults: FaultPlan | Swarm | str | None = "swarm",
    *,
    seeds_run: int = 1,
    shrink_plan: bool = True,
    max_shrink_runs: int = 300,
    trace_dir: str | None = None,
    replay: Callable[[int, str | None], str] | None = None,
    **options: Any,
) -> Failure | None:
    """Run a seed known to fail (None if it passes after all), run it again
    with a timeline to check it replays, shrink its plan, and gather the
    report."""
    first = run_seed(scenario, seed, faults, **options)
    if first.error is None:
        return None
    directory = trace_dir or tempfile.mkdtemp(prefix="tidal-sim-")
    os.makedirs(directory, exist_ok=True)
    stem = os.path.join(directory, f"seed-{seed}")
    trace_path = f"{stem}.trace.json"
    again = run_seed(scenario, seed, faults, timeline=trace_path, **options)
    failure = Failure(
        seed,
        first.error,
        first.plan,
        os.environ.get("PYTHONHASHSEED", "random"),
        seeds_run,
        replayed=_same_failure(again.error, first.error) and again.trace_hash == first.trace_hash,
        trace_path=trace_path if os.path.exists(trace_path) else None,
        traceback="".join(traceback.format_exception(first.error)),
        trace_hash=first.trace_hash,
    )
    if first.plan is not None:
        failure.plan_path = first.plan.save(f"{stem}.plan.json")
        if shrink_plan:
            shrunk, runs = shrink(
                scenario, seed, first.plan, first.error, max_runs=max_shrink_runs, **options
            )
            failure.shrunk, failure.shrink_runs = shrunk, runs
            failure.shrunk_plan_path = shrunk.save(f"{stem}.shrunk-plan.json")
            shrunk_trace = f"{stem}.shrunk.trace.json"
            last = run_seed(scenario, seed, shrunk, timeline=shrunk_trace, **options)
            failure.shrunk_error = last.error
            if os.path.exists(shrunk_trace):
                failure.shrunk_trace_path = shrunk_trace
    if replay is not None:
        failure.replay = replay(seed, None)
        if failure.shrunk_plan_path is not None:
            failure.replay_shrunk = replay(seed, failure.shrunk_plan_path)
    return failure
