"""From samples to a report: medians, spread, ratios; a table, Markdown, JSON and a chart.

Every number is reported beside the same case's asyncio, uvloop and rloop numbers
from the same run: a ratio is ``median(contestant) / median(reference)``, so
for a rate above 1.00x is faster and for memory above 1.00x is more.  A
section may name other references (the sim section: tidal.sim, so a
simulator's "3.00x" is three times tidal.sim's CPU time per seed).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .sections import REFERENCES, Measurement, Section


@dataclass
class Row:
    section: str
    case: str
    contestant: str
    unit: str
    higher_is_better: bool
    samples: list[float]
    extras: dict[str, list[float]] = field(default_factory=dict)
    median: float = 0.0
    min: float = 0.0
    max: float = 0.0
    vs: dict[str, float] = field(default_factory=dict)  # reference contestant -> ratio

    def extra(self, key: str) -> float | None:
        values = self.extras.get(key)
        return statistics.median(values) if values else None


def aggregate(
    measurements: Sequence[Measurement],
    sections: Sequence[Section],
    cases: dict[str, list[str]],
    contestants: Sequence[str],
) -> list[Row]:
    """One row per (section, case, contestant), in the plan's order, with ratios filled in."""
    rows: dict[tuple[str, str, str], Row] = {}
    by_name = {s.name: s for s in sections}
    for m in measurements:
        key = (m.section, m.case, m.contestant)
        if key not in rows:
            s = by_name[m.section]
            rows[key] = Row(m.section, m.case, m.contestant, s.unit, s.higher_is_better, [])
        row = rows[key]
        row.samples.append(m.value)
        for k, v in m.extras.items():
            row.extras.setdefault(k, []).append(v)
    for row in rows.values():
        row.median = statistics.median(row.samples)
        row.min, row.max = min(row.samples), max(row.samples)
    for row in rows.values():
        for ref in by_name[row.section].references:
            base = rows.get((row.section, row.case, ref))
            if base and base.median > 0:
                row.vs[ref] = row.median / base.median
    order = []
    for s in sections:
        # The pool's contestants in its order, then any a section brings
        # itself (the sim section's simulators), in the order they came.
        names = list(contestants) + [
            m.contestant for m in measurements if m.section == s.name
        ]
        for case in cases.get(s.name, []):
            for c in dict.fromkeys(names):
                if (s.name, case, c) in rows:
                    order.append(rows[(s.name, case, c)])
    return order


# ---------------------------------------------------------------------------
# Formatting


def fmt_value(v: float, unit: str) -> str:
    if unit == "B/conn":
        return f"{v / 1024:.1f} KiB" if abs(v) >= 1024 else f"{v:.0f} B"
    if unit == "s":
        return f"{v:.3f} s" if abs(v) >= 0.1 else f"{v * 1e3:.1f} ms"
    if abs(v) >= 1e6:
        return f"{v / 1e6:.2f}M"
    if abs(v) >= 1e4:
        return f"{v / 1e3:.1f}k"
    if abs(v) >= 1e3:
        return f"{v / 1e3:.2f}k"
    return f"{v:.0f}"


def fmt_us(v: float | None) -> str:
    if v is None:
        return "-"
    if v < 1000:
        return f"{v:.0f}us"
    if v < 1e6:
        return f"{v / 1e3:.1f}ms"
    return f"{v / 1e6:.2f}s"


def fmt_cpu(v: float | None) -> str:
    """The server's CPU per reply: a few microseconds, so one decimal below 100."""
    if v is None:
        return "-"
    return f"{v:.1f}us" if v < 100 else fmt_us(v)


def fmt_ratio(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}x"


def section_heading(s: Section) -> str:
    better = "higher is better" if s.higher_is_better else "lower is better"
    return f"{s.name}: {s.title} ({s.unit}, {better})"


def _cells(row: Row, s: Section) -> list[str]:
    with_latency = s.latency
    cells = [
        row.contestant,
        fmt_value(row.median, row.unit),
        f"{fmt_value(row.min, row.unit)} - {fmt_value(row.max, row.unit)}",
        str(len(row.samples)),
    ] + [fmt_ratio(row.vs.get(ref)) for ref in s.references]
    if with_latency:
        cells += [
            fmt_us(row.extra("p50_us")),
            fmt_us(row.extra("p99_us")),
            fmt_cpu(row.extra("cpu_us")),
        ]
    return cells


HEADER = ["case", "contestant", "median", "min - max", "n"]
# "server CPU": the server process's CPU time (user + system) in the measured
# window per reply (loadgen --cpu-pid).  The rate moves with whatever else the
# machine runs; the CPU a reply costs the server much less, so it is what
# tells a loop's own cost from the machine's noise.  ("-" under wrk.)
LAT_HEADER = ["p50", "p99", "server CPU"]
VS_HEADER = [f"vs {ref}" for ref in REFERENCES]  # the summary's columns


def columns(s: Section) -> list[str]:
    return HEADER + [f"vs {ref}" for ref in s.references] + (LAT_HEADER if s.latency else [])


def geomeans(rows: Sequence[Row], sections: Sequence[Section]) -> list[list[str]]:
    """Per section and contestant, the geometric mean of its ratios over the
    cases (the sections measured against the reference loops)."""
    out = []
    for s in sections:
        if s.references != REFERENCES:
            continue  # (its own table has its ratios)
        srows = [r for r in rows if r.section == s.name]
        for c in dict.fromkeys(r.contestant for r in srows):
            cells = [s.name, c]
            for ref in REFERENCES:
                ratios = [r.vs[ref] for r in srows if r.contestant == c and ref in r.vs]
                ratios = [x for x in ratios if x > 0]
                g = math.exp(sum(map(math.log, ratios)) / len(ratios)) if ratios else None
                cells.append(fmt_ratio(g))
            out.append(cells)
    return out


def _line(cells: list[str], widths: list[int]) -> str:
    """Names left-aligned, numbers right-aligned."""
    return "  ".join(
        c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
    ).rstrip()


def text_table(rows: Sequence[Row], sections: Sequence[Section]) -> str:
    lines: list[str] = []
    for s in sections:
        srows = [r for r in rows if r.section == s.name]
        if not srows:
            continue
        head = columns(s)
        body = []
        last_case = None
        for r in srows:
            body.append([r.case if r.case != last_case else ""] + _cells(r, s))
            last_case = r.case
        widths = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]
        lines.append(f"== {section_heading(s)}")

        lines.append(_line(head, widths))
        for i, cells in enumerate(body):
            if i and cells[0]:
                lines.append("")
            lines.append(_line(cells, widths))
        lines.append("")
    summary = geomeans(rows, sections)
    if summary:
        lines.append(
            "== summary: geometric mean of each contestant's ratios over a section's cases"
        )
        header = ["section", "contestant", *VS_HEADER]
        widths = [max(len(x[i]) for x in [header] + summary) for i in range(len(header))]
        lines += [_line(cells, widths) for cells in [header] + summary]
    return "\n".join(lines)


def markdown(rows: Sequence[Row], sections: Sequence[Section], meta: dict[str, Any]) -> str:
    out = ["# tidal bench", ""]
    out.append(f"{meta['when']} · Python {meta['python']} · {meta['machine']}")
    out.append("")
    out.append(
        f"{meta['rounds']} rounds, interleaved (each round visits every contestant, "
        "the order rotating); every measurement in a fresh process. "
        "Median of the rounds, min - max across them; ratios are medians over the "
        "same case's asyncio / uvloop / rloop median. \"server CPU\": the server "
        "process's CPU time (user + system) per reply in the measured window, median "
        "of the rounds; the machine's other work moves it much less than the rate."
    )
    out.append("")
    out.append("Contestants: " + "; ".join(f"**{k}**: {v}" for k, v in meta["contestants"].items()))
    out.append("")
    out.append(f"Load average before / after: {meta['load_before']} / {meta['load_after']}")
    out.append("")
    for s in sections:
        srows = [r for r in rows if r.section == s.name]
        if not srows:
            continue
        out += [f"## {section_heading(s)}", ""]
        head = columns(s)
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "|".join("---" if i < 2 else "---:" for i in range(len(head))) + "|")
        last_case = None
        for r in srows:
            case = f"**{r.case}**" if r.case != last_case else ""
            last_case = r.case
            out.append("| " + " | ".join([case] + _cells(r, s)) + " |")
        out.append("")
    summary = geomeans(rows, sections)
    if summary:
        out += ["## Summary (geometric mean of ratios over each section's cases)", ""]
        out.append("| " + " | ".join(["section", "contestant", *VS_HEADER]) + " |")
        out.append("|---|---|" + "---:|" * len(VS_HEADER))
        out += ["| " + " | ".join(c) + " |" for c in summary]
        out.append("")
    if meta.get("headroom"):
        out += ["## Load generator headroom", ""]
        out.append(
            "The C epoll server's median over the fastest loop's, per case: well above 1, "
            "and the load generator is not what limits the loops."
        )
        out.append("")
        out += [f"- {case}: {x:.2f}x" for case, x in meta["headroom"].items()] + [""]
    costs = trace_costs(rows)
    if costs:
        out += ["## Tracing cost", ""] + [f"- {line}" for line in costs] + [""]
    for note in meta.get("notes", []):
        out += [f"Note: {note}", ""]
    if meta.get("warnings"):
        out += ["## Warnings", ""] + [f"- {w}" for w in meta["warnings"]] + [""]
    if meta.get("skipped"):
        out += ["## Skipped", ""] + [f"- {w}" for w in meta["skipped"]] + [""]
    return "\n".join(out)


def headroom(rows: Sequence[Row], reference: str = "C epoll") -> list[tuple[str, float]]:
    """Per case with a C reference: its median over the fastest loop's.

    The load generator is the same for both; if the C server is not clearly
    faster than every loop, the loops are not what limits the rate.
    """
    out = []
    for section, case in dict.fromkeys((r.section, r.case) for r in rows if r.higher_is_better):
        ref = next(
            (r for r in rows if (r.section, r.case, r.contestant) == (section, case, reference)),
            None,
        )
        loops = [r.median for r in rows if (r.section, r.case) == (section, case) and r is not ref]
        if ref and loops and max(loops) > 0:
            out.append((f"{section} {case}", ref.median / max(loops)))
    return out


def trace_costs(rows: Sequence[Row]) -> list[str]:
    """The tracing section's verdict: per echo server, each tracing mode's median
    throughput over the median with tracing off (the issue asks >= 0.90x for the
    flight recorder, >= 0.75x for a full trace)."""
    wanted = {"flight recorder": 0.90, "full trace": 0.75}
    medians = {r.case: r.median for r in rows if r.section == "tracing"}
    out = []
    for case, off in medians.items():
        server, _, mode = case.rpartition(", ")
        if mode != "tracing off" or off <= 0:
            continue
        parts = []
        for label, floor in wanted.items():
            traced = medians.get(f"{server}, {label}")
            if traced is not None:
                ratio = traced / off
                parts.append(f"{label} {ratio:.2f}x" + ("" if ratio >= floor else f" (below {floor:.2f}x)"))
        if parts:
            out.append(f"tracing cost, echo {server}: " + ", ".join(parts) + " of the throughput with tracing off")
    return out


def write_json(path: Path, rows: Sequence[Row], meta: dict[str, Any]) -> None:
    data = {"meta": meta, "results": [asdict(r) for r in rows]}
    path.write_text(json.dumps(data, indent=1) + "\n")


def write_chart(path: Path, rows: Sequence[Row], sections: Sequence[Section]) -> str | None:
    """A PNG: one panel per section, bars per case and contestant, min-max as error bars.

    Rates are drawn relative to asyncio (1.0 = asyncio's median), so cases of
    very different sizes share an axis; memory is drawn in KiB per connection.
    Returns why there is no chart, or None.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install 'tidal[bench]'): no chart"
    panels = [s for s in sections if any(r.section == s.name for r in rows)]
    if not panels:
        return "nothing to draw"
    widest = max(len({r.case for r in rows if r.section == s.name}) for s in panels)
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(max(8.0, 0.75 * widest + 2), 3.6 * len(panels)), squeeze=False
    )
    # One colour per contestant across panels; names not listed take the spares.
    colours = {
        "asyncio": "#8c8c8c",
        "uvloop": "#4c72b0",
        "rloop": "#8172b3",
        "tidal-interp": "#f2b880",
        "tidal": "#dd8452",
        "C epoll": "#55a868",
    }
    spares = ["#c44e52", "#937860", "#da8bc3"]
    for ax, s in zip(axes[:, 0], panels):
        srows = [r for r in rows if r.section == s.name]
        cases = list(dict.fromkeys(r.case for r in srows))
        names = list(dict.fromkeys(r.contestant for r in srows))
        index = {(r.case, r.contestant): r for r in srows}
        width = 0.8 / len(names)
        relative = s.name != "memory"
        for i, name in enumerate(names):
            xs, ys, lo, hi = [], [], [], []
            for j, case in enumerate(cases):
                r = index.get((case, name))
                if r is None:
                    continue
                if relative:
                    base = index.get((case, s.references[0]))
                    scale = 1.0 / base.median if base and base.median else 0.0
                else:
                    scale = 1.0 / 1024
                if not scale:
                    continue
                xs.append(j - 0.4 + width * (i + 0.5))
                ys.append(r.median * scale)
                lo.append(max(0.0, (r.median - r.min) * scale))
                hi.append(max(0.0, (r.max - r.median) * scale))
            ax.bar(
                xs,
                ys,
                width,
                yerr=[lo, hi],
                capsize=2,
                label=name,
                color=colours.get(name, spares[i % len(spares)]),
                error_kw={"elinewidth": 0.8},
            )
        if relative:
            ax.axhline(1.0, color="black", linewidth=0.6)
            better = "higher" if s.higher_is_better else "lower"
            ax.set_ylabel(f"x {s.references[0]} ({better} is better)")
        else:
            ax.set_ylabel("KiB per connection (lower is better)")
        ax.set_title(f"{s.name}: {s.title}", fontsize=10)
        ax.set_xticks(range(len(cases)))
        rotate = len(cases) > 4
        ax.set_xticklabels(
            cases, rotation=25 if rotate else 0, ha="right" if rotate else "center", fontsize=8
        )
        # A panel with few cases keeps its bars as narrow as a busy one's.
        pad = max(0.0, (4 - len(cases)) / 2)
        ax.set_xlim(-0.5 - pad, len(cases) - 0.5 + pad)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.005, 1.0))
        ax.grid(axis="y", linewidth=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None
