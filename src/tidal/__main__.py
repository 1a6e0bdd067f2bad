"""``python -m tidal``: the tour; ``--version`` says which build is running.

  python -m tidal run SCRIPT [ARGS...]              run an asyncio program on tidal (-m MODULE too)
  python -m tidal trace -o trace.json SCRIPT [...]  the same, writing a timeline of it (docs/tracing.md)
  python -m tidal trace --summary trace.json        the busiest tasks, longest steps, worst lags
  python -m tidal trace --png out.png trace.json    a picture of the timeline (pip install 'tidal[png]')
  python -m tidal bench [...]                       the benchmark (python -m tidal bench --help)
  python -m tidal sim SCENARIO.py --seeds N --jobs J  a simulation scenario over seeds with swarm faults:
                                                    the first failure shrunk and reported (docs/simulation.md);
                                                    --dask tcp://scheduler:8786 runs them on a Dask cluster
  python -m tidal ps|pstree|top PID                 the tasks, await tree and live figures of a running
                                                    process that opted in with TIDAL_MONITOR=1 (docs/monitoring.md)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import runpy
import sys


def _version_line(version: str, compiled: bool) -> str:
    """What a bug report needs: tidal's version and build, the Python, the platform."""
    import platform

    build = "compiled" if compiled else "interpreted"
    python = f"{platform.python_implementation()} {platform.python_version()}"
    return f"tidal {version} ({build}), {python}, {platform.system()} {platform.machine()}"


def _run_program(target: list[str], module: str | None) -> int:
    """Run a script (or a module, as python -m does) with tidal as asyncio's loop; its exit code."""
    import tidal

    # asyncio.run and asyncio.new_event_loop ask the policy for their loop.
    asyncio.set_event_loop_policy(tidal.EventLoopPolicy())
    if module is not None:
        sys.argv = [module, *target]
    else:
        sys.argv = list(target)
        sys.path[0] = os.path.dirname(os.path.abspath(target[0]))
    try:
        if module is not None:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(target[0], run_name="__main__")
    except SystemExit as exc:
        code = exc.code
        if code is None or isinstance(code, int):
            return code or 0
        print(code, file=sys.stderr)
        return 1
    return 0


def _program_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("-m", dest="module", metavar="MODULE", help="run a module, as python -m does")
    parser.add_argument("target", nargs=argparse.REMAINDER, help="SCRIPT [ARGS...] (or the module's ARGS)")
    return parser


def _run(argv: list[str]) -> int:
    args = _program_parser("python -m tidal run", "Run an asyncio program on tidal's loop.").parse_args(argv)
    if not args.target and args.module is None:
        print("python -m tidal run: give a SCRIPT (or -m MODULE)", file=sys.stderr)
        return 2
    return _run_program(args.target, args.module)


def _trace(argv: list[str]) -> int:
    parser = _program_parser(
        "python -m tidal trace",
        "Run an asyncio program on tidal's loop and write a timeline of it (Chrome trace JSON, "
        "for ui.perfetto.dev); or summarise one.",
    )
    parser.add_argument(
        "-o", "--output", default="trace.json",
        help="where to write the trace (a .pftrace path: Perfetto's protobuf format, for big traces)",
    )
    parser.add_argument("--summary", metavar="TRACE", help="print the summary of TRACE and exit")
    parser.add_argument("--check", metavar="TRACE", help="check TRACE strictly; exit 1 on a problem")
    parser.add_argument(
        "--png", metavar="OUT", help="draw the timeline of the TRACE given after it into the PNG file OUT"
    )
    parser.add_argument(
        "--window", metavar="START:END", help="with --png: only from START to END ms into the trace"
    )
    parser.add_argument("--width", type=int, default=1600, help="with --png: the picture's width in pixels")
    # Options go before SCRIPT: everything from SCRIPT on is the program's.
    args = parser.parse_args(argv)
    from tidal import trace

    if args.summary or args.check:
        try:
            data = trace.load(args.summary or args.check)
        except (OSError, trace.TraceFormatError) as exc:
            print(f"python -m tidal trace: {exc}", file=sys.stderr)
            return 2
        if args.summary:
            print(trace.summary(data))
            return 0
        problems = trace.check(data)
        for problem in problems:
            print(problem)
        print(f"{len(problems)} problem(s)", file=sys.stderr)
        return 1 if problems else 0
    if args.png:
        return _draw(args.png, args.target, args.window, args.width)
    if not args.target and args.module is None:
        print("python -m tidal trace: give a SCRIPT (or -m MODULE), or --summary TRACE", file=sys.stderr)
        return 2
    trace.start(args.output)
    try:
        return _run_program(args.target, args.module)
    finally:
        path = trace.stop()
        print(f"tidal: trace written to {path} (open it in https://ui.perfetto.dev)", file=sys.stderr)


def _draw(out: str, target: list[str], window: str | None, width: int) -> int:
    """--png OUT TRACE: draw TRACE."""
    from tidal.trace import _png

    if len(target) != 1:
        print("python -m tidal trace --png OUT.png TRACE.json: give one TRACE", file=sys.stderr)
        return 2
    start = end = None
    if window:
        try:
            first, _, last = window.partition(":")
            start = float(first) if first else None
            end = float(last) if last else None
        except ValueError:
            print(f"--window START:END, in ms (e.g. 120:135), not {window!r}", file=sys.stderr)
            return 2
    from tidal import trace

    try:
        data = trace.load(target[0])
    except (OSError, trace.TraceFormatError) as exc:
        print(f"python -m tidal trace: {exc}", file=sys.stderr)
        return 2
    try:
        _png.render(data, out, width=width, start_ms=start, end_ms=end)
    except (_png.PillowMissing, ValueError) as exc:
        print(f"python -m tidal trace --png: {exc}", file=sys.stderr)
        return 1
    print(f"tidal: {out} drawn from {target[0]}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["bench"]:
        # Everything after `bench` is the bench's own command line.
        from tidal.bench import main as bench

        return bench(args_in[1:])
    if args_in[:1] in (["ps"], ["pstree"], ["top"]):
        from tidal.monitor._client import main as monitor_client

        return monitor_client(args_in[0], args_in[1:])
    if args_in[:1] == ["run"]:
        return _run(args_in[1:])
    if args_in[:1] == ["trace"]:
        return _trace(args_in[1:])
    if args_in[:1] == ["sim"]:
        from tidal.sim._cli import main as sim_main

        return sim_main(args_in[1:])
    parser = argparse.ArgumentParser(
        prog="python -m tidal",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="print version, build, Python and platform, exit")
    args = parser.parse_args(args_in)
    import tidal

    if args.version:
        print(_version_line(tidal.__version__, tidal.COMPILED))
        return 0
    from tidal._tour import main as tour

    return tour()


if __name__ == "__main__":
    sys.exit(main())
