"""``python -m tidal``: the tour; ``--version`` says which build is running.

``python -m tidal bench [...]`` runs the benchmark (``python -m tidal bench --help``).
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["bench"]:
        # Everything after `bench` is the bench's own command line.
        from tidal.bench import main as bench

        return bench(args_in[1:])
    parser = argparse.ArgumentParser(
        prog="python -m tidal",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="print version and build, exit")
    args = parser.parse_args(args_in)
    import tidal

    if args.version:
        build = "compiled" if tidal.COMPILED else "interpreted"
        print(f"tidal {tidal.__version__} ({build}), Python {sys.version.split()[0]}")
        return 0
    from tidal._tour import main as tour

    return tour()


if __name__ == "__main__":
    sys.exit(main())
