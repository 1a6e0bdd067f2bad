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

try:
    # Compiled, `cython` is Cython's compile-time module and the block below
    # is dropped: nearbyint is C's (_clock.pxd).
    import cython
except ImportError:  # interpreted, without Cython installed
    from types import SimpleNamespace

    cython = SimpleNamespace(compiled=False, cast=lambda type, value: value, longlong=int)
if not cython.compiled:
    # C's nearbyint in the default rounding mode is Python's round(): to the
    # nearest, ties to even (interpreted it returns an int, compiled an
    # integral double; both are then exact).
    nearbyint = round

NS_PER_S = 1_000_000_000
# NS_PER_S as a float (compiled, a C double): seconds * _NS_F is the same
# IEEE product as seconds * NS_PER_S for a float.
_NS_F = 1e9
# Below this many ns (2**53, about 104 days), a count and its seconds are
# exact C arithmetic: the count fits a double's mantissa, and ns / 1e9 is
# then the correctly rounded quotient, as Python's int / int is.
_EXACT = 2**53

# time.time() inside a simulation: this epoch plus the virtual time
# (2024-01-01 00:00:00 UTC), fixed so that every run of a seed sees the same
# dates.
EPOCH_NS = 1_704_067_200 * NS_PER_S


def to_ns(seconds: float) -> int:
    """Seconds as whole nanoseconds, rounded to the nearest."""
    return round(seconds * NS_PER_S)


class VirtualClock(ManualClock):
    """The loop's clock in a simulation: seconds since the run began."""

    __slots__ = ("ns", "_small_ns")

    def __init__(self) -> None:
        # Timers within a nanosecond of now are due (the loop's tolerance).
        super().__init__(resolution=1e-9)
        # The time, exactly; `seconds` (the field the loop reads, see
        # ManualClock) is kept in step with it by advance().
        self.ns = 0
        # ns again while it is below _EXACT, else -1 (compiled, a C
        # integer: the simulated poller's jumps, one or two per timer, are C
        # arithmetic; ns itself stays a Python int, with no limit).
        self._small_ns = 0

    def advance(self, seconds: float) -> None:
        """Jump forward by `seconds` (at least one nanosecond, so a jump is progress)."""
        scaled = seconds * _NS_F
        if self._small_ns >= 0 and -_EXACT < scaled < _EXACT:
            step = cython.cast(cython.longlong, nearbyint(scaled))  # (exact: integral)
            if step == 0:
                step = 1
            ns = self._small_ns + step
            if 0 <= ns < _EXACT:
                self._small_ns = ns
                self.ns = ns
                self.seconds = ns / _NS_F
                return
        self.advance_to(self.ns + (round(seconds * NS_PER_S) or 1))

    def advance_to(self, ns: int) -> None:
        """Jump to `ns` (later than now)."""
        self.ns = ns
        self.seconds = ns / NS_PER_S
        self._small_ns = ns if 0 <= ns < _EXACT else -1
