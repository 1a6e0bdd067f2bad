"""The live task tree of a running process: ``python -m tidal ps|pstree|top PID``.

A process opts in (``TIDAL_MONITOR=1`` in its environment, read when tidal
is imported, or ``tidal.monitor.enable()``); a process that did not exposes
nothing.  Once on, a small thread of the process's own listens on a Unix
socket, ``<dir>/<pid>.sock``, where ``<dir>`` is ``$XDG_RUNTIME_DIR/tidal``
when that is the user's ``/run/user/<uid>``, else ``/tmp/tidal-<uid>``: a
directory of mode 0700 that the user owns (checked, and refused otherwise),
so only that user (and root) can even reach the socket; the server also
checks the peer's uid (``SO_PEERCRED``) and turns away any other, root
included, with a message saying why.

The server answers from its own thread, so ``ps`` works while the loop is
blocked: it says so, for how long, and shows the loop thread's stack.  It
reads the loop's state without taking anything from the loop thread (see
``tidal._introspect``).  From the first request on, each loop gets two
instruments: the per-task figures ``ps`` shows (age, steps, time in steps,
where the task was created) and ``loop.stats()``'s collector (lag,
utilisation), which ``top`` shows; they come off again after ten minutes
without a request.  Until someone looks, a monitored process pays for
nothing but the thread's sampling (a few microseconds, ten times a second).
"""

from __future__ import annotations

import logging
import os

from ._channel import UnsafeDirectory, socket_dir
from ._server import disable, enable, is_enabled

ENV = "TIDAL_MONITOR"


def _from_environment() -> None:
    """TIDAL_MONITOR=1: enable at import (a failure is logged: the program still runs)."""
    if os.environ.get(ENV, "").strip() not in ("", "0"):
        try:
            enable()
        except (OSError, UnsafeDirectory) as exc:
            logging.getLogger("asyncio").warning("%s=1: the tidal monitor is off: %s", ENV, exc)


__all__ = ["enable", "disable", "is_enabled", "socket_dir", "UnsafeDirectory"]
