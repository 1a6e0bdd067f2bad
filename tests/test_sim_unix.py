"""Unix stream sockets inside a simulation (tidal.sim._unix).

The same program runs on asyncio's loop and tidal's over real Unix sockets
in a temporary directory, and as a simulated host's main: what it observes
(errors, addresses, bytes, half-close, flow control, a stale socket file)
must be the same.  The rest is what only a simulation has: paths that
belong to one host, a crash and restart, the trace hash.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

from helpers import run

from tidal import sim

SIM_DIR = "/run/app"  # a simulated host's paths need no real directory


async def unix_program(directory: str) -> list[Any]:
    """Everything a Unix stream socket user sees, as plain data."""
    seen: list[Any] = []
    path = os.path.join(directory, "app.sock")

    async def try_connect(label: str) -> None:
        try:
            _, writer = await asyncio.open_unix_connection(path)
        except OSError as exc:
            seen.append((label, type(exc).__name__, exc.errno))
        else:
            writer.close()
            seen.append((label, "connected"))

    await try_connect("nobody bound")

    bound = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bound.bind(path)
    await try_connect("bound, not listening")
    bound.close()
    await try_connect("closed, file left")

    peers: list[Any] = []

    async def upper(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append((writer.get_extra_info("sockname"), writer.get_extra_info("peername")))
        data = await reader.read()  # to the client's half-close
        writer.write(data.upper())
        writer.write_eof()
        await writer.drain()
        writer.close()

    # The stale file of `bound` is replaced, as create_unix_server does.
    server = await asyncio.start_unix_server(upper, path)
    reader, writer = await asyncio.open_unix_connection(path)
    seen.append(("client", writer.get_extra_info("sockname"), writer.get_extra_info("peername")))
    writer.write(b"hello ")
    writer.writelines([b"unix ", b"world"])
    writer.write_eof()
    seen.append(("reply", await reader.read()))
    seen.append(("server saw", peers))
    writer.close()
    await writer.wait_closed()

    # Flow control: a peer that does not read pauses the writer.
    gate = asyncio.Event()
    received: list[int] = []

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await gate.wait()
        received.append(len(await reader.read()))
        writer.close()

    server.close()
    await server.wait_closed()
    server = await asyncio.start_unix_server(slow, path)
    reader, writer = await asyncio.open_unix_connection(path)
    total = 8 * 1024 * 1024
    chunk = b"x" * 65536
    paused = False
    for _ in range(total // len(chunk)):
        writer.write(chunk)
        drain = asyncio.ensure_future(writer.drain())
        await asyncio.sleep(0.001)
        if not drain.done():
            paused = True
            gate.set()
        await drain
    writer.write_eof()
    await reader.read()
    writer.close()
    await writer.wait_closed()
    seen.append(("flow control", paused, received))

    # The peer closes first: the reader meets EOF, and writing fails.
    server.close()
    await server.wait_closed()
    server = await asyncio.start_unix_server(lambda r, w: w.close(), path)
    reader, writer = await asyncio.open_unix_connection(path)
    seen.append(("peer closed", await reader.read()))
    try:
        for _ in range(3):
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.01)
    except ConnectionError as exc:
        seen.append(("write after peer close", type(exc).__name__))
    writer.close()
    server.close()
    await server.wait_closed()
    return seen


def _moved(value: Any, old: str, new: str) -> Any:
    """`value` with directory `old` in its strings replaced by `new`."""
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, (list, tuple)):
        return type(value)(_moved(v, old, new) for v in value)
    return value


def test_same_answers_as_real_unix_sockets(loop: asyncio.AbstractEventLoop, sockdir: str) -> None:
    real = run(loop, unix_program(sockdir))
    simulated = sim.Simulation(seed=1)
    simulated.host("h", unix_program, SIM_DIR)
    res = simulated.run(until=600)
    expected = _moved(real, sockdir, SIM_DIR)
    assert res.results["h"] == expected
    assert real[:3] == [
        ("nobody bound", "FileNotFoundError", 2),
        ("bound, not listening", "ConnectionRefusedError", 111),
        ("closed, file left", "ConnectionRefusedError", 111),
    ]
    assert real[6][1] is True and real[6][2] == [8 * 1024 * 1024]


async def backlog_program(directory: str) -> list[Any]:
    """Connections a listener never accepts: Linux queues backlog + 1, a
    connect beyond that "succeeds" unconnected (EAGAIN, then writable), and
    closing the listener resets the queued ones."""
    path = os.path.join(directory, "queue.sock")
    seen: list[Any] = []
    for backlog in (0, 2):
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(backlog)
        listener.setblocking(False)
        streams = [await asyncio.open_unix_connection(path) for _ in range(backlog + 2)]
        listener.close()
        for reader, writer in streams:
            try:
                seen.append((backlog, await reader.read()))
            except OSError as exc:
                seen.append((backlog, type(exc).__name__, exc.errno))
            writer.close()
        seen.append(os.path.exists(path))
        os.unlink(path)  # a simulated host's own socket file: simulated too
        seen.append(os.path.exists(path))
    return seen


def test_unaccepted_connections_as_on_linux(loop: asyncio.AbstractEventLoop, sockdir: str) -> None:
    real = run(loop, backlog_program(sockdir))
    s = sim.Simulation(seed=1)
    s.host("h", backlog_program, SIM_DIR)
    assert s.run().results["h"] == real
    reset, unconnected = ("ConnectionResetError", 104), ("OSError", 22)
    assert real == [
        (0, *reset), (0, *unconnected), True, False,
        (2, *reset), (2, *reset), (2, *reset), (2, *unconnected), True, False,
    ]  # fmt: skip


async def pair_program() -> list[Any]:
    """A socketpair's two ends as asyncio streams."""
    a, b = socket.socketpair()
    seen: list[Any] = [a.family == socket.AF_UNIX, a.getsockname(), a.getpeername()]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unused:
        seen.append(unused.fileno() >= 0)
    seen.append(unused.fileno())
    # A thread's own event loop (here, of asyncio.to_thread) has a real self-pipe.
    seen.append(await asyncio.to_thread(asyncio.run, asyncio.sleep(0, "own loop")))
    reader_a, writer_a = await asyncio.open_connection(sock=a)
    reader_b, writer_b = await asyncio.open_connection(sock=b)
    writer_a.write(b"ping\n")
    writer_a.write_eof()
    seen.append(await reader_b.readline())
    writer_b.write(b"pong")
    writer_b.close()
    seen.append(await reader_a.read())
    seen.append(await reader_b.read())
    writer_a.close()
    await writer_a.wait_closed()
    await writer_b.wait_closed()
    return seen


def test_a_socketpair_made_by_a_host(loop: asyncio.AbstractEventLoop) -> None:
    real = run(loop, pair_program())
    s = sim.Simulation(seed=1)
    s.host("h", pair_program)
    res = s.run()
    assert res.results["h"] == real == [True, "", "", True, -1, "own loop", b"ping\n", b"pong", b""]
    assert any("unix socketpair" in line for line in sim.check_determinism(_pair, 1).trace)


def _pair(seed: int) -> sim.Simulation:
    s = sim.Simulation(seed)
    s.host("h", pair_program)
    return s


async def serve_and_call(name: str) -> list[Any]:
    """Serve on /run/s.sock, connect to it; try the other host's path too."""
    out: list[Any] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(name.encode() + await reader.readline())
        await writer.drain()
        writer.close()

    server = await asyncio.start_unix_server(handle, f"/run/{name}.sock")
    # socket.socket() made by a host's code is simulated too.
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.connect(f"/run/{name}.sock")
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    writer.write(b" here\n")
    out.append(await reader.readline())
    writer.close()
    other = "b" if name == "a" else "a"
    try:
        await asyncio.open_unix_connection(f"/run/{other}.sock")
    except FileNotFoundError:
        out.append(f"no /run/{other}.sock on {name}")
    async with server:
        await asyncio.sleep(1)  # until the crash, for a
    return out


def test_paths_belong_to_a_host_and_survive_its_crash() -> None:
    def scenario(seed: int) -> sim.Simulation:
        s = sim.Simulation(seed=seed)
        s.host("a", serve_and_call, "a")
        s.host("b", serve_and_call, "b")
        s.at(0.5, s.crash, "a")  # a's connections reset; its socket file stays
        s.at(0.6, s.restart, "a")  # ... and its server removes the stale one
        return s

    res = sim.check_determinism(scenario, 3)
    assert res.results == {
        "a": [b"a here\n", "no /run/b.sock on a"],
        "b": [b"b here\n", "no /run/a.sock on b"],
    }
    assert res.time == 1.6
    assert sum("unix connect" in line for line in res.trace) == 3  # a, b, a again
    assert not os.path.exists("/run/a.sock")


def test_crash_resets_unix_connections() -> None:
    states: list[Any] = []

    async def host() -> None:
        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()

        await asyncio.start_unix_server(hold, "/run/h.sock")
        reader, writer = await asyncio.open_unix_connection("/run/h.sock")
        states.append(writer.transport.get_extra_info("socket"))
        await asyncio.sleep(10)

    s = sim.Simulation(seed=0)
    s.host("h", host)
    s.at(1, s.crash, "h")
    s.run(until=2)
    [transport_sock] = states
    assert transport_sock.fileno() == -1  # the transport met the reset and closed


def test_a_simulated_host_never_touches_a_real_socket_file(sockdir: str) -> None:
    path = os.path.join(sockdir, "real.sock")
    real = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    real.bind(path)
    real.close()  # a stale socket file, as a real server leaves one

    async def host() -> list[str]:
        out = []
        try:  # the stale-file check comes before the socket: it must not be the real one
            await asyncio.get_running_loop().create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=path, family=socket.AF_UNIX
            )
        except RuntimeError:
            out.append("no unix datagrams")
        server = await asyncio.start_unix_server(lambda r, w: w.close(), path)
        reader, writer = await asyncio.open_unix_connection(path)
        out.append(repr(await reader.read()))
        writer.close()
        server.close()
        await server.wait_closed()
        return out

    s = sim.Simulation(seed=0)
    s.host("h", host)
    assert s.run().results["h"] == ["no unix datagrams", "b''"]
    assert os.path.exists(path)
