"""``python -m tidal sim``: what it runs with and what it prints off a terminal.

(The search, report and replay through the command are in
tests/test_sim_search.py; seeds on Dask in tests/test_sim_dask.py.)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

import pytest

from tidal.sim._cli import main


def test_a_fixed_hash_seed_and_a_plain_progress_line_off_a_terminal(tmp_path: Any) -> None:
    (tmp_path / "scenario.py").write_text(
        "from tidal.sim import examples\n\ndef scenario(sim):\n    examples.deposits(sim, dedup=False)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}  # this tidal
    env.pop("PYTHONHASHSEED", None)
    done = subprocess.run(
        [sys.executable, "-m", "tidal", "sim", "scenario.py", "--seeds", "10", "--no-shrink"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr
    # Unset, the hash seed is 0 (the command started itself again with it),
    # which is also what the replay command gets without saying it.
    assert "\nPYTHONHASHSEED: 0\n" in done.stdout
    seed = int(done.stdout.split("seed ", 1)[1].split()[0])
    assert f"\nreplay: python -m tidal sim scenario.py --seed={seed}\n" in done.stdout
    assert re.search(r"^tidal\.sim: \d+/10 seeds, [\d.]+ seeds/s$", done.stderr, re.M), done.stderr
    assert "\r" not in done.stderr


@pytest.mark.parametrize(
    "args", [["x.py", "--seeds", "5", "--seed", "3"], ["x.py", "--plan", "p.json"], ["nofile.py"]]
)
def test_usage_errors_exit_2(args: list[str], capsys: Any) -> None:
    with pytest.raises(SystemExit) as exit:
        main(args)
    assert exit.value.code == 2
    assert "error:" in capsys.readouterr().err
