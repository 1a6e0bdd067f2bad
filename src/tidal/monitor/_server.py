"""The monitor's server: a thread of the process's own that answers ps/pstree/top.

It never asks the loop thread for anything: what it reports it reads from
the loops' state under the GIL (``tidal._introspect``), so it answers while
a loop is blocked.  Between requests it samples each loop every
``_SAMPLE`` seconds, the watchdog's way (``_watchdog.sample_step``), to know
for how long the step running now has held its loop.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import socket
import sys
import threading
import time
import weakref
from types import FrameType
from typing import Any

from .. import _introspect, _stats, _watchdog
from . import _channel

# How often the server samples the loops (and how long accept() waits).
_SAMPLE = 0.1
# A step that has held its loop this long is reported as blocking it.
BLOCKED_AFTER = 0.25
# The per-task figures and the loop statistics are collected from the first
# request on, and stop after this long without one: a process that opted in
# pays for them only while someone looks.
IDLE_OFF = 600.0

_lock = threading.Lock()
_server: _Server | None = None


# -- per-task figures (an instrument on each monitored loop) --------------


class TaskRecord:
    __slots__ = ("created", "created_at", "steps", "step_seconds", "_began")

    def __init__(self, created_at: str | None, created: float | None) -> None:
        self.created = created  # None: made before the monitor looked
        self.created_at = created_at
        self.steps = 0
        self.step_seconds = 0.0
        self._began = 0.0


_HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # tidal's package
_ASYNCIO = os.path.dirname(asyncio.__file__) + os.sep


def _creation_site() -> str | None:
    """The first frame outside asyncio and tidal: the code that made the task."""
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith((_HERE, _ASYNCIO)):
            return f"{filename}:{frame.f_lineno} in {getattr(frame.f_code, 'co_qualname', frame.f_code.co_name)}"
        frame = frame.f_back
    return None


class TaskTracker:
    """Instrument: when each task was made and where, its steps and their time."""

    def __init__(self) -> None:
        self.records: dict[int, TaskRecord] = {}  # id(task) -> its record, while it lives

    def task_spawned(self, task: asyncio.Task[Any]) -> None:
        self.records[id(task)] = TaskRecord(_creation_site(), time.monotonic())

    def before_task_step(self, task: asyncio.Task[Any]) -> None:
        record = self.records.get(id(task))
        if record is None:  # made before the monitor came, or not by create_task
            record = self.records[id(task)] = TaskRecord(None, None)
        record._began = time.monotonic()

    def after_task_step(self, task: asyncio.Task[Any]) -> None:
        record = self.records.get(id(task))
        if record is not None:
            record.steps += 1
            record.step_seconds += time.monotonic() - record._began

    def task_exited(self, task: asyncio.Task[Any]) -> None:
        self.records.pop(id(task), None)


_trackers: weakref.WeakKeyDictionary[Any, TaskTracker] = weakref.WeakKeyDictionary()


def _watch_loop(loop: Any) -> None:
    """Give a loop the monitor's instruments (called on the loop's thread)."""
    if loop in _trackers or loop.is_closed() or not hasattr(loop, "add_instrument"):
        return
    tracker = _trackers[loop] = TaskTracker()
    loop.add_instrument(tracker)
    if not _stats.collecting(loop):
        _stats.collect_stats(loop)
        _collecting_for_us.add(loop)


def _unwatch_loop(loop: Any) -> None:
    """Take them off again (on the loop's thread): nobody has looked for a while."""
    tracker = _trackers.pop(loop, None)
    if tracker is None or loop.is_closed():
        return
    loop.remove_instrument(tracker)
    if loop in _collecting_for_us:
        _collecting_for_us.discard(loop)
        _stats.collect_stats(loop, False)


# The loops whose statistics the monitor turned on (and so turns off).
_collecting_for_us: weakref.WeakSet[Any] = weakref.WeakSet()


def _on_loop_thread(loop: Any, func: Any) -> None:
    """Call func(loop) on the loop's thread: now if that is this one or none runs it."""
    thread_id = loop._thread_id
    if thread_id is None or thread_id == threading.get_ident():
        func(loop)
    else:
        try:
            loop.call_soon_threadsafe(func, loop)
        except RuntimeError:  # closed meanwhile
            pass


# -- the snapshot -----------------------------------------------------------


def _frame_entry(frame: FrameType) -> list[Any]:
    code = frame.f_code
    return [getattr(code, "co_qualname", code.co_name), code.co_filename, frame.f_lineno]


def _task_state(task: asyncio.Task[Any], current: Any) -> str:
    if task is current:
        return "running"
    if task.done():
        return "done"
    cancelling = getattr(task, "cancelling", None)
    if cancelling is not None and cancelling():
        return "cancelling"
    return "pending"


def _loop_snapshot(loop: Any, step: _watchdog.Step | None, now: float) -> dict[str, Any]:
    thread_id = loop._thread_id
    frames = _introspect.thread_frames(thread_id)
    current = _introspect.current_task(loop)
    tracker = _trackers.get(loop)
    seen = _watchdog.sample_step(loop)
    if thread_id is None:
        state = "stopped"
    elif seen is None:
        state = "waiting"  # for I/O or timers: idle
    else:
        state = "running"
    held = None
    if seen is not None and step is not None and seen.same(step):
        held = now - step.since
        if held >= BLOCKED_AFTER:
            state = "blocked"
    step_label = None
    if seen is not None:
        if seen.task is not None:
            step_label = f"task {_introspect.task_name(seen.task)!r}"
        elif seen.frame is not None:
            step_label = f"callback {_introspect.frame_location(seen.frame)}"
    tasks = []
    for task in sorted(_introspect.all_tasks(loop), key=_introspect.task_name):
        record = tracker.records.get(id(task)) if tracker is not None else None
        chain = _introspect.await_chain(task, frames if task is current else None)
        inner = _introspect.innermost(chain)
        created_at = record.created_at if record is not None else None
        if created_at is None:
            source = getattr(task, "_source_traceback", None)
            if source:
                last = source[-1]
                created_at = f"{last.filename}:{last.lineno} in {last.name}"
        tasks.append(
            {
                "id": id(task),
                "name": _introspect.task_name(task),
                "state": _task_state(task, current),
                "stack": [_frame_entry(f) for f in chain],
                # The innermost frame that is not asyncio's own (top's AT).
                "where": _frame_entry(inner) if inner is not None else None,
                "awaited_by": [id(t) for t in _introspect.awaiters_of(task)],
                "age": now - record.created if record is not None and record.created is not None else None,
                "steps": record.steps if record is not None else None,
                "step_seconds": record.step_seconds if record is not None else None,
                "created_at": created_at,
            }
        )
    return {
        "id": id(loop),
        "repr": f"<{type(loop).__name__} at {id(loop):#x}>",
        "thread_id": thread_id,
        "state": state,
        "step": step_label,
        "step_seconds": held,
        "stack": _introspect.format_frames(frames) if state in ("blocked", "running") else None,
        "stats": _stats.stats(loop),
        "tasks": tasks,
        "monitored": tracker is not None,
    }


# -- the server thread ------------------------------------------------------


def _remove_stale_sockets(directory: str) -> None:
    """Remove the sockets of processes that are gone (killed before they could)."""
    for name in os.listdir(directory):
        pid, _, ext = name.partition(".")
        if ext == "sock" and pid.isdigit() and (int(pid) == os.getpid() or not os.path.exists(f"/proc/{pid}")):
            try:
                os.unlink(os.path.join(directory, name))
            except OSError:
                pass


class _Server:
    def __init__(self) -> None:
        directory = _channel.socket_dir()
        _channel.make_private_dir(directory)
        self.path = os.path.join(directory, f"{os.getpid()}.sock")
        self.pid = os.getpid()
        _remove_stale_sockets(directory)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o600)
        self.sock.listen(8)
        self.sock.settimeout(_SAMPLE)
        self.stopped = threading.Event()
        self.steps: weakref.WeakKeyDictionary[Any, _watchdog.Step] = weakref.WeakKeyDictionary()
        self.thread = threading.Thread(target=self._serve, name="tidal-monitor", daemon=True)
        self.last_request: float | None = None

    def _sample(self) -> None:
        for loop in list(_introspect.loops_seen):
            seen = _watchdog.sample_step(loop)
            known = self.steps.get(loop)
            if seen is None:
                self.steps.pop(loop, None)
            elif known is None or not seen.same(known):
                self.steps[loop] = seen

    def _serve(self) -> None:
        while not self.stopped.is_set():
            self._sample()
            if self.last_request is not None and time.monotonic() - self.last_request > IDLE_OFF:
                self.last_request = None
                for loop in list(_trackers):
                    _on_loop_thread(loop, _unwatch_loop)
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                if self.stopped.is_set():
                    break
                continue
            with conn:
                try:
                    self._answer(conn)
                except Exception:  # a client gone, junk sent: that client's problem only
                    pass

    def _answer(self, conn: socket.socket) -> None:
        conn.settimeout(_channel.TIMEOUT)
        uid = _channel.peer_uid(conn)
        if uid != os.getuid():
            _channel.send(
                conn,
                {
                    "error": f"refused: process {self.pid} is monitored by uid {os.getuid()} only, "
                    f"and this client runs as uid {uid}"
                },
            )
            return
        request = _channel.receive(conn)
        if request.get("cmd") not in ("ps", "pstree", "top", "stats"):
            _channel.send(conn, {"error": f"unknown request {request.get('cmd')!r}"})
            return
        self._sample()
        now = self.last_request = time.monotonic()
        for loop in list(_introspect.loops_seen):
            if loop not in _trackers and not loop.is_closed():
                _on_loop_thread(loop, _watch_loop)
        loops = [
            _loop_snapshot(loop, self.steps.get(loop), now)
            for loop in list(_introspect.loops_seen)
            if not loop.is_closed()
        ]
        _channel.send(
            conn,
            {"pid": self.pid, "argv": sys.argv, "python": sys.version.split()[0], "loops": loops},
        )

    def close(self) -> None:
        self.stopped.set()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout=5)
        self.sock.close()
        try:
            if os.getpid() == self.pid:
                os.unlink(self.path)
        except FileNotFoundError:
            pass


def enable() -> str:
    """Turn the monitor on for this process (idempotent); returns the socket's path.

    From now on ``python -m tidal ps|pstree|top PID``, run by the same user,
    can look at every tidal loop of this process.  Raises
    ``_channel.UnsafeDirectory`` if the socket directory is not private.
    """
    global _server
    with _lock:
        if _server is not None and _server.pid == os.getpid():
            return _server.path
        server = _Server()
        _server = server
        server.thread.start()
    atexit.register(disable)
    return server.path


def disable() -> None:
    """Turn the monitor off: close its socket and end its thread."""
    global _server
    with _lock:
        server, _server = _server, None
    if server is not None:
        server.close()


def is_enabled() -> bool:
    return _server is not None
