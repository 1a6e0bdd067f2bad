"""Deterministic simulation: asyncio programs in virtual time, replayable from a seed.

``tidal.sim.run(main(), seed=1)`` runs one program on a tidal loop whose
clock is virtual: ``asyncio.sleep(3600)`` returns at once, with
``loop.time()`` exactly 3600 s later.  Inside the run, ``time.time()`` and
the other clocks, ``random``'s global generator and ``os.urandom`` (so
``uuid.uuid4``) come from the seed: the same seed gives the same run.  A run
that can never finish (every task waits for something nothing will do)
raises ``DeadlockError`` instead of hanging.  ``new_event_loop(seed=...)`` is
the same loop as a loop factory.

``Simulation(seed=7)`` runs several hosts' programs in one such loop, over a
simulated TCP/UDP network with faults (partitions, crashes and restarts,
clock skew, latency, loss): ``s.host(...)``, faults, ``s.run(until=...)``.
``Simulation(seed, faults="swarm")`` draws the whole fault plan from the
seed; ``search(scenario, seeds=500)`` runs a scenario over seeds (in worker
processes with ``jobs=N``, on a Dask cluster with ``dask=client``), and
shrinks and reports the first failure (``FaultPlan``, ``swarm``, ``search``).
See docs/simulation.md.
"""

from __future__ import annotations

from ._faults import (
    Clock,
    Crash,
    Fault,
    FaultPlan,
    Heal,
    Link,
    Partition,
    Restart,
    Swarm,
    swarm,
)
from ._host import HostCrashed
from ._loop import SimEventLoop, new_event_loop, run
from ._poller import DeadlockError
from ._simulation import (
    NondeterminismError,
    SimResult,
    Simulation,
    StillRunning,
    check_determinism,
)
from ._search import (
    Failure,
    HashSeedMismatch,
    Outcome,
    SearchResult,
    investigate,
    run_seed,
    search,
    shrink,
)

__all__ = [
    "Clock",
    "Crash",
    "DeadlockError",
    "Failure",
    "Fault",
    "FaultPlan",
    "HashSeedMismatch",
    "Heal",
    "HostCrashed",
    "Link",
    "NondeterminismError",
    "Outcome",
    "Partition",
    "Restart",
    "SearchResult",
    "SimEventLoop",
    "SimResult",
    "Simulation",
    "StillRunning",
    "Swarm",
    "check_determinism",
    "investigate",
    "new_event_loop",
    "run",
    "run_seed",
    "search",
    "shrink",
    "swarm",
]
