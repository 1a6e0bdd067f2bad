"""``python -m tidal``: the tour; ``--version`` says which build is running.

``python -m tidal bench [...]`` runs the benchmark (``python -m tidal bench --help``).
``python -m tidal ps|pstree|top PID``: the tasks, await tree and live figures of a
running process that opted in with TIDAL_MONITOR=1 (docs/monitoring.md).
"""

from __future__ import annotations

import argparse
import sys


def _version_line(version: str, compiled: bool) -> str:
    """What a bug report needs: tidal's version and build, the Python, the platform."""
    import platform

    build = "compiled" if compiled else "interpreted"
    python = f"{platform.python_implementation()} {platform.python_version()}"
    return f"tidal {version} ({build}), {python}, {platform.system()} {platform.machine()}"


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["bench"]:
        # Everything after `bench` is the bench's own command line.
        from tidal.bench import main as bench

        return bench(args_in[1:])
    if args_in[:1] in (["ps"], ["pstree"], ["top"]):
        from tidal.monitor._client import main as monitor_client

        return monitor_client(args_in[0], args_in[1:])
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
