"""The tour: one echo service written three ways, served on tidal, then timed.

``make run`` / ``python -m tidal`` runs it.  Each style is a complete server
and client: the point is to show that callbacks, plain generators and
async/await are equally at home on the loop, then how the same echo fares
on asyncio's loop and on tidal's, measured side by side in this process.
Last, a small simulated cluster (tidal.sim) finds a planted bug over seeds,
replays it from its seed and shrinks its faults to the one it needs.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from typing import Any, Callable, Generator

import tidal

HOST = "127.0.0.1"
ROUNDS = 200  # echo round trips per style in the tour


# ---------------------------------------------------------------------------
# Style 1: callbacks -- a Protocol on each side, driven by the loop.
# ---------------------------------------------------------------------------


class EchoServerProtocol(asyncio.Protocol):
    """Writes back whatever arrives: the server never suspends, it only reacts."""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class PingClientProtocol(asyncio.Protocol):
    """Sends a line, and on each echo sends the next: a chain of callbacks."""

    def __init__(self, rounds: int, done: asyncio.Future[int]) -> None:
        self.rounds = rounds
        self.done = done
        self.sent = 0
        self.received = b""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self._send_next()

    def _send_next(self) -> None:
        self.sent += 1
        self.transport.write(b"ping %d\n" % self.sent)

    def data_received(self, data: bytes) -> None:
        self.received += data
        while b"\n" in self.received:
            _line, _, self.received = self.received.partition(b"\n")
            if self.sent == self.rounds:
                self.transport.close()
                return
            # call_soon instead of a direct call: each round trip is a new
            # callback on the loop, as an event-driven client would be.
            asyncio.get_running_loop().call_soon(self._send_next)

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.done.done():
            self.done.set_result(self.sent)


async def callbacks_style(rounds: int) -> int:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(EchoServerProtocol, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    done: asyncio.Future[int] = loop.create_future()
    await loop.create_connection(lambda: PingClientProtocol(rounds, done), HOST, port)
    count = await done
    server.close()
    await server.wait_closed()
    return count


# ---------------------------------------------------------------------------
# Style 2: plain generators -- `yield awaitable` suspends, no async keyword.
# ---------------------------------------------------------------------------


def echo_handler_gen(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> Generator[Any, Any, None]:
    """A server handler as a plain generator: each `yield` waits for the stream."""
    while True:
        line = yield reader.readline()
        if not line:
            break
        writer.write(line)
        yield writer.drain()
    writer.close()
    yield writer.wait_closed()


def ping_client_gen(port: int, rounds: int) -> Generator[Any, Any, int]:
    reader, writer = yield asyncio.open_connection(HOST, port)
    for i in range(rounds):
        writer.write(b"ping %d\n" % i)
        reply = yield reader.readline()
        assert reply == b"ping %d\n" % i, reply
    writer.close()
    yield writer.wait_closed()
    return rounds


def generators_style(rounds: int) -> Generator[Any, Any, int]:
    handlers: list[asyncio.Task] = []
    server = yield asyncio.start_server(
        # Each connection's handler is a plain generator, spawned as a task;
        # we keep the tasks so the service ends only when they have.
        lambda r, w: handlers.append(tidal.spawn(echo_handler_gen, r, w)),
        HOST,
        0,
    )
    port = server.sockets[0].getsockname()[1]
    count = yield tidal.spawn(ping_client_gen, port, rounds)
    server.close()
    yield server.wait_closed()
    yield asyncio.gather(*handlers)
    return count


# ---------------------------------------------------------------------------
# Style 3: async/await on asyncio's own Task and streams.
# ---------------------------------------------------------------------------


async def echo_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while line := await reader.readline():
        writer.write(line)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


async def ping_client(port: int, rounds: int) -> int:
    reader, writer = await asyncio.open_connection(HOST, port)
    for i in range(rounds):
        writer.write(b"ping %d\n" % i)
        reply = await reader.readline()
        assert reply == b"ping %d\n" % i, reply
    writer.close()
    await writer.wait_closed()
    return rounds


async def serve_echo(clients: Callable[[int], Any]) -> Any:
    """Serve the async echo handler while `clients(port)` runs; wait for every handler.

    (On 3.11 Server.wait_closed() does not wait for the handlers, so we do.)
    """
    handlers: list[asyncio.Task] = []
    loop = asyncio.get_running_loop()

    def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Named, as a trace then names their tracks.
        name = f"echo-handler-{len(handlers) + 1}"
        handlers.append(loop.create_task(echo_handler(reader, writer), name=name))

    server = await asyncio.start_server(handle, HOST, 0)
    async with server:
        result = await clients(server.sockets[0].getsockname()[1])
    await asyncio.gather(*handlers)
    return result


async def async_style(rounds: int) -> int:
    return await serve_echo(lambda port: ping_client(port, rounds))


# ---------------------------------------------------------------------------
# What the loop ran: the async echo service, traced (docs/tracing.md).
# ---------------------------------------------------------------------------


async def _traced_clients(port: int, clients: int, rounds: int) -> int:
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(ping_client(port, rounds), name=f"client-{i + 1}") for i in range(clients)]
    return sum(await asyncio.gather(*tasks))


def traced_echo(path: str, clients: int = 3, rounds: int = 50) -> str | None:
    """Serve the async echo to a few named clients under tidal.trace; the summary of
    the trace written to `path` (None if tracing is already on in this process)."""
    import tidal.trace

    if tidal.trace.current() is not None:  # TIDAL_TRACE: that trace is the user's
        return None
    session = tidal.trace.start(path)
    try:
        tidal.run(serve_echo(lambda port: _traced_clients(port, clients, rounds)))
        return tidal.trace.summary(session.trace(), top=3)
    finally:
        tidal.trace.stop()  # writes `path`


# ---------------------------------------------------------------------------
# Side by side: the same workloads on asyncio's loop and on tidal's.
# ---------------------------------------------------------------------------


async def _echo_workload(rounds: int) -> None:
    # Several clients at once, so the loop juggles connections, not just one.
    await serve_echo(lambda port: asyncio.gather(*(ping_client(port, rounds) for _ in range(10))))


async def _call_soon_workload(n: int) -> None:
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    left = [n]

    def step() -> None:
        left[0] -= 1
        if left[0]:
            loop.call_soon(step)
        else:
            done.set_result(None)

    loop.call_soon(step)
    await done


def _time_on(factory: Callable[[], asyncio.AbstractEventLoop], workload: Any) -> float:
    with asyncio.Runner(loop_factory=factory) as runner:
        t0 = time.perf_counter()
        runner.run(workload)
        return time.perf_counter() - t0


def side_by_side(repeats: int = 5) -> list[tuple[str, float, float]]:
    """Median seconds on asyncio and tidal per workload, runs interleaved."""
    workloads: list[tuple[str, Callable[[], Any]]] = [
        ("echo, 10 clients x 300 round trips", lambda: _echo_workload(300)),
        ("call_soon chain of 100,000", lambda: _call_soon_workload(100_000)),
    ]
    rows = []
    for label, make in workloads:
        a: list[float] = []
        t: list[float] = []
        for _ in range(repeats):
            # Interleaved, so drift in machine load hits both loops alike.
            a.append(_time_on(asyncio.new_event_loop, make()))
            t.append(_time_on(tidal.new_event_loop, make()))
        rows.append((label, statistics.median(a), statistics.median(t)))
    return rows


def simulated_cluster(seeds: int = 100) -> None:
    """The election of tidal.sim.examples with its planted bug, searched over
    seeds with swarm faults: found, replayed, shrunk (docs/simulation.md)."""
    import functools
    import tempfile

    from tidal import sim
    from tidal.sim import examples

    print("\nA simulated cluster finding a planted bug (tidal.sim: virtual time, faults drawn")
    print("from each seed):\n")
    print("  3 nodes elect leaders over UDP; the planted bug: a candidate that hears no one")
    print("  elects itself")
    buggy = functools.partial(examples.election, quorum=False)
    with tempfile.TemporaryDirectory() as directory:
        t0 = time.perf_counter()
        found = sim.search(buggy, seeds, trace_dir=directory)
        ms = (time.perf_counter() - t0) * 1e3
    failure = found.failure
    assert failure is not None and failure.plan is not None and failure.shrunk is not None
    print(f"  seeds run: {found.seeds_run}; seed {failure.seed} fails: {failure.error}")
    again = sim.run_seed(buggy, failure.seed)
    same = again.trace_hash == sim.run_seed(buggy, failure.seed).trace_hash
    print(f"  replayed from its seed: {type(again.error).__name__}, the same run: {same}")
    print(
        f"  shrunk in {failure.shrink_runs} runs from {len(failure.plan)} faults "
        f"to the {len(failure.shrunk)} it needs:"
    )
    for line in str(failure.shrunk).splitlines()[1:-1]:
        print(f"  {line}")
    print(f"  (search, replay and shrinking took {ms:.0f} ms; @pytest.mark.tidal_sim and")
    print("  python -m tidal sim do the same for your code: docs/simulation.md)")


def main() -> int:
    build = "compiled" if tidal.COMPILED else "interpreted"
    print(f"tidal {tidal.__version__} ({build}) on Python {sys.version.split()[0]}\n")
    print("One echo service, three ways to suspend, all on tidal's loop:\n")
    styles: list[tuple[str, str, Any]] = [
        ("callbacks", "Protocol objects and call_soon, no suspension at all", callbacks_style),
        (
            "plain generators",
            "def handler(): line = yield reader.readline()",
            lambda n: tidal.generator_task(generators_style(n)),
        ),
        ("async/await", "async def handler(): line = await reader.readline()", async_style),
    ]
    for name, how, fn in styles:
        t0 = time.perf_counter()
        count = tidal.run(fn(ROUNDS))
        ms = (time.perf_counter() - t0) * 1e3
        print(f"  {name:<17} {count} echoes in {ms:6.1f} ms   ({how})")
        assert count == ROUNDS

    path = os.path.join(tempfile.gettempdir(), "tidal-tour-trace.json")
    summary = traced_echo(path)
    if summary is not None:
        print("\nWhat the loop ran, traced (3 clients x 50 round trips; tidal.trace):\n")
        print("\n".join("  " + line if line else "" for line in summary.splitlines()))
        print(f"\n  The whole timeline: {path} (drag it into https://ui.perfetto.dev)")

    print("\nThe same work on asyncio's loop and on tidal's (median of 5, interleaved):\n")
    print(f"  {'workload':<36} {'asyncio':>10} {'tidal':>10} {'tidal speed':>12}")
    for label, a, t in side_by_side():
        print(f"  {label:<36} {a * 1e3:8.1f}ms {t * 1e3:8.1f}ms {a / t:11.2f}x")
    print("\n(speed > 1.00x means tidal is faster; `make bench` is the full benchmark)")
    simulated_cluster()
    return 0
