"""The loop's clock: the one place tidal reads the time.

The loop never calls ``time.monotonic()`` itself; it asks the clock it was
given.  That is the seam a virtual clock (for deterministic tests that jump
time forward when the loop is idle) plugs into without touching the loop.
"""

from __future__ import annotations

import functools
import time


class MonotonicClock:
    """Wall-clock-independent seconds, as asyncio's loop uses."""

    __slots__ = ("now", "resolution")

    def __init__(self) -> None:
        # `now` is the bound C function itself: calling it costs no Python frame.
        self.now = time.monotonic
        self.resolution: float = time.get_clock_info("monotonic").resolution


class ManualClock:
    """A clock whose time is a field that its owner moves (a virtual clock).

    The compiled loop reads `seconds` as a C double (_clock.pxd) instead of
    calling now(): a simulated loop reads its clock twice per turn, and a
    call (``now`` is getattr bound to this object and the name) costs more
    than the rest of such a turn's bookkeeping.  now() gives the same value.
    """

    __slots__ = ("seconds", "now", "resolution")

    def __init__(self, resolution: float = 1e-9) -> None:
        self.seconds = 0.0
        self.now = functools.partial(getattr, self, "seconds")
        self.resolution = resolution
