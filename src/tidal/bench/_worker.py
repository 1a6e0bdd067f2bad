"""What every bench worker shares: its command line, its loop, and how it stops.

A worker is a fresh ``python -m tidal.bench.<worker> --loop NAME`` process.
A *server* worker listens on 127.0.0.1, prints ``READY <port>``, serves until
its stdin closes (the bench holds the other end) or ``--max-seconds`` pass,
then prints ``DONE {json}`` with what it saw.  Anything that reaches the
loop's exception handler is counted and written to stderr, where the bench
picks it up as a warning: a benchmark that errors is not measuring anything.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from .contestants import LOOP_NAMES, describe, loop_factory

HOST = "127.0.0.1"
BACKLOG = 4096  # the kernel's somaxconn cap here: 10,000 connects must not overflow the queue


# --trace: what the bench's tracing section compares (tidal only): off, a
# flight recorder of FLIGHT_RECORDER records, everything kept.
TRACE_MODES = ("off", "flight", "full")
FLIGHT_RECORDER = 100_000


def add_trace_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--trace",
        choices=TRACE_MODES,
        default="off",
        help="tidal only: run under tidal.trace, a flight recorder or everything kept",
    )


def start_tracing(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--trace: turn tidal.trace on for the loops this worker makes (nothing is
    written: the records are made and kept, as in production)."""
    if args.trace == "off":
        return
    if args.loop != "tidal":
        p.error("--trace is for --loop tidal")
    import tidal.trace

    tidal.trace.start(None, flight_recorder=FLIGHT_RECORDER if args.trace == "flight" else None)


def parser(description: str | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--loop", required=True, choices=LOOP_NAMES)
    p.add_argument("--max-seconds", type=float, default=600.0, help="stop serving after this long")
    add_trace_option(p)
    return p


def raise_nofile_limit() -> None:
    """Soft RLIMIT_NOFILE up to the hard limit: the scaling section opens 10,000 sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class ErrorCounter:
    """The loop's exception handler: count, and say on stderr what happened."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, *args: Any) -> None:
        # asyncio calls handler(loop, context); rloop calls handler(context)
        # (its streams report a peer's reset as a RuntimeError in the
        # connection callback): counted either way, not a second error.
        context: dict[str, Any] = args[-1]
        self.count += 1
        if self.count <= 5:
            exc = context.get("exception")
            print(f"exception handler: {context.get('message')} {exc!r}", file=sys.stderr)


def run_on(loop_name: str, main: Awaitable[Any]) -> Any:
    with asyncio.Runner(loop_factory=loop_factory(loop_name)) as runner:
        return runner.run(main)  # type: ignore[arg-type]


# A server returns (port, close): close() stops it and lets go of its connections.
StartServer = Callable[[], Awaitable[tuple[int, Callable[[], Awaitable[None]]]]]


def serve(args: argparse.Namespace, start: StartServer) -> int:
    """Run a server worker: READY, serve until stdin closes, DONE."""
    raise_nofile_limit()
    errors = ErrorCounter()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(errors)
        stop = asyncio.Event()

        def wait_for_stdin_eof() -> None:
            # A thread, not connect_read_pipe: the stop signal must not depend
            # on the loop under test supporting pipes.
            sys.stdin.buffer.read()
            loop.call_soon_threadsafe(stop.set)

        threading.Thread(target=wait_for_stdin_eof, daemon=True).start()
        port, close = await start()
        print(f"READY {port}", flush=True)
        try:
            await asyncio.wait_for(stop.wait(), args.max_seconds)
        except TimeoutError:
            print(f"stopping after --max-seconds {args.max_seconds}", file=sys.stderr)
        await asyncio.wait_for(close(), 10)

    run_on(args.loop, main())
    done = {"loop": describe(args.loop), "errors": errors.count}
    print("DONE " + json.dumps(done), flush=True)
    return 0
