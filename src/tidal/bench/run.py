"""The bench's command line: plan, interleaved rounds, report.

python -m tidal.bench [--quick] [--rounds N]
                      [--only micro,instructions,echo,tracing,http,scaling,memory,sim]
                      [--duration S] [--out DIR] [--contestants asyncio,tidal,...]
                      [--sim-python PYTHON] [--sim-seeds N]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from . import loadgen, report
from .contestants import ALL_CONTESTANTS, Contestant, missing_reason
from .loadgen import BenchError
from .sections import SECTIONS, Config, Context, Measurement, Section

# Below this ratio of the C server's rate to the fastest loop's, say that the
# load generator (or the kernel's copying) may be what limits the numbers.
HEADROOM_WARN = 1.2

QUICK: dict[str, Any] = {
    "rounds": 2,
    "duration": 0.2,
    "warmup": 0.05,
    "micro_seconds": 0.05,
    "echo_sizes": (1024, 100 * 1024),
    "echo_conns": (10,),
    "http_conns": (10,),
    "scaling_conns": (10, 1_000),
    "memory_conns": 1_000,
    "sim_seeds": 1,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tidal.bench",
        description="asyncio, uvloop, rloop and tidal side by side: interleaved rounds, each "
        "measurement in a fresh process; medians, min-max, ratios; a table, Markdown, JSON "
        "and a PNG chart in --out.",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 2 rounds, tiny durations, a subset of the cells",
    )
    p.add_argument("--rounds", type=int, help="rounds (default 5; 2 with --quick)")
    p.add_argument(
        "--only",
        default="",
        help=f"comma-separated sections, of: {','.join(SECTIONS)} (default all)",
    )
    p.add_argument(
        "--duration", type=float, help="measured seconds per echo/http/scaling cell (default 1)"
    )
    p.add_argument("--warmup", type=float, help="seconds of load before each cell's window")
    p.add_argument(
        "--micro-seconds", type=float, help="measured seconds per micro-benchmark (default 1)"
    )
    p.add_argument(
        "--micro",
        default="",
        help="comma-separated subset of the micro-benchmarks (micro and instructions sections)",
    )
    p.add_argument(
        "--contestants",
        default="",
        help="comma-separated subset of: "
        + ",".join(c.name.replace(" ", "-") for c in ALL_CONTESTANTS),
    )
    p.add_argument(
        "--http-client",
        choices=("auto", "wrk", "loadgen"),
        default="auto",
        help="who loads the HTTP server (auto: wrk if installed)",
    )
    p.add_argument(
        "--sim-python",
        help="the Python 3.12+ (with tidal, simloop, simloom, seedloop installed) that runs "
        "the sim section (default: the bench's own if 3.12+, else .venv-3.12/bin/python)",
    )
    p.add_argument("--sim-seeds", type=int, help="seeds per simulation workload per round (3)")
    p.add_argument(
        "--out",
        type=Path,
        default=Path("bench-results"),
        help="where the report, chart and built tools go (default bench-results/)",
    )
    return p.parse_args(argv)


def make_config(args: argparse.Namespace) -> Config:
    cfg = Config(out=args.out, http_client=args.http_client, sim_python=args.sim_python)
    if args.quick:
        cfg = replace(cfg, **QUICK)
    for name in ("rounds", "duration", "warmup", "micro_seconds", "sim_seeds"):
        value = getattr(args, name)
        if value is not None:
            setattr(cfg, name, value)
    if args.micro:
        from .micro import BENCHMARKS

        cfg.micro_only = tuple(n for n in args.micro.split(",") if n)
        unknown = [n for n in cfg.micro_only if n not in BENCHMARKS]
        if unknown:
            raise SystemExit(f"unknown micro-benchmark(s) {', '.join(unknown)}; known: "
                             + ", ".join(BENCHMARKS))
    if cfg.rounds < 1 or cfg.duration <= 0 or cfg.warmup < 0 or cfg.micro_seconds <= 0:
        raise SystemExit("--rounds must be >= 1, --duration and --micro-seconds > 0")
    if cfg.sim_seeds < 1:
        raise SystemExit("--sim-seeds must be >= 1")
    return cfg


def choose_contestants(args: argparse.Namespace, skipped: list[str]) -> list[Contestant]:
    known = {c.name.replace(" ", "-"): c for c in ALL_CONTESTANTS}
    wanted = [n for n in args.contestants.split(",") if n] or list(known)
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise SystemExit(f"unknown contestant(s) {', '.join(unknown)}; known: {', '.join(known)}")
    pool = []
    for name in wanted:
        reason = missing_reason(known[name])
        if reason:
            skipped.append(f"{known[name].name}: {reason}")
        else:
            pool.append(known[name])
    return pool


def rotated(items: list[Contestant], by: int) -> list[Contestant]:
    """Round r starts with the r-th contestant: nobody always goes first (or last)."""
    if not items:
        return items
    k = by % len(items)
    return items[k:] + items[:k]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{platform.system()} {platform.release()}, {os.cpu_count()} CPUs ({cpu})"


def load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = make_config(args)
    skipped: list[str] = []
    warnings: list[str] = []
    names = [n for n in args.only.split(",") if n] or list(SECTIONS)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        raise SystemExit(f"unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")

    cfg.out.mkdir(parents=True, exist_ok=True)
    tools = loadgen.build_tools(cfg.out)
    skipped += tools.problems
    pool = choose_contestants(args, skipped)
    if any(c.command and not tools.get(c.command) for c in pool):
        skipped.append("C epoll: the C echo server could not be built")
        pool = [c for c in pool if not c.command or tools.get(c.command)]
    sections: list[Section] = []
    for name in names:
        s = SECTIONS[name]
        if args.quick and not s.in_quick and not args.only:
            continue
        reason = s.unavailable(cfg, tools)
        if reason:
            skipped.append(f"section {name}: {reason}")
        elif not any(s.contestants(g, pool) for g in s.groups(cfg)):
            skipped.append(f"section {name}: no contestant for it")
        else:
            sections.append(s)

    # The plan, up front: who, what, how long.
    def rounds_of(s: Section) -> int:
        return min(cfg.rounds, s.rounds) if s.rounds else cfg.rounds

    total = sum(s.seconds_per_round(cfg, tools, pool) * rounds_of(s) for s in sections)
    print(
        f"tidal bench: {cfg.rounds} rounds, interleaved (each round visits every contestant, "
        "starting one further on), every measurement in a fresh process"
    )
    print("contestants: " + ", ".join(f"{c.name} ({c.note})" if c.note else c.name for c in pool))
    for s in sections:
        print(f"  {s.name:<8} {s.plan(cfg, tools)}")
    for why in skipped:
        print(f"  !! skipped: {why}")
    print(f"estimated time: ~{total / 60:.1f} min; results in {cfg.out}/", flush=True)

    def warn(message: str) -> None:
        warnings.append(message)
        print(f"\n  !! {message}", flush=True)

    ctx = Context(cfg, tools, warn)
    measurements: list[Measurement] = []
    load_before = load()
    started = time.monotonic()
    rounds_done = 0
    try:
        for r in range(max(map(rounds_of, sections), default=0)):
            print(f"round {r + 1}/{max(map(rounds_of, sections))}:", end="", flush=True)
            for s in sections:
                if r >= rounds_of(s):
                    continue
                print(f" {s.name} ", end="", flush=True)
                for group in s.groups(cfg):
                    for contestant in rotated(s.contestants(group, pool), r):
                        try:
                            measurements += s.run(ctx, group, contestant)
                        except BenchError as e:
                            warn(f"{s.name} / {group} on {contestant.name}: {e}")
                        print(".", end="", flush=True)
            rounds_done += 1
            print(f"  [{time.monotonic() - started:.0f} s]", flush=True)
    except KeyboardInterrupt:
        print(f"\ninterrupted: reporting the {rounds_done} complete round(s) and what followed")

    cases = {s.name: s.cases(cfg) for s in sections}
    rows = report.aggregate(measurements, sections, cases, [c.name for c in pool])
    room = report.headroom(rows)
    tight = [f"{case} ({x:.2f}x)" for case, x in room if x < HEADROOM_WARN]
    notes = []
    if tight:
        notes.append(
            "the C epoll server is hardly faster than the fastest loop in "
            + ", ".join(tight)
            + ": there the load generator (or the kernel's copying) "
            "may be what limits the rate"
        )
    meta: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "python": sys.version.split()[0],
        "machine": machine(),
        "rounds": rounds_done,
        "seconds": round(time.monotonic() - started, 1),
        "load_before": load_before,
        "load_after": load(),
        "contestants": {
            c.name: ctx.seen_loops.get(c.name, c.note)
            + (
                f" [{', '.join(f'{k}={v}' for k, v in c.env.items() if v is not None)}]"
                if any(v is not None for v in c.env.values())
                else ""
            )
            for c in pool
        }
        # What a section ran beside the pool (the sim section's tidal.sim).
        | {name: what for name, what in ctx.seen_loops.items() if name not in {c.name for c in pool}},
        "compiler": tools.compiler,
        "wrk": loadgen.wrk_version(tools.wrk) if tools.wrk else None,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "headroom": {case: round(x, 2) for case, x in room},
        "notes": notes,
        "skipped": skipped,
        "warnings": warnings,
    }
    print()
    print(report.text_table(rows, sections))
    md, js, png = cfg.out / "bench.md", cfg.out / "bench.json", cfg.out / "bench.png"
    md.write_text(report.markdown(rows, sections, meta) + "\n")
    report.write_json(js, rows, meta)
    why_no_chart = report.write_chart(png, rows, sections)
    if room:
        worst = min(room, key=lambda item: item[1])
        print(
            f"\nload generator headroom (C epoll / fastest loop, per case): "
            f"lowest {worst[1]:.2f}x at {worst[0]}"
        )
    for line in report.trace_costs(rows):
        print(line)
    for note in notes:
        print(f"note: {note}")
    print(
        f"\nload average before/after: {load_before} / {meta['load_after']}"
        f" ({os.cpu_count()} CPUs); {meta['seconds']:.0f} s"
    )
    print(f"written: {md}, {js}" + (f", {png}" if why_no_chart is None else ""))
    if why_no_chart:
        print(f"!! chart skipped: {why_no_chart}")
    if warnings:
        print(f"!! {len(warnings)} warning(s): see above and {md}")
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
