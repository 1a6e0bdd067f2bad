"""Print the CPython test_asyncio conformance counts, per module.

    python tests/conformance/report.py            # the running Python
    python tests/conformance/report.py --all      # .venv, .venv-3.12, .venv-3.13
    TIDAL_CONFORMANCE_LOOP=asyncio python tests/conformance/report.py   # harness check

Extra arguments go to pytest.  The counts come from this directory's conftest
(run = pass + fail + xfail; xfail = NOT_YET, strict; n/a = tests of asyncio's
own loop; skipped = skipped by CPython's own conditions).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
VENVS = [".venv", ".venv-3.12", ".venv-3.13"]
COLUMNS = ["run", "pass", "fail", "xfail", "excluded", "n/a", "skipped"]


def run_one(python: str, extra: list[str]) -> dict | None:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    env = dict(os.environ, TIDAL_CONFORMANCE_JSON=out)
    cmd = [python, "-m", "pytest", HERE, "-q", "-p", "no:cacheprovider", "--no-header", *extra]
    proc = subprocess.run(cmd, check=False, cwd=ROOT, env=env, capture_output=True, text=True)
    try:
        with open(out) as f:
            return json.load(f) if os.path.getsize(out) else None
    finally:
        os.unlink(out)
        if proc.returncode not in (0, 1):
            sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])


def print_table(result: dict) -> None:
    print(f"\nPython {result['python']}, loop under test: {result['loop']}")
    print(f"{'module':<22}" + "".join(f"{c:>9}" for c in COLUMNS))
    total: dict[str, int] = {}
    for mod, counts in result["modules"].items():
        print(f"{mod:<22}" + "".join(f"{counts.get(c, 0):>9}" for c in COLUMNS))
        for c in COLUMNS:
            total[c] = total.get(c, 0) + counts.get(c, 0)
    print(f"{'TOTAL':<22}" + "".join(f"{total.get(c, 0):>9}" for c in COLUMNS))
    for test_id in result["failed"]:
        print(f"  FAILED {test_id}")


def main(argv: list[str]) -> int:
    if argv[:1] == ["--all"]:
        pythons = [
            os.path.join(ROOT, v, "bin", "python")
            for v in VENVS
            if os.path.exists(os.path.join(ROOT, v, "bin", "python"))
        ]
        extra = argv[1:]
    else:
        pythons, extra = [sys.executable], argv
    status = 0
    for python in pythons:
        result = run_one(python, extra)
        if result is None:
            print(f"\n{python}: no conformance results (see the error above)")
            status = 1
            continue
        print_table(result)
        status |= bool(result["failed"])
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
