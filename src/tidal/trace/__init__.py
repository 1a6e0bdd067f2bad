"""tidal.trace: a timeline of what the loop ran, for Perfetto (ui.perfetto.dev) or chrome://tracing.

Three ways in, one machinery::

    python -m tidal trace -o trace.json app.py [ARGS...]   # an unmodified asyncio program
    TIDAL_TRACE=trace.json python app.py                   # any process whose loops are tidal's

    session = tidal.trace.start("trace.json")               # from code: every tidal loop that
    ...                                                     # runs from now on (and the running one)
    tidal.trace.stop()                                      # writes the file

A flight recorder keeps only the last N records, and writes them when asked
(``dump()``), on a signal, or when the watchdog (``TIDAL_WATCHDOG``) reports
a stall, while the loop is still blocked::

    tidal.trace.start("flight.json", flight_recorder=50_000, dump_signal=signal.SIGUSR2)
    TIDAL_FLIGHT_RECORDER=50000 python app.py    # kill -USR2 PID -> tidal-flight-PID.json

A path ending in ``.pftrace`` is written in Perfetto's protobuf format
instead of JSON (smaller; for traces too big for JSON)::

    python -m tidal trace -o trace.pftrace app.py

``python -m tidal trace --summary trace.json`` prints the busiest tasks, the
longest steps and the worst lags.  docs/tracing.md says how to read a trace.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import signal as _signal
import sys
import threading
from typing import Any

from .. import _watchdog
from ._check import check
from ._chrome import chrome_events
from ._perfetto import TraceFormatError, perfetto_trace, read_perfetto
from ._recorder import Tracer, now_ns
from ._summary import summary

__all__ = [
    "Session", "TraceFormatError", "Tracer", "check", "current", "dump", "load", "start", "stop", "summary",
    "write",
]

logger = logging.getLogger("asyncio")

_session: Session | None = None
_lock = threading.Lock()


class Session:
    """Tracing of every tidal loop made while it is on; one file for all of them."""

    def __init__(self, path: str | None, flight_recorder: int | None) -> None:
        self.path = path
        self.maxlen = flight_recorder
        self.tracers: list[Tracer] = []
        self.t0 = now_ns()  # on the tracers' clock

    def attach(self, loop: Any) -> Tracer:
        """Trace `loop` too (a loop already traced by this session is left as it is)."""
        for tracer in self.tracers:
            if tracer.loop is loop:
                return tracer
        tracer = Tracer(loop, self.maxlen)
        loop.add_instrument(tracer)
        self.tracers.append(tracer)
        return tracer

    def detach(self) -> None:
        for tracer in self.tracers:
            instruments = tracer.loop._instruments
            if instruments is not None and any(i is tracer for i in instruments.instruments):
                tracer.loop.remove_instrument(tracer)

    def trace(self) -> dict[str, Any]:
        """The trace so far, as a trace-event JSON object."""
        return {
            "traceEvents": chrome_events(self.tracers, self.t0),
            "displayTimeUnit": "ms",
            "otherData": {"producer": "tidal.trace", "pid": os.getpid(), "argv": list(sys.argv)},
        }

    def write(self, path: str | None = None) -> str:
        """Write the trace so far to `path` (default: the session's); returns the path.

        A path ending in .pftrace (or .perfetto-trace) gets Perfetto's
        protobuf format, smaller and for traces too big for JSON; any other,
        trace-event JSON.
        """
        path = path or self.path or f"tidal-trace-{os.getpid()}.json"
        data = self.trace()
        tmp = f"{path}.tmp{os.getpid()}"
        if is_perfetto_path(path):
            with open(tmp, "wb") as f:
                f.write(perfetto_trace(data["traceEvents"]))
        else:
            with open(tmp, "w") as f:
                json.dump(data, f, separators=(",", ":"))
        os.replace(tmp, path)
        return path


PERFETTO_SUFFIXES = (".pftrace", ".perfetto-trace")


def is_perfetto_path(path: str) -> bool:
    """Whether `path` names a Perfetto protobuf trace (by its suffix)."""
    return path.endswith(PERFETTO_SUFFIXES)


def load(path: str) -> dict[str, Any]:
    """Read a trace tidal wrote, JSON or Perfetto protobuf, as trace-event JSON.

    What ``summary``, ``check`` and the PNG drawing read: the same events
    from either format (see ``_perfetto.read_perfetto`` for the little the
    protobuf does not keep).  Raises TraceFormatError, with what is wrong
    and where, for a file that is neither (corrupt, truncated).
    """
    with open(path, "rb") as f:
        data = f.read()
    # By content, not name: JSON opens with a brace or bracket, a protobuf
    # Trace with its first packet's key (0x0a).
    if data.lstrip()[:1] not in (b"{", b"["):
        return {"traceEvents": read_perfetto(data, path)}
    try:
        loaded = json.loads(data)
    except ValueError as exc:  # (JSONDecodeError, UnicodeDecodeError)
        raise TraceFormatError(f"{path}: not a trace (bad JSON: {exc})") from None
    if isinstance(loaded, list):
        return {"traceEvents": loaded}
    if not isinstance(loaded, dict) or not isinstance(loaded.get("traceEvents"), list):
        raise TraceFormatError(f"{path}: not a trace (no traceEvents list)")
    return loaded


def start(
    path: str | None = None,
    *,
    flight_recorder: int | None = None,
    dump_signal: int | None = None,
) -> Session:
    """Trace every tidal loop made from now on, and the running one if it is tidal's.

    `path`: where stop() (or the end of the process) writes the trace.
    `flight_recorder`: keep only the last N records per loop (written by
    dump(), on `dump_signal`, or when the watchdog fires; not at exit).
    """
    global _session
    from .. import _loop

    with _lock:
        if _session is not None:
            raise RuntimeError("tidal.trace is already on (tidal.trace.stop() first)")
        session = _session = Session(path, flight_recorder)
    try:
        import asyncio

        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if isinstance(running, _loop.EventLoop):
        session.attach(running)
    if dump_signal is not None:
        _signal.signal(dump_signal, lambda signum, frame: dump())
    if flight_recorder:
        # A stall the watchdog reports (TIDAL_WATCHDOG, loop.set_watchdog)
        # writes the recorder out while the loop is still blocked.
        _watchdog.stall_observers.append(_dump_on_stall)
    return session


def _dump_on_stall(loop: Any, report: str) -> None:
    path = dump()
    if path is not None:
        logger.warning("tidal.trace: flight recorder written to %s", path)


def loop_running(loop: Any) -> None:
    """A tidal loop starts running (tidal._observe): the session, if on, traces it."""
    session = _session
    if session is not None:
        session.attach(loop)


def current() -> Session | None:
    """The session tracing this process, if any."""
    return _session


def stop() -> str | None:
    """Stop tracing; write the trace if it was started with a path (returns it)."""
    global _session
    with _lock:
        session, _session = _session, None
    if session is None:
        return None
    if _dump_on_stall in _watchdog.stall_observers:
        _watchdog.stall_observers.remove(_dump_on_stall)
    session.detach()
    if session.path is not None and session.maxlen is None:
        return session.write()
    return None


def dump(path: str | None = None) -> str | None:
    """Write what the running session has recorded, now (a flight recorder's way out)."""
    session = _session
    if session is None:
        return None
    return session.write(path or session.path or f"tidal-flight-{os.getpid()}.json")


def write(path: str) -> str | None:
    """Write the running session's trace to `path` without stopping it."""
    return dump(path)


def _from_environment() -> None:
    """TIDAL_TRACE=path, TIDAL_FLIGHT_RECORDER=N: what tidal's import turns on."""
    path = os.environ.get("TIDAL_TRACE") or None
    ring = os.environ.get("TIDAL_FLIGHT_RECORDER") or None
    if _session is not None or (path is None and ring is None):
        return
    if ring is not None:
        start(path, flight_recorder=int(ring), dump_signal=getattr(_signal, "SIGUSR2", None))
    else:
        start(path)
        atexit.register(stop)
