"""A simulated host: its name, address, main task, clock and tasks.

Every task and callback of a host runs in a context where ``current_host``
is that host: it is set in the context its main task is created with, and
asyncio copies the current context into every task and callback made from
there.  That is how the simulation's socket factory, resolver, clocks and
random generator know whom they are working for.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import random
from typing import Any, Callable

from ._clock import to_ns

current_host: contextvars.ContextVar[Host] = contextvars.ContextVar("tidal.sim.host")


def host_address(number: int) -> str:
    """Host `number`'s address (the first host is 1): 127.1.0.1, 127.1.0.2,
    ...: loopback addresses, never routable, so code that bypasses the loop
    and opens a real socket reaches nothing beyond this machine."""
    return f"127.{1 + number // 65536}.{number // 256 % 256}.{number % 256}"


class HostCrashed(Exception):
    """A host's result while it is crashed (and not restarted)."""


class Host:
    """One simulated machine: what ``Simulation.host`` registered."""

    def __init__(
        self, name: str, index: int, main: Callable[..., Any], args: tuple[Any, ...], seed: int
    ) -> None:
        self.name = name
        # Its number stands for its address in the network's trace events.
        self.number = index + 1
        self.address = host_address(self.number)
        self.main = main
        self.args = args
        self.seed = seed
        self.up = False
        self.generation = 0
        self.tasks: dict[asyncio.Task[Any], None] = {}
        self.main_task: asyncio.Task[Any] | None = None
        self.result: Any = None
        self.done = False
        # (Seeded at each boot, see reseed(); seeded 0 until then, not from
        # os.urandom as Random() would be: 2.5 kB of the kernel's, unused.)
        self.random = random.Random(0)
        self.next_port = 49152
        # Its Unix socket files (path -> sim._unix._Node), kept across a
        # crash as a disk is, and the inode numbers they were given.
        self.unix_paths: dict[Any, Any] = {}
        self.unix_inodes = 0
        # The clock: local = anchor_local + (global - anchor_global) * rate,
        # in ns.  `identity` while that is the global clock itself.
        self.identity = True
        self.rate = 1.0
        self.anchor_global = 0
        self.anchor_local = 0

    def __repr__(self) -> str:
        return f"<Host {self.name} {self.address} {'up' if self.up else 'down'}>"

    # -- the clock ---------------------------------------------------------

    def local_ns(self, global_ns: int) -> int:
        """This host's reading of the clock at the simulation's `global_ns`."""
        if self.identity:
            return global_ns
        return self.anchor_local + round((global_ns - self.anchor_global) * self.rate)

    def global_ns(self, local_ns: int) -> int:
        """The simulation's time at which this host's clock reads `local_ns`
        (rounded up: a timer never fires before its local deadline)."""
        if self.identity:
            return local_ns
        return self.anchor_global + math.ceil((local_ns - self.anchor_local) / self.rate)

    def set_clock(
        self, now_ns: int, offset: float | None, drift: float | None, step: float | None
    ) -> None:
        """From `now_ns` on: read `offset` s ahead of true time (if given), or
        jump by `step` s; run fast by `drift` s per s (if given)."""
        reading = self.local_ns(now_ns)
        if offset is not None:
            reading = now_ns + to_ns(offset)
        if step is not None:
            reading += to_ns(step)
        if drift is not None:
            if drift <= -1:
                raise ValueError("drift must be above -1 (a clock that runs forward)")
            self.rate = 1.0 + drift
        self.anchor_global = now_ns
        self.anchor_local = reading
        self.identity = reading == now_ns and self.rate == 1.0

    # -- life ----------------------------------------------------------------

    def reseed(self) -> None:
        """Fresh per-boot randomness: the same for the same seed, host and boot."""
        self.random.seed(f"tidal.sim:{self.seed}:{self.name}:{self.generation}")

    def ephemeral_port(self) -> int:
        port = self.next_port
        self.next_port = 49152 if port >= 65535 else port + 1
        return port
