"""The tour (`make run`) is a user-facing command: it must finish cleanly."""

import json
import platform
import re
import subprocess
import sys

from tidal.trace import check


def test_tour_runs_clean():
    proc = subprocess.run(
        [sys.executable, "-m", "tidal"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    # Nothing may go to the exception handler or the log during the tour.
    assert proc.stderr == "", proc.stderr
    for style in ("callbacks", "plain generators", "async/await"):
        assert f"{style}" in proc.stdout
    assert "200 echoes" in proc.stdout
    assert "tidal speed" in proc.stdout
    # A simulated cluster finds its planted bug, replays it and shrinks it.
    assert "two leaders in one term" in proc.stdout
    assert "replayed from its seed: AssertionError, the same run: True" in proc.stdout
    assert "partition" in proc.stdout
    # It traces its own echo service, prints the trace's summary and says where it is.
    # (Which tracks were busiest varies from run to run: on a loaded machine the
    # server's tasks and the callbacks track may fill the top 3.  The table has
    # rows of ms, steps, mean and a track; the tracks' names are checked below.)
    busiest = proc.stdout.split("Busiest tasks", 1)[-1].split("Longest steps", 1)[0]
    assert "Busiest tasks" in proc.stdout, proc.stdout
    rows = re.findall(r"^ +[\d.]+ +\d+ +[\d.]+ +\S+$", busiest, re.M)
    assert len(rows) == 3, proc.stdout
    path = re.search(r"The whole timeline: (\S+)", proc.stdout).group(1)
    with open(path) as f:
        trace = json.load(f)
    assert check(trace) == []
    tracks = {e["args"]["name"] for e in trace["traceEvents"] if e.get("name") == "thread_name"}
    assert {"client-1", "client-3", "echo-handler-1"} <= tracks, tracks


def test_version_says_which_build():
    out = subprocess.run(
        [sys.executable, "-m", "tidal", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("tidal ") and ("interpreted" in out or "compiled" in out)
    # ... and the Python and the platform, for bug reports.
    assert f"{platform.python_implementation()} {platform.python_version()}" in out
    assert f"{platform.system()} {platform.machine()}" in out
