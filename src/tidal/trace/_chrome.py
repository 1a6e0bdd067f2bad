"""Tracer records -> Chrome trace-event JSON (what Perfetto and chrome://tracing open).

One process per traced loop; in it, one track ("thread") for the loop's I/O
waits, one for plain callbacks and one per task, named by the task's name.
Every slice is a complete ("X") event made from a begin/end pair of records,
so slices on a track never overlap: a loop runs one thing at a time.  A flow
(an arrow) runs from the step or callback during which a task's next step
was queued to that step; counters give the ready queue's length after each
I/O wait and the worst lag of each turn (how long a queued task step, or a
due timer, waited to run).

A flight recorder's records start anywhere: an end whose begin was dropped
is skipped, a slice still open at the end is closed there (and says so),
and a flow is written only when both of its ends are.
"""

from __future__ import annotations

import os
from typing import Any, Iterable

from ._recorder import CALL, CALL_END, EXIT, SPAWN, STEP, STEP_END, WAIT, WAIT_END, WAKE

WAIT_TID = 1
CALLBACK_TID = 2
FIRST_TASK_TID = 10


def callback_name(callback: Any) -> str:
    """A readable name for a plain callback: its qualified name, bound object's class included."""
    func = getattr(callback, "__func__", callback)
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    if name is None:
        name = type(callback).__qualname__
        inner = getattr(callback, "func", None)  # functools.partial
        if inner is not None:
            name = f"partial({callback_name(inner)})"
    return str(name)


def _where(code: Any, line: int) -> str:
    if code is None:
        return "?"
    return f"{code.co_filename}:{line}"


def _qualname(code: Any) -> str:
    return str(getattr(code, "co_qualname", None) or getattr(code, "co_name", "?"))


def _us(ns: int, t0: int) -> float:
    return round((ns - t0) / 1000.0, 3)


def chrome_events(tracers: Iterable[Any], t0: int | None = None) -> list[dict[str, Any]]:
    """The trace events of `tracers` (one Perfetto process each), in one list."""
    snapshots = [list(t.events) for t in tracers]
    return process_events(
        [[(f"tidal loop {i} (pid {os.getpid()})", records)] for i, records in enumerate(snapshots, 1)],
        t0,
    )


def process_events(
    tracers: list[list[tuple[str, list[tuple[Any, ...]]]]], t0: int | None = None
) -> list[dict[str, Any]]:
    """The trace events of several tracers' records, each tracer's records
    split into named processes (a simulation's hosts share one loop, so one
    tracer): [[(process name, records), ...] per tracer].  A flow between
    two processes of one tracer is kept."""
    if t0 is None:
        t0 = min((records[0][0] for processes in tracers for _, records in processes if records), default=0)
    out: list[dict[str, Any]] = []
    flow_base = 0
    pid = 0
    for processes in tracers:
        # Flows: the ends that exist (a flight recorder may have lost either,
        # or the beginning of the step or callback a wake-up was made in).
        outs = {flow for _, records in processes for flow in _flow_starts(records)}
        ins = {r[6] for _, records in processes for r in records if r[1] == STEP and r[6]}
        both = outs & ins
        for name, records in processes:
            pid += 1
            out.extend(_one_loop(records, pid, name, t0, flow_base, both))
        flow_base += max((r[3] for _, records in processes for r in records if r[1] == WAKE), default=0)
    return out


def _flow_starts(records: list[tuple[Any, ...]]) -> list[int]:
    """The flows whose start _one_loop draws: a wake-up made inside a step
    or callback whose beginning is among `records`."""
    starts = []
    running = False
    for record in records:
        kind = record[1]
        if kind == STEP or kind == CALL:
            running = True
        elif kind == STEP_END or kind == CALL_END:
            running = False
        elif kind == WAKE and running:
            starts.append(record[3])
    return starts


def _one_loop(
    records: list[tuple[Any, ...]], pid: int, name: str, t0: int, flow_base: int, both: set[int]
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {"ph": "M", "name": "process_name", "pid": pid, "args": {"name": name}},
        {"ph": "M", "name": "thread_name", "pid": pid, "tid": WAIT_TID, "args": {"name": "I/O waits"}},
        {"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": WAIT_TID, "args": {"sort_index": 0}},
        {"ph": "M", "name": "thread_name", "pid": pid, "tid": CALLBACK_TID, "args": {"name": "callbacks"}},
        {"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": CALLBACK_TID, "args": {"sort_index": 1}},
    ]
    tids: dict[Any, int] = {}

    def tid_of(task: Any) -> int:
        tid = tids.get(task)
        if tid is None:
            tid = tids[task] = FIRST_TASK_TID + len(tids)
            out.append(
                {"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": task.get_name()}}
            )
            out.append(
                {"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": tid, "args": {"sort_index": tid}}
            )
        return tid

    open_slice: dict[str, Any] | None = None  # the step or callback running
    wait: dict[str, Any] | None = None
    turn_lag = -1  # worst lag (ns) of the steps and timers run since the last wait
    last_ns = records[-1][0] if records else t0
    for record in records:
        ns, kind = record[0], record[1]
        ts = _us(ns, t0)
        if kind == STEP:
            _, _, task, code, line, inner, flow, lag = record
            coro = task.get_coro()
            open_slice = {
                "ph": "X",
                "cat": "step",
                "name": getattr(coro, "__qualname__", None) or type(coro).__qualname__,
                "ts": ts,
                "pid": pid,
                "tid": tid_of(task),
                "args": {"at": _where(code, line), "awaiting": _qualname(inner)},
            }
            if flow in both:
                out.append(flow_event("f", flow + flow_base, ts, pid, open_slice["tid"]))
            if lag >= 0:
                open_slice["args"]["lag_us"] = round(lag / 1000.0, 3)
                turn_lag = max(turn_lag, lag)
        elif kind == CALL:
            callback, lag = record[2], record[3]
            open_slice = {
                "ph": "X",
                "cat": "callback",
                "name": callback_name(callback),
                "ts": ts,
                "pid": pid,
                "tid": CALLBACK_TID,
                "args": {},
            }
            if lag >= 0:
                open_slice["args"]["lag_us"] = round(lag / 1000.0, 3)
                turn_lag = max(turn_lag, lag)
        elif kind in (STEP_END, CALL_END):
            if open_slice is not None:
                open_slice["dur"] = round(ts - open_slice["ts"], 3)
                out.append(open_slice)
                open_slice = None
        elif kind == WAKE:
            flow = record[3]
            if flow in both and open_slice is not None:
                out.append(flow_event("s", flow + flow_base, ts, pid, open_slice["tid"]))
        elif kind == WAIT:
            if turn_lag >= 0:
                out.append(
                    {"ph": "C", "name": "loop lag (ms)", "ts": ts, "pid": pid, "args": {"lag": round(turn_lag / 1e6, 6)}}
                )
                turn_lag = -1
            wait = {
                "ph": "X",
                "cat": "io",
                "name": "I/O wait",
                "ts": ts,
                "pid": pid,
                "tid": WAIT_TID,
                "args": {"timeout": record[2]},
            }
        elif kind == WAIT_END:
            if wait is not None:
                wait["dur"] = round(ts - wait["ts"], 3)
                wait["args"]["events"] = record[2]
                out.append(wait)
                wait = None
            out.append({"ph": "C", "name": "ready queue", "ts": ts, "pid": pid, "args": {"handles": record[3]}})
        elif kind == SPAWN:
            tid_of(record[2])
        elif kind == EXIT:
            tid_of(record[2])
    # Still open when the records end (a flight recorder dumped mid-step).
    for pending in (open_slice, wait):
        if pending is not None:
            pending["dur"] = round(max(_us(last_ns, t0) - pending["ts"], 0.0), 3)
            pending["args"]["unfinished"] = True
            out.append(pending)
    return out


def flow_event(ph: str, flow: int, ts: float, pid: int, tid: int) -> dict[str, Any]:
    event = {"ph": ph, "cat": "wakeup", "name": "wakes", "id": flow, "ts": ts, "pid": pid, "tid": tid}
    if ph == "f":
        event["bp"] = "e"  # bound to the step it lands in (which begins at ts)
    return event
