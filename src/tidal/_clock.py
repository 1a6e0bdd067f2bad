"""The loop's clock: the one place tidal reads the time.

The loop never calls ``time.monotonic()`` itself; it asks the clock it was
given.  That is the seam a virtual clock (for deterministic tests that jump
time forward when the loop is idle) plugs into without touching the loop.
"""

from __future__ import annotations

import time


class MonotonicClock:
    """Wall-clock-independent seconds, as asyncio's loop uses."""

    __slots__ = ("now", "resolution")

    def __init__(self) -> None:
        # `now` is the bound C function itself: calling it costs no Python frame.
        self.now = time.monotonic
        self.resolution: float = time.get_clock_info("monotonic").resolution
