"""loop.stats(): what the loop has done, how busy it is, how late callbacks run.

Two kinds of figures:

* **Always there**, at no cost to the turn: turns (the watchdog's counter,
  ``loop._turn``, bumped twice a turn), the bytes the loop's transports
  have read and written (``loop._io_counts``: an integer add per read and
  write, _iocount.py), and the transports open now, by kind (read from the
  loop's table of them when asked).
* **Collected while asked for** (``loop.collect_stats()``, ``TIDAL_STATS=1``
  read when a loop starts running, or the monitor being on): an instrument
  on the loop's instrument hook counts callbacks, task steps and I/O events,
  adds up the time spent waiting in the poller versus running (utilisation),
  and puts each callback's *lag* into a histogram: how long it waited
  between becoming ready and running.  With no collection on, the loop's
  hot path is what it is without this module.

Lag, by what became ready:

* a task step: from when it was queued (the hook's ``task_scheduled``);
* a timer: from its due time;
* anything else (an I/O callback, a ``call_soon``): from the end of the
  poll that began its turn, a lower bound for a ``call_soon`` made during
  the previous turn.

The histogram is bounded: 4 buckets per power of two from 1 µs to ~1 day,
so a percentile is exact to within 19% (its bucket's upper bound is
reported), and the maximum is exact.
"""

from __future__ import annotations

import asyncio
import math
import os
import socket
import weakref
from time import monotonic
from typing import Any

ENV = "TIDAL_STATS"

# Lag histogram: bucket i holds lags up to _LOWEST * 2 ** ((i + 1) / _PER_OCTAVE).
_LOWEST = 1e-6
_PER_OCTAVE = 4
_BUCKETS = _PER_OCTAVE * 37  # 1 µs * 2**37 ≈ 1.6 days


class LagHistogram:
    """A bounded log-scale histogram of durations (seconds)."""

    __slots__ = ("counts", "count", "max")

    def __init__(self) -> None:
        self.counts = [0] * (_BUCKETS + 1)
        self.count = 0
        self.max = 0.0

    def add(self, seconds: float) -> None:
        if seconds > self.max:
            self.max = seconds
        self.count += 1
        if seconds <= _LOWEST:
            self.counts[0] += 1
            return
        i = int(math.log2(seconds / _LOWEST) * _PER_OCTAVE)
        self.counts[i if i < _BUCKETS else _BUCKETS] += 1

    def percentile(self, p: float) -> float:
        """The bucket bound under which `p` percent of the lags fall (0.0 when empty)."""
        if not self.count:
            return 0.0
        rank = math.ceil(self.count * p / 100) or 1
        seen = 0
        for i, n in enumerate(self.counts):
            seen += n
            if seen >= rank:
                if i == _BUCKETS:  # the overflow bucket has no upper bound
                    return self.max
                return min(_LOWEST * 2 ** ((i + 1) / _PER_OCTAVE), self.max)
        return self.max


class StatsCollector:
    """The instrument that collects a loop's figures (see the module docstring)."""

    def __init__(self) -> None:
        self.started = monotonic()
        self.callbacks = 0
        self.task_steps = 0
        self.io_events = 0
        self.io_waits = 0
        self.waiting = 0.0
        self.lag = LagHistogram()
        self._since = monotonic()  # start of the current busy stretch
        self._busy = 0.0
        self._wait_began = 0.0
        self._turn_began = self._since  # end of the turn's poll
        self._queued: dict[int, float] = {}  # id(task) -> when its step was queued

    # -- hooks ------------------------------------------------------------

    def before_io_wait(self, timeout: float | None) -> None:
        now = monotonic()
        self._busy += now - self._since
        self._wait_began = now

    def after_io_wait(self, nevents: int) -> None:
        now = monotonic()
        self.waiting += now - self._wait_began
        self._since = self._turn_began = now
        self.io_waits += 1
        self.io_events += nevents

    def task_scheduled(self, task: asyncio.Task[Any]) -> None:
        self._queued[id(task)] = monotonic()

    def before_task_step(self, task: asyncio.Task[Any]) -> None:
        now = monotonic()
        self.task_steps += 1
        self.lag.add(now - self._queued.pop(id(task), self._turn_began))

    def task_exited(self, task: asyncio.Task[Any]) -> None:
        self._queued.pop(id(task), None)

    def before_callback(self, handle: asyncio.Handle) -> None:
        now = monotonic()
        self.callbacks += 1
        when = getattr(handle, "_when", None)
        # (A timer's due time is on the loop's clock: the default is monotonic.)
        ready = when if type(when) is float and when <= now else self._turn_began
        self.lag.add(now - ready)

    # -- reading ------------------------------------------------------------

    def busy(self, waiting_now: bool) -> float:
        """Time spent running, not waiting, since collection began."""
        if waiting_now:
            return self._busy
        return self._busy + (monotonic() - self._since)


# loop -> its collector, while collecting.
_collectors: weakref.WeakKeyDictionary[Any, StatsCollector] = weakref.WeakKeyDictionary()


def collect_stats(loop: Any, enabled: bool = True) -> None:
    """Collect the figures that cost something (callbacks, lag, utilisation); False stops.

    They run through the loop's instrument hook, so only while collecting do
    they cost anything.  Starting again starts from zero.
    """
    collector = _collectors.pop(loop, None)
    if collector is not None:
        loop.remove_instrument(collector)
    if enabled:
        collector = StatsCollector()
        loop.add_instrument(collector)
        _collectors[loop] = collector


def collecting(loop: Any) -> bool:
    return loop in _collectors


def loop_running(loop: Any) -> None:
    """TIDAL_STATS=1 at run start: collect for this loop."""
    if loop not in _collectors and os.environ.get(ENV, "").strip() not in ("", "0"):
        collect_stats(loop)


def transports_open(loop: Any) -> dict[str, int]:
    """The loop's open transports, counted by kind ('tcp', 'unix', 'udp', 'pipe', ...)."""
    counts: dict[str, int] = {}
    for _ in range(100):
        try:
            found = loop._open_transports()
            break
        except RuntimeError:  # changed by the loop thread meanwhile
            continue
    else:
        found = []
    for transport in found:
        try:
            if transport.is_closing():
                continue
        except Exception:
            continue
        counts[_kind(transport)] = counts.get(_kind(transport), 0) + 1
    return counts


def _kind(transport: Any) -> str:
    sock = transport.get_extra_info("socket")
    name = type(transport).__name__
    if sock is not None:
        family = getattr(sock, "family", None)
        dgram = getattr(sock, "type", None) == socket.SOCK_DGRAM
        if family == socket.AF_UNIX:
            return "unix-datagram" if dgram else "unix"
        return "udp" if dgram else "tcp"
    if "Pipe" in name:
        return "pipe"
    return name


def stats(loop: Any) -> dict[str, Any]:
    """loop.stats()'s work: a dict of figures (docs/monitoring.md lists them)."""
    turn = loop._turn
    counts = loop._io_counts
    out: dict[str, Any] = {
        "turns": turn // 2,
        "waiting_for_io": bool(turn & 1),
        "bytes_read": counts.read,
        "bytes_written": counts.written,
        "collecting": False,
        "transports": transports_open(loop),
    }
    collector = _collectors.get(loop)
    if collector is None:
        return out
    busy = collector.busy(waiting_now=bool(turn & 1))
    total = busy + collector.waiting
    lag = collector.lag
    out.update(
        collecting=True,
        seconds=monotonic() - collector.started,
        callbacks=collector.callbacks,
        task_steps=collector.task_steps,
        io_waits=collector.io_waits,
        io_events=collector.io_events,
        busy_seconds=busy,
        waiting_seconds=collector.waiting,
        utilisation=busy / total if total > 0 else 0.0,
        lag={
            "count": lag.count,
            "p50": lag.percentile(50),
            "p90": lag.percentile(90),
            "p99": lag.percentile(99),
            "max": lag.max,
        },
    )
    return out
