"""``python -m tidal``: the tour; ``--version`` says which build is running."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tidal", description=__doc__)
    parser.add_argument("--version", action="store_true", help="print version and build, exit")
    args = parser.parse_args(argv)
    import tidal

    if args.version:
        build = "compiled" if tidal.COMPILED else "interpreted"
        print(f"tidal {tidal.__version__} ({build}), Python {sys.version.split()[0]}")
        return 0
    from tidal._tour import main as tour

    return tour()


if __name__ == "__main__":
    sys.exit(main())
