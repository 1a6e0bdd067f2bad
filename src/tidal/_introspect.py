"""Looking at a loop from outside: its thread's stack, a task's await chain.

The watchdog, the monitor's ``ps`` and the debug-mode slow-callback warning
all need the same few answers, read from a thread that is not the loop's
while the loop may be running:

* the loop thread's Python stack (``sys._current_frames()``);
* the task running now (asyncio's ``_current_tasks``: a plain dict keyed by
  loop on 3.11-3.13, read without a lock under the GIL);
* a task's coroutine frames, outermost first, down to where it is
  suspended (``cr_await`` / ``gi_yieldfrom`` / ``ag_await``), and for a
  task that is running, down to the innermost coroutine frame on the
  loop thread's stack (a running coroutine's ``cr_await`` is None);
* the loop's tasks: asyncio's set of them is a WeakSet that the loop thread
  changes as tasks come and go, so it is copied and the copy retried when
  the set changed under it.
"""

from __future__ import annotations

import asyncio
import os
import sys
import traceback
import weakref
from asyncio import tasks
from types import FrameType
from typing import Any

# Code flags of a coroutine's or an async generator's frame (inspect's values).
_CO_ASYNC = 0x80 | 0x100 | 0x200  # CO_COROUTINE | CO_ITERABLE_COROUTINE | CO_ASYNC_GENERATOR

_ASYNCIO_DIR = os.path.dirname(asyncio.__file__) + os.sep

# How often all_tasks() is retried when the loop changes the set meanwhile.
_COPY_ATTEMPTS = 100


def thread_frames(thread_id: int | None) -> list[FrameType]:
    """The thread's Python frames, outermost first (empty if it has none or is gone)."""
    if thread_id is None:
        return []
    frame = sys._current_frames().get(thread_id)
    frames = []
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    frames.reverse()
    return frames


def format_frames(frames: list[FrameType]) -> str:
    """The frames as a traceback prints them (outermost first)."""
    summary = traceback.StackSummary.extract(((f, f.f_lineno) for f in frames), capture_locals=False)
    return "".join(summary.format())


def frame_location(frame: FrameType, sep: str = " at ") -> str:
    """'qualname at file:line' for one frame (`sep`: ' at ', or '() at ' for a call)."""
    code = frame.f_code
    name = getattr(code, "co_qualname", code.co_name)
    return f"{name}{sep}{code.co_filename}:{frame.f_lineno}"


def current_task(loop: Any) -> asyncio.Task[Any] | None:
    """The task whose step `loop` is running now, read from any thread."""
    current = getattr(tasks, "_current_tasks", None)
    if isinstance(current, dict):
        return current.get(loop)  # type: ignore[no-any-return]
    try:  # (3.14 keeps it per thread: only the loop's own thread can ask)
        return tasks.current_task(loop)
    except RuntimeError:
        return None


def all_tasks(loop: Any) -> list[asyncio.Task[Any]]:
    """The loop's unfinished tasks, copied safely from another thread."""
    for _ in range(_COPY_ATTEMPTS):
        try:
            # (It copies the WeakSet, retrying itself; the set can still
            # change while the copy is filtered.)
            return list(asyncio.all_tasks(loop))
        except RuntimeError:  # "Set changed size during iteration": copy again
            continue
    return []


def _awaited(obj: Any) -> Any:
    for attr in ("cr_await", "gi_yieldfrom", "ag_await"):
        value = getattr(obj, attr, None)
        if value is not None:
            return value
    return None


def _frame_of(obj: Any) -> FrameType | None:
    for attr in ("cr_frame", "gi_frame", "ag_frame"):
        frame = getattr(obj, attr, None)
        if frame is not None:
            return frame  # type: ignore[no-any-return]
    return None


def await_chain(task: Any, loop_frames: list[FrameType] | None = None) -> list[FrameType]:
    """The task's coroutine frames, outermost first, down to its innermost one.

    Suspended: followed through what each coroutine awaits.  Running (its
    frame is on `loop_frames`, the loop thread's stack): the coroutine
    frames on that stack from the task's own down.
    """
    get_coro = getattr(task, "get_coro", None)
    coro = get_coro() if get_coro is not None else None
    frames: list[FrameType] = []
    seen = 0
    while coro is not None and seen < 1000:
        seen += 1
        frame = _frame_of(coro)
        if frame is None:
            break
        frames.append(frame)
        coro = _awaited(coro)
    if loop_frames and frames:
        outer = frames[0]
        for i, frame in enumerate(loop_frames):
            if frame is outer:
                return [f for f in loop_frames[i:] if f.f_code.co_flags & _CO_ASYNC]
    return frames


def innermost_coroutine_frame(task: Any, loop_frames: list[FrameType] | None = None) -> FrameType | None:
    """The innermost frame of the task's await chain that is not asyncio's own.

    (``await asyncio.sleep(0)`` ends in asyncio's ``__sleep0``: the frame
    that says something is the one that awaited it.)
    """
    return innermost(await_chain(task, loop_frames))


def innermost(chain: list[FrameType]) -> FrameType | None:
    """The innermost of an await chain's frames that is not asyncio's own."""
    for frame in reversed(chain):
        if not frame.f_code.co_filename.startswith(_ASYNCIO_DIR):
            return frame
    return chain[-1] if chain else None



def task_name(task: Any) -> str:
    get_name = getattr(task, "get_name", None)
    return str(get_name()) if get_name is not None else repr(task)


def awaiters_of(fut: Any, _depth: int = 0) -> list[Any]:
    """The tasks waiting for `fut` (a task or future), found through its done callbacks.

    A task awaiting it directly is woken by a bound method of its own; a
    TaskGroup's child calls back the group, whose parent task waits; gather,
    wait, wait_for and shield call back a closure (or partial) holding the
    future the waiting task awaits: followed, a few levels deep.
    """
    found: list[Any] = []
    if _depth > 4:
        return found
    try:
        callbacks = list(getattr(fut, "_callbacks", None) or ())
    except RuntimeError:
        return found
    for entry in callbacks:
        callback = entry[0] if isinstance(entry, tuple) else entry
        for obj in _held_by(callback):
            if isinstance(obj, asyncio.Task):
                if obj is not fut and obj not in found:
                    found.append(obj)
            elif asyncio.isfuture(obj) and obj is not fut:
                for task in awaiters_of(obj, _depth + 1):
                    if task not in found:
                        found.append(task)
            else:
                parent = getattr(obj, "_parent_task", None)  # a TaskGroup
                if isinstance(parent, asyncio.Task) and parent not in found:
                    found.append(parent)
    return found


def _held_by(callback: Any) -> list[Any]:
    """What a done callback is bound to or closes over (where its waiter is)."""
    held = []
    owner = getattr(callback, "__self__", None)
    if owner is not None:
        held.append(owner)
    func = getattr(callback, "func", None)  # functools.partial
    if func is not None:
        held.extend(getattr(callback, "args", ()))
        callback = func
    for cell in getattr(callback, "__closure__", None) or ():
        try:
            held.append(cell.cell_contents)
        except ValueError:  # an empty cell
            pass
    return held


# Every tidal loop that has run, with how many frames deep its run_forever
# was called (an int: no frame is kept).  The watchdog tells a plain
# callback's frames from the loop's with it; the monitor finds the loops here.
loops_seen: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


def note_running(loop: Any, caller: FrameType | None) -> None:
    """The loop starts running, called from `caller` (on the loop thread)."""
    depth = 0
    while caller is not None:
        depth += 1
        caller = caller.f_back
    loops_seen[loop] = depth
