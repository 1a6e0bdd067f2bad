"""``python -m tidal trace --png out.png trace.json``: a picture of a timeline.

For the README, a bug report, or anyone who would rather look than open
Perfetto: one row per track (the loop's I/O waits, its plain callbacks, then
one per task, busiest first when there are too many), each slice a box
coloured by its name and labelled where it is wide enough, the wake-up
arrows as thin lines between rows, the counters (ready queue, loop lag) as
small area charts under the tracks, and a time axis in ms.

It reads the trace-event JSON that ``tidal.trace`` writes (any trace in that
format with complete "X" slices will do) and draws it with Pillow, an
optional dependency: ``pip install 'tidal[png]'``.
"""

from __future__ import annotations

import math
import zlib
from collections import defaultdict
from typing import Any

# Layout, in pixels.
LABEL_WIDTH = 190  # the column of track names
RIGHT_MARGIN = 24
TITLE_HEIGHT = 34
AXIS_HEIGHT = 26
ROW_HEIGHT = 22
PROCESS_HEIGHT = 20  # the header row of each traced loop
COUNTER_HEIGHT = 34
FONT_SIZE = 12
MAX_FLOWS = 3000  # more arrows than this is a grey fog: draw the first ones

BACKGROUND = (255, 255, 255)
GRID = (232, 232, 236)
TEXT = (30, 30, 36)
MUTED = (120, 120, 128)
ROW_SHADE = (247, 247, 250)
IO_WAIT = (205, 208, 214)
FLOW = (40, 40, 60, 70)
COUNTER = (66, 133, 244)
# Slice colours: picked by a hash of the slice's name, so one coroutine or
# callback has one colour throughout (and from one picture to the next).
PALETTE = [
    (66, 133, 244), (219, 68, 55), (244, 180, 0), (15, 157, 88), (171, 71, 188),
    (0, 172, 193), (255, 112, 67), (158, 157, 36), (92, 107, 192), (240, 98, 146),
    (0, 137, 123), (121, 85, 72),
]


class PillowMissing(RuntimeError):
    """Pillow is needed to draw and is not installed."""


def _pillow() -> Any:
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:
        raise PillowMissing(
            "drawing a trace needs Pillow: pip install 'tidal[png]' (or pip install pillow)"
        ) from None
    return Image, ImageDraw, ImageFont


def _font(image_font: Any, size: int) -> Any:
    try:
        return image_font.load_default(size=size)  # Pillow >= 10.1: a scalable font
    except TypeError:
        return image_font.load_default()


def _colour(name: str) -> tuple[int, int, int]:
    return PALETTE[zlib.crc32(name.encode()) % len(PALETTE)]


def _nice_step(span: float, ticks: int = 10) -> float:
    """A 1, 2 or 5 times a power of ten near span / ticks."""
    raw = span / ticks
    power = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    for factor in (1, 2, 5, 10):
        if power * factor >= raw:
            return power * factor
    return power * 10


def _time_label(us: float, step_us: float) -> str:
    """A tick's label: seconds for steps of a second or more, else ms with
    as many decimals as the step needs."""
    if step_us >= 1_000_000:
        return f"{us / 1e6:g} s"
    decimals = max(0, -math.floor(math.log10(step_us / 1000) + 1e-9))
    return f"{us / 1000:.{decimals}f} ms"


class _Track:
    def __init__(self, pid: Any, tid: Any) -> None:
        self.pid = pid
        self.tid = tid
        self.name = f"track {tid}"
        self.sort = tid if isinstance(tid, (int, float)) else 0
        self.slices: list[dict[str, Any]] = []
        self.busy = 0.0


def _fit(text: str, font: Any, width: float) -> str:
    """`text`, cut with an ellipsis to fit `width` pixels ('' if not even that fits)."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[: max(len(text) * 3 // 4, len(text) - 8) if len(text) > 12 else len(text) - 1]
    return text + "…" if text else ""


def render(
    trace: dict[str, Any] | list[dict[str, Any]],
    path: str,
    *,
    width: int = 1600,
    max_tracks: int = 24,
    start_ms: float | None = None,
    end_ms: float | None = None,
    title: str | None = None,
) -> str:
    """Draw `trace` (trace-event JSON) to the PNG file `path`; returns the path.

    `start_ms`/`end_ms`: the window shown, in ms from the trace's first
    slice (default: all of it).  `max_tracks`: task rows shown per loop at
    most (the busiest in the window; the I/O and callback rows always).
    """
    Image, ImageDraw, ImageFont = _pillow()
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    tracks: dict[tuple[Any, Any], _Track] = {}
    processes: dict[Any, str] = {}
    counters: dict[tuple[Any, str], list[tuple[float, float]]] = defaultdict(list)
    flows: dict[Any, dict[str, tuple[Any, Any, float]]] = defaultdict(dict)

    def track(pid: Any, tid: Any) -> _Track:
        key = (pid, tid)
        if key not in tracks:
            tracks[key] = _Track(pid, tid)
        return tracks[key]

    for e in events:
        ph = e.get("ph")
        if ph == "X":
            track(e["pid"], e["tid"]).slices.append(e)
        elif ph == "M":
            name = e.get("name")
            if name == "process_name":
                processes[e["pid"]] = str(e["args"]["name"])
            elif name == "thread_name":
                track(e["pid"], e["tid"]).name = str(e["args"]["name"])
            elif name == "thread_sort_index":
                track(e["pid"], e["tid"]).sort = e["args"]["sort_index"]
        elif ph == "C":
            for key, value in (e.get("args") or {}).items():
                label = e["name"] if len(e["args"]) == 1 else f"{e['name']} {key}"
                counters[(e["pid"], label)].append((float(e["ts"]), float(value)))
        elif ph in ("s", "f") and "id" in e:
            flows[e["id"]][ph] = (e["pid"], e["tid"], float(e["ts"]))

    all_slices = [s for t in tracks.values() for s in t.slices]
    if not all_slices:
        raise ValueError("the trace has no slices to draw")
    t_first = min(s["ts"] for s in all_slices)
    t_last = max(s["ts"] + s["dur"] for s in all_slices)
    t0 = t_first + start_ms * 1000 if start_ms is not None else t_first
    t1 = t_first + end_ms * 1000 if end_ms is not None else t_last
    if t1 <= t0:
        raise ValueError(f"empty window: {start_ms} ms to {end_ms} ms")

    # The rows: per loop, its fixed tracks then its busiest tasks in the window.
    rows: list[tuple[str, Any]] = []  # ("process", name) | ("track", _Track) | ("more", text)
    for pid in sorted({t.pid for t in tracks.values()}, key=str):
        mine = [t for t in tracks.values() if t.pid == pid and t.slices]
        for t in mine:
            t.busy = sum(
                min(s["ts"] + s["dur"], t1) - max(s["ts"], t0)
                for s in t.slices
                if s["ts"] <= t1 and s["ts"] + s["dur"] >= t0
            )
        fixed = sorted((t for t in mine if isinstance(t.sort, (int, float)) and t.sort < 10), key=lambda t: t.sort)
        tasks = [t for t in mine if t not in fixed and t.busy > 0]
        shown = sorted(sorted(tasks, key=lambda t: -t.busy)[:max_tracks], key=lambda t: (t.sort, str(t.tid)))
        rows.append(("process", processes.get(pid, f"process {pid}")))
        rows += [("track", t) for t in fixed + shown]
        hidden = len(tasks) - len(shown)
        if hidden > 0:
            rows.append(("more", f"+ {hidden} quieter task track(s) not shown"))
    counter_rows = sorted(k for k in counters if any(t0 <= ts <= t1 for ts, _ in counters[k]))

    height = (
        TITLE_HEIGHT
        + AXIS_HEIGHT
        + sum(PROCESS_HEIGHT if kind != "track" else ROW_HEIGHT for kind, _ in rows)
        + COUNTER_HEIGHT * len(counter_rows)
        + 12
    )
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image, "RGBA")
    font = _font(ImageFont, FONT_SIZE)
    small = _font(ImageFont, FONT_SIZE - 2)
    x0, x1 = LABEL_WIDTH, width - RIGHT_MARGIN
    scale = (x1 - x0) / (t1 - t0)

    def x_of(ts: float) -> float:
        return x0 + (ts - t0) * scale

    # Title and time axis (ticks run down through every row).
    span_ms = (t1 - t0) / 1000
    n_slices = sum(1 for s in all_slices if s["ts"] <= t1 and s["ts"] + s["dur"] >= t0)
    draw.text(
        (10, 9),
        title or f"tidal trace: {span_ms:.3f} ms, {n_slices} slices, {sum(1 for k, _ in rows if k == 'track')} tracks",
        fill=TEXT,
        font=font,
    )
    axis_y = TITLE_HEIGHT
    body_top = axis_y + AXIS_HEIGHT
    step = _nice_step(t1 - t0)
    tick = math.ceil((t0 - t_first) / step) * step + t_first
    while tick <= t1 + 1e-9:
        x = x_of(tick)
        draw.line([(x, body_top - 6), (x, height - 12)], fill=GRID)
        draw.text((x + 3, axis_y + 4), _time_label(tick - t_first, step), fill=MUTED, font=small)
        tick += step
    draw.line([(x0, body_top - 1), (x1, body_top - 1)], fill=MUTED)

    # Rows and their slices.
    centre: dict[tuple[Any, Any], float] = {}
    y = body_top
    for i, (kind, item) in enumerate(rows):
        if kind != "track":
            draw.text((8, y + 4), item, fill=TEXT if kind == "process" else MUTED, font=font if kind == "process" else small)
            y += PROCESS_HEIGHT
            continue
        row: _Track = item
        if i % 2:
            draw.rectangle([0, y, width, y + ROW_HEIGHT - 1], fill=ROW_SHADE)
        draw.text((16, y + 4), _fit(row.name, font, LABEL_WIDTH - 24), fill=TEXT, font=font)
        centre[(row.pid, row.tid)] = y + ROW_HEIGHT / 2
        _draw_slices(draw, row.slices, t0, t1, x_of, y, font)
        y += ROW_HEIGHT

    # Wake-up arrows: from where a task was woken to the step it woke.
    drawn = 0
    for ends in flows.values():
        if drawn >= MAX_FLOWS:
            break
        if "s" not in ends or "f" not in ends:
            continue
        (spid, stid, sts), (fpid, ftid, fts) = ends["s"], ends["f"]
        if fts < t0 or sts > t1 or (spid, stid) not in centre or (fpid, ftid) not in centre:
            continue
        a = (x_of(sts), centre[(spid, stid)])
        b = (x_of(fts), centre[(fpid, ftid)])
        draw.line([a, b], fill=FLOW, width=1)
        draw.polygon([(b[0], b[1]), (b[0] - 5, b[1] - 3), (b[0] - 5, b[1] + 3)], fill=FLOW)
        drawn += 1

    # Counters: small area charts, each scaled to its own maximum in the window.
    for pid, name in counter_rows:
        points = sorted(counters[(pid, name)])
        top = max((v for ts, v in points if t0 <= ts <= t1), default=0.0) or 1.0
        base = y + COUNTER_HEIGHT - 6
        draw.text((16, y + 4), _fit(name, font, LABEL_WIDTH - 24), fill=TEXT, font=font)
        draw.text((16, y + 18), f"max {top:.3g}", fill=MUTED, font=small)
        for (ts, value), (next_ts, _) in zip(points, points[1:] + [(t1, 0.0)]):
            if next_ts < t0 or ts > t1:
                continue
            left, right = max(x_of(ts), x0), min(x_of(next_ts), x1)
            h = (COUNTER_HEIGHT - 10) * value / top
            if h > 0 and right >= left:
                draw.rectangle([left, base - h, max(right, left + 1), base], fill=COUNTER)
        draw.line([(x0, base), (x1, base)], fill=GRID)
        y += COUNTER_HEIGHT

    image.save(path, "PNG", optimize=True)
    return path


def _draw_slices(draw: Any, slices: list[dict[str, Any]], t0: float, t1: float, x_of: Any, y: int, font: Any) -> None:
    """One track's slices; nested ones inset a little deeper each level."""
    stack: list[float] = []  # end times of the enclosing slices
    for s in sorted(slices, key=lambda s: (s["ts"], -s["dur"])):
        start, end = s["ts"], s["ts"] + s["dur"]
        while stack and stack[-1] <= start:
            stack.pop()
        depth = len(stack)
        stack.append(end)
        if end < t0 or start > t1:
            continue
        left, right = max(x_of(start), x_of(t0)), min(x_of(end), x_of(t1))
        right = max(right, left + 1)  # a slice shorter than a pixel is still seen
        inset = 2 + 3 * min(depth, 3)
        name = str(s.get("name", ""))
        fill = IO_WAIT if s.get("cat") == "io" else _colour(name)
        draw.rectangle([left, y + inset, right, y + ROW_HEIGHT - 1 - inset], fill=fill)
        if right - left > 28:
            label = _fit(name, font, right - left - 6)
            if label:
                dark = sum(fill) < 450
                draw.text((left + 3, y + 4), label, fill=(255, 255, 255) if dark else TEXT, font=font)
