"""``python -m tidal.bench`` (``make bench``): asyncio, uvloop, rloop and tidal, side by side.

One run measures every *contestant* (a loop, or for the reference line a C
program) in interleaved rounds: each round visits every contestant once, in
an order that rotates from round to round, so drift in the machine's load
falls on all of them alike.  Every measurement runs in a fresh subprocess
(``python -m tidal.bench.<worker> --loop NAME``), so one loop's state never
leaks into another's numbers.  The report gives medians, the min-max spread
and ratios to asyncio, uvloop and rloop: a terminal table, the same as Markdown
and JSON in ``bench-results/``, and a PNG bar chart beside them.

Modules:

  run.py          the command line, the plan, the rounds
  contestants.py  who runs: (name, loop or command, environment)
  micro.py        worker: scheduler micro-benchmarks (call_soon, timers, futures, ...)
  echo.py         worker: TCP echo servers (Protocol, BufferedProtocol, streams, sock_*)
  http.py         worker: a small httptools HTTP/1.1 server
  loadgen.py      builds and drives the C load generator and C echo server (csrc/), and wrk
  sections.py     what each section measures, and how
  report.py       statistics, table, Markdown, JSON, chart
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Run the bench; ``argv`` as on the command line (``--quick``, ``--only``, ...)."""
    from .run import main as run_main

    return run_main(argv)


__all__ = ["main"]
