"""A strict checker for trace-event JSON: what Perfetto needs to draw it right.

``check(trace)`` returns the list of problems found (empty: none):

* every event has the fields its phase needs, with numbers where numbers go;
* per track (pid, tid), complete slices come in timestamp order and nest:
  a slice that starts inside another ends inside it too;
* every flow id has exactly one start ("s") and one finish ("f"), the start
  no later than the finish, each inside a slice on its own track;
* counters' timestamps never go back, per counter;
* every track that has slices is named (thread_name metadata).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from typing import Any

_EPS = 1e-6  # microseconds: rounding of timestamps to the nanosecond


def check(trace: dict[str, Any] | list[dict[str, Any]]) -> list[str]:
    """The problems of `trace` (a trace-event JSON object, or its list of events)."""
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    problems: list[str] = []
    slices: dict[tuple[Any, Any], list[tuple[float, float, str]]] = defaultdict(list)
    named: set[tuple[Any, Any]] = set()
    flows: dict[Any, dict[str, list[tuple[Any, Any, float]]]] = defaultdict(lambda: {"s": [], "f": []})
    counters: dict[tuple[Any, str], float] = {}
    for i, e in enumerate(events):
        ph = e.get("ph")
        if ph == "M":
            if e.get("name") == "thread_name":
                named.add((e.get("pid"), e.get("tid")))
            continue
        ts = e.get("ts")
        if not isinstance(ts, (int, float)) or "pid" not in e:
            problems.append(f"event {i} ({ph}): no numeric ts or no pid: {e}")
            continue
        if ph == "X":
            dur = e.get("dur")
            if not isinstance(dur, (int, float)) or dur < 0 or "tid" not in e or not e.get("name"):
                problems.append(f"slice {i}: bad dur/tid/name: {e}")
                continue
            slices[(e["pid"], e["tid"])].append((ts, ts + dur, str(e["name"])))
        elif ph in ("s", "f"):
            if "id" not in e or "tid" not in e:
                problems.append(f"flow event {i}: no id or tid: {e}")
                continue
            flows[e["id"]][ph].append((e["pid"], e["tid"], ts))
        elif ph == "C":
            key = (e["pid"], str(e.get("name")))
            if key in counters and ts < counters[key] - _EPS:
                problems.append(f"counter {key[1]!r}: timestamp goes back at event {i}")
            counters[key] = ts
            if not e.get("args") or not all(isinstance(v, (int, float)) for v in e["args"].values()):
                problems.append(f"counter {i}: args must be numbers: {e}")
        else:
            problems.append(f"event {i}: unexpected phase {ph!r}")
    for track, items in slices.items():
        if track not in named:
            problems.append(f"track {track}: slices but no thread_name")
        stack: list[tuple[float, float, str]] = []
        last = float("-inf")
        for start, end, name in items:
            if start < last - _EPS:
                problems.append(f"track {track}: {name!r} at {start} is before the slice listed ahead of it")
            last = start
            while stack and stack[-1][1] <= start + _EPS:
                stack.pop()
            if stack and end > stack[-1][1] + _EPS:
                problems.append(f"track {track}: {name!r} [{start}, {end}] overlaps {stack[-1]} without nesting")
            stack.append((start, end, name))
    starts: dict[tuple[Any, Any], list[float]] = {}
    for flow, ends in flows.items():
        if len(ends["s"]) != 1 or len(ends["f"]) != 1:
            problems.append(f"flow {flow}: {len(ends['s'])} start(s), {len(ends['f'])} finish(es)")
            continue
        (spid, stid, sts), (fpid, ftid, fts) = ends["s"][0], ends["f"][0]
        if sts > fts + _EPS:
            problems.append(f"flow {flow}: starts at {sts}, after its finish at {fts}")
        for where, pid, tid, ts in (("start", spid, stid, sts), ("finish", fpid, ftid, fts)):
            if not _inside(slices.get((pid, tid), []), starts, (pid, tid), ts):
                problems.append(f"flow {flow}: {where} at {ts} is in no slice of track {(pid, tid)}")
    return problems


def _inside(items: list[tuple[float, float, str]], starts: dict[Any, list[float]], track: Any, ts: float) -> bool:
    """Whether `ts` falls in one of a track's slices (in start order)."""
    if track not in starts:
        starts[track] = [start for start, _, _ in items]
    i = bisect_right(starts[track], ts + _EPS)
    # The slice starting last before ts, or one enclosing it further back.
    while i > 0:
        i -= 1
        start, end, _ = items[i]
        if start - _EPS <= ts <= end + _EPS:
            return True
    return False
