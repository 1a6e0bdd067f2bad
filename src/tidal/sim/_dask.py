"""Seeds on a Dask cluster: ``search(scenario, seeds, dask=client)``.

Dask (``distributed``, the ``tidal[dask]`` extra) hands out the work; this
module only says what a task is.  A task is a chunk of seeds, run in seed
order up to its first failure, answering (seed, error text or None, trace
hash) for each: the stream ``search`` reads, in seed order, so the failure
reported is the first in seed order, found again and shrunk locally.

Each Dask worker runs the seeds in a child process of its own (one per
worker thread, kept for the next tasks of the same calling process), not
in the worker itself, for two reasons:

- A simulation patches ``time``, ``random`` and ``os.urandom`` process-wide
  while it runs.  In the worker process the worker's own event loop thread
  would read virtual time, and anything it draws from ``random`` or
  ``os.urandom`` (ids, keys) would come out of the run's sequence: the run
  would no longer be a function of its seed.
- The run must hash strings as this process does (sets of strings iterate
  in hash order).  Dask's nanny starts workers with its own PYTHONHASHSEED
  (6640 unless configured); the child is started with this process's.  Each
  chunk's answer carries the child's identity (Python, tidal, the hash of a
  probe string), and a child that would not give this process's runs (its
  hash secret differs, or it is another Python or tidal) stops the search
  with an error that says which worker and why.

A search needs PYTHONHASHSEED set in this process (``python -m tidal sim``
sets it); then a failing seed from any worker replays identically here,
which the report checks by the trace hash.
"""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
import threading
import uuid
from typing import IO, Any, Iterator

from ._search import HashSeedMismatch, SeedOutcome, _run_chunk, fixed_hash_seed

_PROBE = "tidal.sim: a probe of the hash secret"
# This process, as the workers' children know it (made at import: outside any run).
_SESSION = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"


def identity() -> dict[str, Any]:
    """What decides whether a process runs a seed as another one does."""
    import tidal

    return {
        "python": sys.version.split()[0],
        "tidal": tidal.__version__,
        "PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED", "random"),
        "hash": hash(_PROBE),
    }


def difference(here: dict[str, Any], there: dict[str, Any]) -> str:
    """Why `there` would run seeds differently from `here` ("" if it would not)."""
    if here["python"] != there["python"]:
        return f"it runs Python {there['python']}, this process {here['python']}"
    if here["tidal"] != there["tidal"]:
        return f"it runs tidal {there['tidal']}, this process {here['tidal']}"
    if here["hash"] != there["hash"]:
        if here["PYTHONHASHSEED"] == there["PYTHONHASHSEED"]:
            return (
                f"it hashes strings as PYTHONHASHSEED={there['PYTHONHASHSEED']} does, and "
                "this process does not (was PYTHONHASHSEED set after it started?)"
            )
        return (
            f"its PYTHONHASHSEED is {there['PYTHONHASHSEED']}, this process's "
            f"{here['PYTHONHASHSEED']}"
        )
    return ""


# -- on the worker -----------------------------------------------------------


class _Child:
    """A process running chunks of seeds for one Dask worker thread at a time,
    for one calling process (`session`)."""

    def __init__(self, hash_seed: str, session: str) -> None:
        self.key = (hash_seed, session)
        self.process = subprocess.Popen(
            # Not `-m tidal.sim._dask`: the package imports this module first,
            # and runpy would run a second copy of it as __main__.
            [sys.executable, "-c", "from tidal.sim._dask import child_main; child_main()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
        )

    def run(self, request: tuple[Any, ...]) -> Any:
        assert self.process.stdin is not None and self.process.stdout is not None
        _send(self.process.stdin, request)
        answer = _receive(self.process.stdout)
        if answer is None:
            raise RuntimeError(
                f"tidal.sim's process on this worker died (exit status {self.close()})"
            )
        kind, value = answer
        if kind == "error":
            self.close()
            raise RuntimeError(f"tidal.sim's process on this worker failed:\n{value}")
        return value

    def close(self) -> int:
        """End the process (it stops at the end of its input)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
        self.process.stdout.close()
        return self.process.wait()


# Children waiting for work.  A calling process gets children of its own
# (`session`): they import the modules its scenario uses afresh, as the
# calling process did, rather than keep those of an earlier search.
_idle: list[_Child] = []
_idle_lock = threading.Lock()


def work(
    payload: bytes, seeds: list[int], hash_seed: str, session: str
) -> tuple[dict[str, Any], str, list[SeedOutcome]]:
    """A Dask task: `seeds` run in a child process with `hash_seed`; the
    child's identity, this worker's address, and the outcomes."""
    from distributed import get_worker

    key = (hash_seed, session)
    with _idle_lock:
        stale = [c for c in _idle if c.key != key]
        mine = [c for c in _idle if c.key == key]
        child = mine.pop() if mine else None
        _idle[:] = mine
    for old in stale:
        old.close()
    if child is None:
        child = _Child(hash_seed, session)
    child_identity, outcomes = child.run((sys.path, payload, seeds))
    with _idle_lock:  # not reached when the child failed: a new one next time
        _idle.append(child)
    return child_identity, get_worker().address, outcomes


def _send(stream: IO[bytes], value: Any) -> None:
    data = pickle.dumps(value)
    stream.write(len(data).to_bytes(8, "little") + data)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    header = stream.read(8)
    if len(header) < 8:
        return None
    return pickle.loads(stream.read(int.from_bytes(header, "little")))


def child_main() -> None:
    """The child: requests (sys.path, payload, seeds) on stdin, answers on
    the original stdout (the scenario's prints go to stderr)."""
    import traceback

    requests = os.fdopen(os.dup(0), "rb")
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    job: Any = None
    last_payload = b""
    me = identity()
    while (request := _receive(requests)) is not None:
        path, payload, seeds = request
        try:
            for entry in reversed(path):
                if entry not in sys.path:
                    sys.path.insert(0, entry)
            if payload != last_payload:
                job, last_payload = pickle.loads(payload), payload
            scenario, faults, options = job
            answer: tuple[str, Any] = ("ok", (me, _run_chunk(scenario, seeds, faults, options)))
        except Exception:
            answer = ("error", traceback.format_exc())
        _send(answers, answer)


# -- on the client -------------------------------------------------------------


def distributed() -> Any:
    """dask.distributed, or an ImportError that names the extra to install."""
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(
            "running seeds on Dask needs dask.distributed: pip install 'tidal[dask]'"
        ) from exc
    return distributed


class DaskRunner:
    """``search``'s runner over a Dask cluster: `dask` is a
    ``distributed.Client`` or a scheduler address ("tcp://host:8786")."""

    def __init__(self, dask: Any, scenario: Any, faults: Any, options: dict[str, Any]) -> None:
        self.hash_seed = fixed_hash_seed("seeds on a Dask cluster")
        dask_distributed = distributed()
        import cloudpickle  # a dependency of distributed

        self.identity = identity()
        self.own_client = isinstance(dask, str)
        self.client = dask_distributed.Client(dask) if self.own_client else dask
        self.payload = cloudpickle.dumps((scenario, faults, options))
        self.where = ""

    def _check(self, there: dict[str, Any], worker: str) -> None:
        why = difference(self.identity, there)
        if why:
            raise HashSeedMismatch(
                f"the Dask worker {worker} would not run a seed as this process does: "
                f"{why}; a failure it found would not replay here"
            )

    def __call__(self, seeds: list[int]) -> Iterator[SeedOutcome]:
        client = self.client
        try:
            threads = max(1, sum(client.nthreads().values()))
            size = max(1, min(256, len(seeds) // (threads * 8)))
            chunks = [seeds[i : i + size] for i in range(0, len(seeds), size)]
            payload = client.scatter(self.payload, broadcast=True)
            window = threads * 4
            futures: list[Any] = []

            def submit(index: int) -> None:
                if index < len(chunks):
                    futures.append(
                        client.submit(
                            work, payload, chunks[index], self.hash_seed, _SESSION, pure=False
                        )
                    )

            for index in range(window):
                submit(index)
            try:
                for index in range(len(chunks)):
                    there, worker, outcomes = futures[index].result()
                    submit(index + window)
                    self._check(there, worker)
                    self.where = f"the Dask worker {worker}"
                    yield from outcomes
            finally:
                client.cancel(futures)
        finally:
            if self.own_client:
                client.close()
