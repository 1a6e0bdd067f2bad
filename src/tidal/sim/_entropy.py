"""Everything a program can observe that varies between runs, drawn from the seed.

While a simulated loop runs, the ``time`` module's clocks read virtual time,
``random``'s global generator continues the run's own sequence, and
``os.urandom`` (so ``uuid.uuid4``, ``secrets``, ``random.SystemRandom``)
returns bytes from the seed.  The patches are installed when the loop starts
running and removed when it stops, so the process outside the run sees the
real ones; each run resumes its own sequences where it left them.  One
simulated loop runs at a time per process (the patches are global).
"""

from __future__ import annotations

import os
import random
import time
from typing import Any, Callable

from ._clock import EPOCH_NS, NS_PER_S

# The simulated loop whose patches are in place, if any.
_active: Any = None

# random's module-level functions: bound methods of its hidden global
# generator.  Inside a simulation each is replaced by one that asks the
# generator of the host whose code calls it (see Entropy).
_RANDOM_FUNCTIONS = tuple(
    name
    for name in (
        "seed", "random", "uniform", "triangular", "randint", "choice", "randrange", "sample",
        "shuffle", "choices", "normalvariate", "lognormvariate", "expovariate", "vonmisesvariate",
        "gammavariate", "gauss", "betavariate", "binomialvariate", "paretovariate",
        "weibullvariate", "getstate", "setstate", "getrandbits", "randbytes",
    )
    if hasattr(random, name)
)  # fmt: skip


def _seeded(seed: int, purpose: str) -> random.Random:
    """A generator for one purpose of one seed (a str seed: the same in every process)."""
    return random.Random(f"tidal.sim:{seed}:{purpose}")


class Entropy:
    """The seed's time and randomness, installed over the real ones while a run is on.

    `now_ns` gives the virtual time (ns since the run began) as the code
    asking should see it; `host_random` the generator of the host asking
    (None outside hosts: then the module's own generator, which continues
    the run's sequence; code that bound ``random.random`` before the run
    sees that one too).
    """

    __slots__ = (
        "_now_ns", "_host_random", "_random_state", "_urandom", "_saved", "_owner", "patches",
        "_own", "_originals",
    )  # fmt: skip

    def __init__(
        self,
        seed: int,
        now_ns: Callable[[], int],
        host_random: Callable[[], random.Random | None] | None = None,
    ) -> None:
        self._now_ns = now_ns
        self._host_random = host_random
        self._random_state = _seeded(seed, "random").getstate()
        self._urandom = _seeded(seed, "urandom")
        self._saved: list[tuple[Any, str, Any]] = []
        self._owner: Any = None
        # The clock, urandom and random patches, made at the first install
        # and kept: a Simulation installs once per run, a loop alone once
        # per run_until_complete (asyncio.Runner: four per run), and the
        # two dozen closures need not be made again each time.
        self._own: list[tuple[Any, str, Any]] | None = None
        # random's module functions as the process had them before install.
        self._originals: dict[str, Any] = {}
        # More (module, name, value) patches for the run, from whoever
        # simulates more of the world (the network: socket.socket).
        self.patches: list[tuple[Any, str, Any]] = []

    def urandom(self, size: int) -> bytes:
        """os.urandom inside the run: bytes from the seed."""
        if size < 0:
            raise ValueError("negative argument not allowed")
        return self._urandom.randbytes(size)

    @property
    def installed(self) -> bool:
        """Whether the patches are in place (this Entropy's)."""
        return self._owner is not None

    def _replacements(self) -> list[tuple[Any, str, Any]]:
        own = self._own
        if own is None:
            own = self._own = self._make_own()
        return own + self.patches

    def _make_own(self) -> list[tuple[Any, str, Any]]:
        now_ns = self._now_ns

        def time_ns() -> int:
            return EPOCH_NS + now_ns()

        def time_() -> float:
            return (EPOCH_NS + now_ns()) / NS_PER_S

        def monotonic_ns() -> int:
            return now_ns()

        def monotonic() -> float:
            return now_ns() / NS_PER_S

        clocks = {
            "time": time_,
            "time_ns": time_ns,
            "monotonic": monotonic,
            "monotonic_ns": monotonic_ns,
            "perf_counter": monotonic,
            "perf_counter_ns": monotonic_ns,
        }
        patches: list[tuple[Any, str, Any]] = [(time, name, f) for name, f in clocks.items()]
        # random binds os.urandom at import (SystemRandom, secrets, seed()).
        patches += [(os, "urandom", self.urandom), (random, "_urandom", self.urandom)]
        if self._host_random is not None:
            patches += [(random, name, self._per_host(name)) for name in _RANDOM_FUNCTIONS]
        return patches

    def _per_host(self, name: str) -> Callable[..., Any]:
        """random.<name>, on the generator of the host that calls it."""
        host_random = self._host_random
        assert host_random is not None
        # What random.<name> was when the patches went in (install() keeps
        # it up to date: the patches are made once, the module may change
        # between runs).
        originals = self._originals

        def per_host(*args: Any, **kwargs: Any) -> Any:
            generator = host_random()
            if generator is None:
                return originals[name](*args, **kwargs)
            return getattr(generator, name)(*args, **kwargs)

        per_host.__name__ = per_host.__qualname__ = name
        per_host.__doc__ = getattr(random, name).__doc__
        return per_host

    def install(self, owner: Any) -> None:
        global _active
        if _active is not None:
            raise RuntimeError(
                f"a simulation is already running in this process ({_active!r}): "
                "its time and randomness patches are process-wide"
            )
        _active = owner
        self._owner = owner
        originals = self._originals
        for module, name, value in self._replacements():
            original = getattr(module, name)
            self._saved.append((module, name, original))
            if module is random:
                originals[name] = original
            setattr(module, name, value)
        outer_state = random.getstate()
        random.setstate(self._random_state)
        self._random_state = outer_state

    def remove(self) -> None:
        global _active
        if self._owner is None:
            return
        # Swap back: the run's sequence is kept for its next run.
        run_state = random.getstate()
        random.setstate(self._random_state)
        self._random_state = run_state
        for module, name, value in reversed(self._saved):
            setattr(module, name, value)
        self._saved.clear()
        self._owner = None
        _active = None
