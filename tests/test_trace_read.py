"""Reading traces back: ``tidal.trace.load`` and ``python -m tidal trace --summary/--check/--png``
take the JSON and the Perfetto protobuf (.pftrace) files tidal writes alike.

Tracing is tidal's (asyncio's loop has no instruments): the traced program
is checked to run the same on both loops, then traced on tidal.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest

import tidal
from tidal import trace


async def _relay(inbox, outbox, rounds):
    for _ in range(rounds):
        item = await inbox.get()
        await asyncio.sleep(0.0002)
        outbox.put_nowait(item + 1)


async def _program():
    """Three tasks passing a number round a ring of queues: steps, wake-ups, timers."""
    queues = [asyncio.Queue() for _ in range(3)]
    relays = [
        asyncio.create_task(_relay(queues[k], queues[(k + 1) % 3], 8), name=f"relay-{k}") for k in range(3)
    ]
    queues[0].put_nowait(0)
    await asyncio.gather(*relays)
    return queues[0].get_nowait()


def test_the_program_runs_the_same_on_both_loops(loop):
    assert loop.run_until_complete(_program()) == 24


@pytest.fixture
def both_formats(loop_name, tmp_path):
    """One traced run, written as JSON and as protobuf: (json path, pftrace path)."""
    if loop_name == "asyncio":
        pytest.skip("tidal.trace: asyncio's loop has no instruments")
    session = trace.start()
    try:
        tidal.run(_program())
        paths = session.write(str(tmp_path / "t.json")), session.write(str(tmp_path / "t.pftrace"))
    finally:
        trace.stop()
    return paths


def _cli(*args):
    env = {k: v for k, v in os.environ.items() if k != "TIDAL_TRACE"}
    return subprocess.run(
        [sys.executable, "-m", "tidal", "trace", *args], capture_output=True, text=True, timeout=60, env=env
    )


def test_either_format_gives_the_same_summary_and_checks(both_formats):
    json_path, pf_path = both_formats
    from_json, from_pf = trace.load(json_path), trace.load(pf_path)
    assert trace.check(from_json) == [] and trace.check(from_pf) == []
    summary = trace.summary(from_json)
    assert "relay-0" in summary and summary == trace.summary(from_pf)
    # The same slices (track, name, time, length, arguments), flows and counter values.
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in from_json["traceEvents"] if e.get("name") == "thread_name"}

    def slices(data):
        return sorted(
            (names[(e["pid"], e["tid"])], e["name"], e["ts"], e["dur"], json.dumps(e["args"], sort_keys=True))
            for e in data["traceEvents"] if e["ph"] == "X"
        )

    assert slices(from_pf) == slices(from_json)
    for ph in ("s", "f", "C"):
        assert sum(e["ph"] == ph for e in from_pf["traceEvents"]) == sum(
            e["ph"] == ph for e in from_json["traceEvents"]
        ) > 0
    # And from the command line, which read JSON only before.
    for path in (json_path, pf_path):
        checked = _cli("--check", path)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    assert _cli("--summary", pf_path).stdout == _cli("--summary", json_path).stdout == summary + "\n"


def test_png_draws_a_pftrace(both_formats, tmp_path):
    pytest.importorskip("PIL")
    from tidal.trace import _png

    out = tmp_path / "t.png"
    _png.render(trace.load(both_formats[1]), str(out), width=400)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_corrupt_or_truncated_trace_is_a_clear_error(both_formats, tmp_path):
    json_path, pf_path = both_formats
    with open(pf_path, "rb") as f:
        data = f.read()
    with open(json_path, "rb") as f:
        json_data = f.read()
    cases = {
        "truncated.pftrace": (data[: len(data) // 2], "truncated"),
        "garbage.pftrace": (b"\x0f\xff\xff\xff" + bytes(range(64)), "corrupt"),
        "text.pftrace": (b"hello, world\n", "not a Perfetto trace"),
        "empty.pftrace": (b"", "no packets"),
        "truncated.json": (json_data[:100], "bad JSON"),
    }
    for name, (content, what) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(trace.TraceFormatError, match=what):
            trace.load(str(tmp_path / name))
    # The command line says so (the message above, after the file's name), no traceback.
    for args, what in (
        (["--summary", "truncated.pftrace"], "truncated"),
        (["--check", "garbage.pftrace"], "corrupt"),
        (["--png", "x.png", "text.pftrace"], "not a Perfetto trace"),
    ):
        proc = _cli(*(str(tmp_path / a) if "." in a else a for a in args))
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert what in proc.stderr and "Traceback" not in proc.stderr, (args, proc.stderr)
