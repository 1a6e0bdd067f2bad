"""What a loop tells the process-wide observers: it starts running, it is closed.

Two calls from ``_loop.py``, neither on the per-turn path: ``loop_running``
from run_forever (before the first turn) and ``loop_closed`` from close().
The observers: the stall watchdog (``_watchdog.py``, TIDAL_WATCHDOG), the
statistics collector (``_stats.py``, TIDAL_STATS) and the monitor
(``tidal.monitor``, TIDAL_MONITOR), which finds the loops through
``_introspect.loops_seen``.
"""

from __future__ import annotations

import sys
from typing import Any

from . import _introspect, _stats, _watchdog


def loop_running(loop: Any) -> None:
    """run_forever is about to run turns (on the loop's thread)."""
    # sys._getframe(1): run_forever's caller compiled (the loop's methods
    # push no frame), run_forever itself interpreted.
    _introspect.note_running(loop, sys._getframe(1))
    _watchdog.loop_running(loop)
    _stats.loop_running(loop)
    # tidal.trace, once imported (TIDAL_TRACE, tidal.trace.start): a session
    # traces every loop that runs while it is on.
    trace = sys.modules.get("tidal.trace")
    if trace is not None:
        trace.loop_running(loop)


def loop_closed(loop: Any) -> None:
    """close() has freed the loop's resources: end what watched it."""
    _watchdog.loop_closed(loop)
    _introspect.loops_seen.pop(loop, None)
