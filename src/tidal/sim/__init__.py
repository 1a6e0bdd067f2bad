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
See docs/simulation.md.
"""

from __future__ import annotations

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

__all__ = [
    "DeadlockError",
    "HostCrashed",
    "NondeterminismError",
    "SimEventLoop",
    "SimResult",
    "Simulation",
    "StillRunning",
    "check_determinism",
    "new_event_loop",
    "run",
]
