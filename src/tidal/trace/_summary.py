"""``python -m tidal trace --summary trace.json``: a trace, read in a terminal.

Three tables: the busiest tasks (time spent in their steps), the longest
steps and callbacks (with where each resumed), and the worst turns by lag.
"""

from __future__ import annotations

from collections import defaultdict
from math import fsum
from typing import Any


def _ms(us: float) -> str:
    return f"{us / 1000.0:.3f}"


def _value(counter: dict[str, Any]) -> float:
    return float(next(iter(counter["args"].values())))


def summary(trace: dict[str, Any] | list[dict[str, Any]], top: int = 10) -> str:
    """The summary tables of a trace-event JSON object (or its list of events)."""
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    names: dict[tuple[Any, Any], str] = {}
    for e in events:
        if e.get("ph") == "M" and e.get("name") == "thread_name":
            names[(e["pid"], e["tid"])] = e["args"]["name"]
    slices = [e for e in events if e.get("ph") == "X"]
    # (Sums with fsum and sorts with full keys: the same events in another
    # order, as read from the protobuf format, give the same tables.)
    durations: dict[tuple[Any, Any], list[float]] = defaultdict(list)
    for e in slices:
        if e.get("cat") != "io":
            durations[(e["pid"], e["tid"])].append(e["dur"])
    busy = {key: (fsum(durs), len(durs)) for key, durs in durations.items()}
    span = (max((e["ts"] + e["dur"] for e in slices), default=0.0)
            - min((e["ts"] for e in slices), default=0.0))
    waited = fsum(e["dur"] for e in slices if e.get("cat") == "io")
    ran = fsum(total for total, _ in busy.values())
    lines = [
        f"trace: {_ms(span)} ms, {len(slices)} slices; running {_ms(ran)} ms, waiting for I/O {_ms(waited)} ms",
        "",
        f"Busiest tasks (top {top}, by time in their steps)",
        f"  {'ms':>10} {'steps':>7} {'mean us':>9}  track",
    ]
    for key, (total, count) in sorted(busy.items(), key=lambda kv: (-kv[1][0], str(kv[0])))[:top]:
        lines.append(f"  {_ms(total):>10} {count:>7} {total / max(count, 1):>9.1f}  {names.get(key, key)}")
    lines += ["", f"Longest steps and callbacks (top {top})", f"  {'ms':>10}  {'name':<40} where"]
    steps = (e for e in slices if e.get("cat") != "io")
    for e in sorted(steps, key=lambda e: (-e["dur"], e["ts"], str(e["pid"]), str(e["tid"])))[:top]:
        where = e.get("args", {}).get("at", "")
        track = names.get((e["pid"], e["tid"]), "")
        lines.append(f"  {_ms(e['dur']):>10}  {str(e['name'])[:40]:<40} {where}  [{track}]")
    lags = [e for e in events if e.get("ph") == "C" and e.get("name") == "loop lag (ms)"]
    lines += ["", f"Worst lags (top {top}: how long something ready waited to run)", f"  {'ms':>10}  at (ms into the trace)"]
    t0 = min((e["ts"] for e in slices), default=0.0)
    # (A counter's one value: "lag" in JSON, "value" read from protobuf.)
    for e in sorted(lags, key=lambda e: (-_value(e), e["ts"]))[:top]:
        lines.append(f"  {_value(e):>10.3f}  {_ms(e['ts'] - t0)}")
    if not lags:
        lines.append("  (no lag recorded)")
    return "\n".join(lines)
