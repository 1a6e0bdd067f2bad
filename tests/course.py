"""Running the course's programs (examples/distributed/) from the tests:
import them as modules, or run them as the reader would, in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys

COURSE_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "distributed"
)
if COURSE_DIR not in sys.path:
    sys.path.insert(0, COURSE_DIR)


def run_program(program: str, *args: str, timeout: float = 60.0) -> str:
    """``python examples/distributed/<program>.py args``: its stdout (it must succeed)."""
    done = subprocess.run(
        [sys.executable, os.path.join(COURSE_DIR, program + ".py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr
    return done.stdout
