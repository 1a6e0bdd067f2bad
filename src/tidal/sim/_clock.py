"""Virtual time: the clock a simulated loop reads, in integer nanoseconds.

The loop reads time only through its clock (``tidal._clock``), so virtual
time is this object and nothing in the loop changes.  The count is an int of
nanoseconds: sums of floats drift (0.1 s ten times is not 1.0 s), and two
runs must agree to the bit.  ``now()`` gives seconds as the loop wants them,
``ns / 10**9``, correctly rounded from the exact count, so the error never
accumulates.  Time moves only when the simulated poller jumps it to the next
timer (see ``_poller``).
"""

from __future__ import annotations

from .._clock import ManualClock

NS_PER_S = 1_000_000_000

# time.time() inside a simulation: this epoch plus the virtual time
# (2024-01-01 00:00:00 UTC), fixed so that every run of a seed sees the same
# dates.
EPOCH_NS = 1_704_067_200 * NS_PER_S


def to_ns(seconds: float) -> int:
    """Seconds as whole nanoseconds, rounded to the nearest."""
    return round(seconds * NS_PER_S)


class VirtualClock(ManualClock):
    """The loop's clock in a simulation: seconds since the run began."""

    __slots__ = ("ns",)

    def __init__(self) -> None:
        # Timers within a nanosecond of now are due (the loop's tolerance).
        super().__init__(resolution=1e-9)
        # The time, exactly; `seconds` (the field the loop reads, see
        # ManualClock) is kept in step with it by advance().
        self.ns = 0

    def advance(self, seconds: float) -> None:
        """Jump forward by `seconds` (at least one nanosecond, so a jump is progress)."""
        self.ns += round(seconds * NS_PER_S) or 1
        self.seconds = self.ns / NS_PER_S

    def advance_to(self, ns: int) -> None:
        """Jump to `ns` (later than now)."""
        self.ns = ns
        self.seconds = ns / NS_PER_S
