"""``python -m tidal trace --summary trace.json``: a trace, read in a terminal.

Three tables: the busiest tasks (time spent in their steps), the longest
steps and callbacks (with where each resumed), and the worst turns by lag.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any


def _ms(us: float) -> str:
    return f"{us / 1000.0:.3f}"


def summary(trace: dict[str, Any] | list[dict[str, Any]], top: int = 10) -> str:
    """The summary tables of a trace-event JSON object (or its list of events)."""
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    names: dict[tuple[Any, Any], str] = {}
    for e in events:
        if e.get("ph") == "M" and e.get("name") == "thread_name":
            names[(e["pid"], e["tid"])] = e["args"]["name"]
    slices = [e for e in events if e.get("ph") == "X"]
    busy: dict[tuple[Any, Any], list[float]] = defaultdict(lambda: [0.0, 0])
    for e in slices:
        if e.get("cat") == "io":
            continue
        b = busy[(e["pid"], e["tid"])]
        b[0] += e["dur"]
        b[1] += 1
    span = (max((e["ts"] + e["dur"] for e in slices), default=0.0)
            - min((e["ts"] for e in slices), default=0.0))
    waited = sum(e["dur"] for e in slices if e.get("cat") == "io")
    ran = sum(b[0] for b in busy.values())
    lines = [
        f"trace: {_ms(span)} ms, {len(slices)} slices; running {_ms(ran)} ms, waiting for I/O {_ms(waited)} ms",
        "",
        f"Busiest tasks (top {top}, by time in their steps)",
        f"  {'ms':>10} {'steps':>7} {'mean us':>9}  track",
    ]
    for key, (total, count) in sorted(busy.items(), key=lambda kv: -kv[1][0])[:top]:
        lines.append(f"  {_ms(total):>10} {count:>7} {total / max(count, 1):>9.1f}  {names.get(key, key)}")
    lines += ["", f"Longest steps and callbacks (top {top})", f"  {'ms':>10}  {'name':<40} where"]
    for e in sorted((e for e in slices if e.get("cat") != "io"), key=lambda e: -e["dur"])[:top]:
        where = e.get("args", {}).get("at", "")
        track = names.get((e["pid"], e["tid"]), "")
        lines.append(f"  {_ms(e['dur']):>10}  {str(e['name'])[:40]:<40} {where}  [{track}]")
    lags = [e for e in events if e.get("ph") == "C" and e.get("name") == "loop lag (ms)"]
    lines += ["", f"Worst lags (top {top}: how long something ready waited to run)", f"  {'ms':>10}  at (ms into the trace)"]
    t0 = min((e["ts"] for e in slices), default=0.0)
    for e in sorted(lags, key=lambda e: -e["args"]["lag"])[:top]:
        lines.append(f"  {e['args']['lag']:>10.3f}  {_ms(e['ts'] - t0)}")
    if not lags:
        lines.append("  (no lag recorded)")
    return "\n".join(lines)
