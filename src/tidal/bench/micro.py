"""Worker: scheduler micro-benchmarks on the loop under test, in operations per second.

``python -m tidal.bench.micro --loop NAME --seconds S [--only a,b]`` prints one
JSON object: ``{"loop": ..., "results": {id: ops_per_s}}``.  With ``--batches N``
it times nothing: one warm-up batch, then N batches of each benchmark, and
``results`` says how many operations that was (the bench's instructions
section runs it under callgrind, and divides instructions by operations).

Each benchmark is an ``async def`` doing a batch of ``n`` operations.  It runs
on a fresh loop: a short warm-up, then batches until ``--seconds`` have
passed; the rate is operations over the time those batches took.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from . import _worker
from .contestants import LOOP_NAMES, describe


async def call_soon_chain(n: int) -> int:
    """A callback that schedules the next: the ready queue's round trip."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    left = n

    def step() -> None:
        nonlocal left
        left -= 1
        if left:
            loop.call_soon(step)
        else:
            done.set_result(None)

    loop.call_soon(step)
    await done
    return n


async def call_later_third_cancelled(n: int) -> int:
    """n timers with due times spread over 100 us, every third cancelled (the usual fate of a timeout).

    The due times are the 100 us before the batch is made, so every timer is
    due when the loop first looks: the batch measures timer work (making,
    ordering, cancelling, running), not waiting.  (Due within the next 100 us,
    as this benchmark had them until 2026-12, a loop that makes a thousand
    timers in less time than that then waits for the last ones, and the line
    measured the poll's rounding: 1 ms on asyncio's loop, 0 on uvloop's,
    which rounds delays to whole milliseconds and runs these as call_soon.)
    The spread is the same as before, so a heap sees the same order of pushes.
    """
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    expected = n - len(range(0, n, 3))
    fired = 0

    def on_timer() -> None:
        nonlocal fired
        fired += 1
        if fired == expected:
            done.set_result(None)

    handles = [loop.call_later((i % 100 - 100) * 1e-6, on_timer) for i in range(n)]
    for handle in handles[::3]:
        handle.cancel()
    await done
    return n


async def future_set_await(n: int) -> int:
    """Create a future, have a callback resolve it, await it."""
    loop = asyncio.get_running_loop()
    for _ in range(n):
        fut = loop.create_future()
        loop.call_soon(fut.set_result, None)
        await fut
    return n


async def _nothing() -> None:
    pass


async def task_create_gather(n: int) -> int:
    """Tasks made and gathered a hundred at a time."""
    loop = asyncio.get_running_loop()
    for _ in range(n // 100):
        await asyncio.gather(*[loop.create_task(_nothing()) for _ in range(100)])
    return n // 100 * 100


async def queue_ping_pong(n: int) -> int:
    """Two tasks passing an item back and forth through two asyncio.Queues; one op = a round trip."""
    ping: asyncio.Queue[int] = asyncio.Queue()
    pong: asyncio.Queue[int] = asyncio.Queue()

    async def ponger() -> None:
        for _ in range(n):
            pong.put_nowait(await ping.get())

    task = asyncio.get_running_loop().create_task(ponger())
    for i in range(n):
        ping.put_nowait(i)
        await pong.get()
    await task
    return n


async def call_soon_threadsafe(n: int) -> int:
    """Another thread schedules n callbacks: the wake-up path, under contention for the GIL."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    count = 0

    def callback() -> None:
        nonlocal count
        count += 1
        if count == n:
            done.set_result(None)

    def producer() -> None:
        for _ in range(n):
            loop.call_soon_threadsafe(callback)

    thread = threading.Thread(target=producer)
    thread.start()
    try:
        await done
    finally:
        thread.join()
    return n


class _EchoServer(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class _PingClient(asyncio.Protocol):
    """Sends MESSAGE, and again each time it is all back, `left` times."""

    MESSAGE = b"x" * 1024

    def __init__(self, left: int, done: asyncio.Future[None]) -> None:
        self.left = left
        self.done = done
        self.got = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport
        transport.write(self.MESSAGE)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.got += len(data)
        if self.got < len(self.MESSAGE):
            return
        self.got = 0
        self.left -= 1
        if self.left:
            self.transport.write(self.MESSAGE)
        else:
            self.done.set_result(None)


async def stream_echo(n: int) -> int:
    """A 1 KiB message to a Protocol echo server and back over loopback TCP, both ends on the loop.

    The per-message work of the bench's echo section (read, data_received,
    write, on both ends), in one process, so callgrind can count it.
    """
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_EchoServer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    done = loop.create_future()
    transport, _ = await loop.create_connection(lambda: _PingClient(n, done), "127.0.0.1", port)
    await done
    transport.close()
    server.close()
    await server.wait_closed()
    return n


async def _echo_lines(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            writer.write(await reader.readexactly(len(_PingClient.MESSAGE)))
    except asyncio.IncompleteReadError:
        writer.close()


async def streams_echo(n: int) -> int:
    """The same round trip with asyncio streams on both ends (a Task per
    connection, readexactly): each message costs two task steps, resuming
    three coroutines deep, as the echo section's streams server does."""
    server = await asyncio.start_server(_echo_lines, "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    message = _PingClient.MESSAGE
    for _ in range(n):
        writer.write(message)
        await reader.readexactly(len(message))
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()
    return n


# id -> (label, benchmark, batch size); a batch takes milliseconds on any loop.
BENCHMARKS: dict[str, tuple[str, Callable[[int], Awaitable[int]], int]] = {
    "call_soon": ("call_soon chain", call_soon_chain, 10_000),
    "call_later": ("call_later, 1/3 cancelled", call_later_third_cancelled, 1_000),
    "future": ("future set+await", future_set_await, 2_000),
    "gather": ("task create+gather", task_create_gather, 1_000),
    "queue": ("Queue ping-pong", queue_ping_pong, 1_000),
    "threadsafe": ("call_soon_threadsafe", call_soon_threadsafe, 5_000),
    "echo": ("stream echo, 1 KiB round trip", stream_echo, 2_000),
}
# Run only when named (--only): not part of the bench's sections.
ON_REQUEST: dict[str, tuple[str, Callable[[int], Awaitable[int]], int]] = {
    "streams": ("asyncio streams echo, 1 KiB round trip", streams_echo, 1_000),
}


async def measure(bench: Callable[[int], Awaitable[int]], batch: int, seconds: float) -> float:
    warm_until = time.perf_counter() + min(0.1, seconds / 2)
    while time.perf_counter() < warm_until:
        await bench(batch)
    ops = 0
    t0 = time.perf_counter()
    while True:
        ops += await bench(batch)
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return ops / elapsed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--loop", required=True, choices=LOOP_NAMES)
    p.add_argument("--seconds", type=float, default=0.5, help="measured time per benchmark")
    p.add_argument("--only", default="", help="comma-separated ids: " + ",".join([*BENCHMARKS, *ON_REQUEST]))
    p.add_argument("--batches", type=int, default=0, help="run N batches untimed (see above)")
    _worker.add_trace_option(p)
    args = p.parse_args(argv)
    _worker.start_tracing(p, args)
    names = [n for n in args.only.split(",") if n] or list(BENCHMARKS)
    errors = _worker.ErrorCounter()
    results: dict[str, float] = {}
    for name in names:
        _label, bench, batch = BENCHMARKS[name] if name in BENCHMARKS else ON_REQUEST[name]

        async def run(bench: Callable[[int], Awaitable[int]] = bench, batch: int = batch) -> float:
            asyncio.get_running_loop().set_exception_handler(errors)
            if args.batches:
                await bench(batch)
                return float(sum([await bench(batch) for _ in range(args.batches)]))
            return await measure(bench, batch, args.seconds)

        gc.collect()
        results[name] = _worker.run_on(args.loop, run())
    print(json.dumps({"loop": describe(args.loop), "errors": errors.count, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
