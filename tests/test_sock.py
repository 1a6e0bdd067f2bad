"""loop.sock_* coroutines, on asyncio's loop and on tidal's.

Real sockets only: TCP and UDP on 127.0.0.1 (and ::1 when the machine has
it), Unix stream and datagram sockets in a short temporary directory.
Whether a reader/writer is still registered is asked through the public
``loop.remove_reader/remove_writer`` (True only if one was there), so the
same assertion holds on both loops.
"""

from __future__ import annotations

import array
import asyncio
import errno
import hashlib
import os
import socket
import ssl
from typing import Any

import pytest

from helpers import INET_HOSTS


def nb(s: socket.socket, socks: list[socket.socket]) -> socket.socket:
    s.setblocking(False)
    socks.append(s)
    return s


def pair(socks: list[socket.socket]) -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    return nb(a, socks), nb(b, socks)


def listener(
    socks: list[socket.socket], family: int = socket.AF_INET, host: str = "127.0.0.1"
) -> socket.socket:
    srv = nb(socket.socket(family, socket.SOCK_STREAM), socks)
    srv.bind((host, 0))
    srv.listen(128)
    return srv


async def settle() -> None:
    """Let pending tasks reach their first wait (register their reader/writer)."""
    for _ in range(3):
        await asyncio.sleep(0)


# ----------------------------------------------------------------------
# Echo through sock_* on every kind of socket
# ----------------------------------------------------------------------


@pytest.mark.parametrize("fam_host", INET_HOSTS)
def test_tcp_echo(loop: Any, arun: Any, socks: list[socket.socket], fam_host: Any) -> None:
    family, host = fam_host
    srv = listener(socks, family, host)

    async def main() -> None:
        cli = nb(socket.socket(family, socket.SOCK_STREAM), socks)
        accept = asyncio.ensure_future(loop.sock_accept(srv))
        await loop.sock_connect(cli, srv.getsockname())
        conn, addr = await accept
        socks.append(conn)
        assert conn.gettimeout() == 0  # accepted sockets come back non-blocking
        assert addr[:2] == cli.getsockname()[:2]
        await loop.sock_sendall(cli, b"ping")
        assert await loop.sock_recv(conn, 100) == b"ping"
        await loop.sock_sendall(conn, bytearray(b"pong"))
        buf = bytearray(10)
        n = await loop.sock_recv_into(cli, buf)
        assert buf[:n] == b"pong"
        cli.shutdown(socket.SHUT_WR)
        assert await loop.sock_recv(conn, 100) == b""  # EOF

    arun(main())


class CountingSocket(socket.socket):
    """A socket.socket subclass that counts calls to its recv/recv_into/send."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[str] = []

    def recv(self, *args: Any) -> bytes:
        self.calls.append("recv")
        return super().recv(*args)

    def recv_into(self, *args: Any) -> int:
        self.calls.append("recv_into")
        return super().recv_into(*args)

    def send(self, *args: Any) -> int:
        self.calls.append("send")
        return super().send(*args)


def test_socket_subclass_methods_are_called(
    loop: Any, arun: Any, socks: list[socket.socket]
) -> None:
    # asyncio's sock_* call the socket's own methods, so a subclass's
    # overrides run; tidal (which uses the fd directly for a plain
    # socket.socket) must call them too.
    a, b = socket.socketpair()
    ours = nb(CountingSocket(a.family, a.type, a.proto, fileno=a.detach()), socks)
    peer = nb(b, socks)

    async def main() -> None:
        await loop.sock_sendall(ours, b"ping")
        assert await loop.sock_recv(peer, 10) == b"ping"
        await loop.sock_sendall(peer, b"pong")
        assert await loop.sock_recv(ours, 10) == b"pong"
        await loop.sock_sendall(peer, b"pang")
        buf = bytearray(10)
        n = await loop.sock_recv_into(ours, buf)
        assert buf[:n] == b"pang"

    arun(main())
    assert ours.calls == ["send", "recv", "recv_into"]


def test_unix_stream_echo(loop: Any, arun: Any, socks: list[socket.socket], sockdir: str) -> None:
    path = os.path.join(sockdir, "s")
    srv = nb(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM), socks)
    srv.bind(path)
    srv.listen(5)

    async def main() -> None:
        cli = nb(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM), socks)
        accept = asyncio.ensure_future(loop.sock_accept(srv))
        await loop.sock_connect(cli, path)
        conn, _addr = await accept
        socks.append(conn)
        await loop.sock_sendall(conn, memoryview(b"hello unix"))
        assert await loop.sock_recv(cli, 100) == b"hello unix"

    arun(main())


def test_connect_resolves_hostname(loop: Any, arun: Any, socks: list[socket.socket]) -> None:
    srv = listener(socks)

    async def main() -> None:
        cli = nb(socket.socket(socket.AF_INET, socket.SOCK_STREAM), socks)
        # "localhost" goes through getaddrinfo (in the executor) first.
        await loop.sock_connect(cli, ("localhost", srv.getsockname()[1]))
        assert cli.getpeername() == srv.getsockname()

    arun(main())


@pytest.mark.parametrize("fam_host", INET_HOSTS)
def test_udp_sendto_recvfrom(
    loop: Any, arun: Any, socks: list[socket.socket], fam_host: Any
) -> None:
    family, host = fam_host
    a = nb(socket.socket(family, socket.SOCK_DGRAM), socks)
    b = nb(socket.socket(family, socket.SOCK_DGRAM), socks)
    a.bind((host, 0))
    b.bind((host, 0))

    async def main() -> None:
        recv = asyncio.ensure_future(loop.sock_recvfrom(b, 100))
        await settle()
        assert await loop.sock_sendto(a, b"dgram", b.getsockname()) == 5
        data, addr = await recv
        assert data == b"dgram"
        assert addr[:2] == a.getsockname()[:2]
        # recvfrom_into, waiting and not waiting, and with nbytes < len(buf).
        buf = bytearray(16)
        recv_into = asyncio.ensure_future(loop.sock_recvfrom_into(a, buf))
        await settle()
        await loop.sock_sendto(b, b"back", a.getsockname())
        n, addr = await recv_into
        assert (bytes(buf[:n]), addr[:2]) == (b"back", b.getsockname()[:2])
        await loop.sock_sendto(b, b"0123456789", a.getsockname())
        await settle()
        n, _ = await loop.sock_recvfrom_into(a, buf, 4)
        assert (n, bytes(buf[:4])) == (4, b"0123")  # the rest of the datagram is dropped

    arun(main())


def test_recv_into_waits(loop: Any, arun: Any, socks: list[socket.socket]) -> None:
    a, b = pair(socks)

    async def main() -> None:
        buf = bytearray(8)
        view = memoryview(buf)[2:]
        task = asyncio.ensure_future(loop.sock_recv_into(a, view))
        await settle()
        assert not task.done()
        b.send(b"abcdefghij")
        assert await task == 6
        assert buf == b"\0\0abcdef"
        assert not loop.remove_reader(a.fileno())

    arun(main())


def test_recv_into_buffers_the_socket_module_refuses(
    loop: Any, arun: Any, socks: list[socket.socket]
) -> None:
    """What socket.recv_into refuses, sock_recv_into refuses the same way."""
    a, b = pair(socks)
    b.send(b"abcdef")
    released = memoryview(bytearray(4))
    released.release()
    refused = [
        b"xxxx",  # read-only
        memoryview(b"xxxx"),  # a read-only view
        memoryview(bytearray(8))[::2],  # not contiguous
        released,
    ]

    async def main() -> None:
        for buf in refused:
            with pytest.raises(TypeError, match="read-write bytes-like object"):
                await loop.sock_recv_into(a, buf)
        # ... and the data is still there for a buffer it takes.
        bufs = (bytearray(2), memoryview(bytearray(8))[6:], array.array("b", [0, 0]))
        for buf, expected in zip(bufs, (b"ab", b"cd", b"ef")):
            assert await loop.sock_recv_into(a, buf) == 2
            assert bytes(buf) == expected

    arun(main())


def test_sendall_buffers_the_socket_module_refuses(
    loop: Any, arun: Any, socks: list[socket.socket]
) -> None:
    a, b = pair(socks)

    async def main() -> None:
        with pytest.raises(TypeError, match="bytes-like object is required"):
            await loop.sock_sendall(a, "text")
        with pytest.raises(BufferError, match="not C-contiguous"):
            await loop.sock_sendall(a, memoryview(bytearray(b"abcdef"))[::2])
        await loop.sock_sendall(a, memoryview(b"abcdef")[2:4])
        await loop.sock_sendall(a, bytearray(b"gh"))
        await asyncio.sleep(0.01)
        assert b.recv(100) == b"cdgh"

    arun(main())


# ----------------------------------------------------------------------
# The fast path: data already there means no wait at all
# ----------------------------------------------------------------------


def test_ready_data_completes_without_suspending(
    loop: Any, arun: Any, socks: list[socket.socket]
) -> None:
    a, b = pair(socks)
    b.send(b"ready")

    async def main() -> None:
        # Driving the coroutine by hand: it finishes on its first step, so it
        # never waited on a future.
        coro = loop.sock_recv(a, 100)
        with pytest.raises(StopIteration) as info:
            coro.send(None)
        assert info.value.value == b"ready"
        coro = loop.sock_sendall(a, b"x" * 100)
        with pytest.raises(StopIteration):
            coro.send(None)
        assert not loop.remove_writer(a.fileno())

    arun(main())


# ----------------------------------------------------------------------
# sendall: big payloads, partial sends, slow readers, errors
# ----------------------------------------------------------------------


def test_big_sendall_slow_reader(loop: Any, arun: Any, socks: list[socket.socket]) -> None:
    size = 20 * 1024 * 1024
    payload = os.urandom(1024 * 1024) * 20
    a, b = pair(socks)
    # Small kernel buffers: sendall must go through many partial sends.
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)

    async def reader() -> tuple[int, str]:
        digest = hashlib.sha256()
        total = 0
        buf = bytearray(32 * 1024)
        chunks = 0
        while total < size:
            n = await loop.sock_recv_into(b, buf)
            assert n
            digest.update(memoryview(buf)[:n])
            total += n
            chunks += 1
            if chunks % 64 == 0:
                await asyncio.sleep(0.001)  # the slow part
        return total, digest.hexdigest()

    async def main() -> None:
        read = asyncio.ensure_future(reader())
        await loop.sock_sendall(a, payload)
        assert not loop.remove_writer(a.fileno())  # the writer went with the future
        total, digest = await read
        assert total == size
        assert digest == hashlib.sha256(payload).hexdigest()

    arun(main(), timeout=60)


def test_sendall_non_byte_buffer(
    loop: Any, loop_name: str, arun: Any, socks: list[socket.socket]
) -> None:
    """A buffer whose items are not bytes is sent in full, measured in bytes."""
    if loop_name == "asyncio":
        # asyncio counts len() items against bytes sent and waits forever.
        pytest.skip("asyncio bug: sock_sendall of an array('i') never completes")
    data = array.array("i", range(1_000_000))  # 4 MB, far more than one send
    a, b = pair(socks)

    async def reader() -> bytes:
        got = bytearray()
        while len(got) < len(data) * data.itemsize:
            got += await loop.sock_recv(b, 65536)
        return bytes(got)

    async def main() -> None:
        read = asyncio.ensure_future(reader())
        await loop.sock_sendall(a, data)
        assert await read == data.tobytes()

    arun(main())


def test_sendall_empty(loop: Any, arun: Any, socks: list[socket.socket]) -> None:
    a, _b = pair(socks)
    assert arun(loop.sock_sendall(a, b"")) is None


def test_sendall_peer_gone(loop: Any, arun: Any, socks: list[socket.socket]) -> None:
    a, b = pair(socks)

    async def main() -> None:
        send = asyncio.ensure_future(loop.sock_sendall(a, b"x" * (8 * 1024 * 1024)))
        await settle()
        assert not send.done()  # blocked on a full buffer
        b.close()  # unread data: the kernel resets the connection
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            await send
        assert not loop.remove_writer(a.fileno())

    arun(main())


def test_sock_sendto_waits_for_room(
    loop: Any, arun: Any, socks: list[socket.socket], sockdir: str
) -> None:
    path = os.path.join(sockdir, "d")
    rx = nb(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM), socks)
    rx.bind(path)
    tx = nb(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM), socks)
    tx.connect(path)  # connected: "writable" then means the peer has room
    sent = 0
    try:
        while True:
            tx.send(b"fill")
            sent += 1
    except BlockingIOError:
        pass

    async def main() -> None:
        task = asyncio.ensure_future(loop.sock_sendto(tx, b"last", path))
        await settle()
        assert not task.done()
        got = []
        for _ in range(sent + 1):
            got.append(await loop.sock_recv(rx, 100))
        assert await task == 4
        assert got == [b"fill"] * sent + [b"last"]
        assert not loop.remove_writer(tx.fileno())

    arun(main())


# ----------------------------------------------------------------------
# accept / connect
# ----------------------------------------------------------------------


def test_accept_many(loop: Any, arun: Any, socks: list[socket.socket]) -> None:
    srv = listener(socks)
    count = 60

    async def client(i: int) -> bytes:
        cli = nb(socket.socket(socket.AF_INET, socket.SOCK_STREAM), socks)
        await loop.sock_connect(cli, srv.getsockname())
        await loop.sock_sendall(cli, b"%03d" % i)
        return await loop.sock_recv(cli, 10)

    async def server() -> None:
        for _ in range(count):
            conn, _ = await loop.sock_accept(srv)
            socks.append(conn)
            assert conn.gettimeout() == 0
            data = await loop.sock_recv(conn, 3)
            await loop.sock_sendall(conn, b"ok" + data)

    async def main() -> None:
        serving = asyncio.ensure_future(server())
        replies = await asyncio.gather(*(client(i) for i in range(count)))
        await serving
        assert replies == [b"ok%03d" % i for i in range(count)]
        assert not loop.remove_reader(srv.fileno())

    arun(main())


@pytest.mark.parametrize("fam_host", INET_HOSTS)
def test_connect_refused(loop: Any, arun: Any, socks: list[socket.socket], fam_host: Any) -> None:
    family, host = fam_host
    # Bound but not listening: connecting to it is refused.
    closed = nb(socket.socket(family, socket.SOCK_STREAM), socks)
    closed.bind((host, 0))
    addr = closed.getsockname()

    async def main() -> None:
        cli = nb(socket.socket(family, socket.SOCK_STREAM), socks)
        with pytest.raises(ConnectionRefusedError) as info:
            await loop.sock_connect(cli, addr)
        assert info.value.errno == errno.ECONNREFUSED
        # The refusal came back through SO_ERROR (the connect was in
        # progress): asyncio's message names the address.
        assert str(info.value) == f"[Errno {errno.ECONNREFUSED}] Connect call failed {addr}"
        assert not loop.remove_writer(cli.fileno())

    arun(main())


def test_connect_unix_missing_path(
    loop: Any, arun: Any, socks: list[socket.socket], sockdir: str
) -> None:
    cli = nb(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM), socks)
    with pytest.raises(FileNotFoundError):
        arun(loop.sock_connect(cli, os.path.join(sockdir, "nobody")))


# ----------------------------------------------------------------------
# Cancellation and concurrent operations
# ----------------------------------------------------------------------


def test_cancel_recv_leaves_no_reader(loop: Any, arun: Any, socks: list[socket.socket]) -> None:
    a, b = pair(socks)

    async def main() -> None:
        task = asyncio.ensure_future(loop.sock_recv(a, 100))
        await settle()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await settle()
        assert not loop.remove_reader(a.fileno())
        b.send(b"later")
        assert await loop.sock_recv(a, 100) == b"later"

    arun(main())


def test_cancel_recv_as_data_arrives_loses_nothing(
    loop: Any, arun: Any, socks: list[socket.socket]
) -> None:
    a, b = pair(socks)

    async def main() -> None:
        task = asyncio.ensure_future(loop.sock_recv(a, 100))
        await settle()
        b.send(b"keep me")  # readable now, in the same turn as the cancel
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await loop.sock_recv(a, 100) == b"keep me"

    arun(main())


def test_cancel_accept_leaves_no_reader(loop: Any, arun: Any, socks: list[socket.socket]) -> None:
    srv = listener(socks)

    async def main() -> None:
        task = asyncio.ensure_future(loop.sock_accept(srv))
        await settle()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await settle()
        assert not loop.remove_reader(srv.fileno())
        cli = nb(socket.socket(), socks)
        accept = asyncio.ensure_future(loop.sock_accept(srv))
        await loop.sock_connect(cli, srv.getsockname())
        conn, _ = await accept
        socks.append(conn)

    arun(main())


def test_cancel_sendall_leaves_no_writer(loop: Any, arun: Any, socks: list[socket.socket]) -> None:
    a, _b = pair(socks)

    async def main() -> None:
        task = asyncio.ensure_future(loop.sock_sendall(a, b"x" * (8 * 1024 * 1024)))
        await settle()
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await settle()
        assert not loop.remove_writer(a.fileno())

    arun(main())


def test_cancel_connect_leaves_no_writer(loop: Any, arun: Any, socks: list[socket.socket]) -> None:
    # A listener with a full backlog never completes the handshake: the
    # connect stays in progress until cancelled.
    srv = nb(socket.socket(), socks)
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    fillers = []
    for _ in range(4):
        f = nb(socket.socket(), socks)
        try:
            f.connect(srv.getsockname())
        except BlockingIOError:
            pass
        fillers.append(f)

    async def main() -> None:
        cli = nb(socket.socket(), socks)
        task = asyncio.ensure_future(loop.sock_connect(cli, srv.getsockname()))
        await asyncio.sleep(0.05)
        if task.done():  # the kernel let it through after all: nothing to test
            return
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await settle()
        assert not loop.remove_writer(cli.fileno())

    arun(main())


def test_connect_again_while_the_cancelled_one_unwinds(
    loop: Any, arun: Any, socks: list[socket.socket]
) -> None:
    """CPython's test_sock_client_connect_racing: cancel a pending sock_connect and at
    once connect the same socket again; the first one's cleanup must leave the
    second one's writer registered."""
    srv = nb(socket.socket(), socks)
    srv.bind(("127.0.0.1", 0))
    cli = nb(socket.socket(), socks)

    async def main() -> None:
        first = asyncio.ensure_future(loop.sock_connect(cli, srv.getsockname()))
        await asyncio.sleep(0)
        first.cancel()
        srv.listen(1)
        for _ in range(128):
            try:
                await loop.sock_connect(cli, srv.getsockname())
            except ConnectionRefusedError:
                continue  # the first attempt's refusal, reported to this one
            return
        pytest.skip("the kernel refused every attempt")

    arun(main(), 5)


def test_second_recv_replaces_first(loop: Any, arun: Any, socks: list[socket.socket]) -> None:
    """asyncio's rule: one reader per fd; a second sock_recv takes it over."""
    a, b = pair(socks)

    async def main() -> None:
        first = asyncio.ensure_future(loop.sock_recv(a, 100))
        await settle()
        second = asyncio.ensure_future(loop.sock_recv(a, 100))
        await settle()
        b.send(b"one")
        assert await second == b"one"
        await settle()
        assert not first.done()  # its reader was replaced: it waits forever
        # Cancelling the orphan must not remove a reader someone else holds.
        third = asyncio.ensure_future(loop.sock_recv(a, 100))
        await settle()
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        await settle()
        b.send(b"two")
        assert await third == b"two"
        assert not loop.remove_reader(a.fileno())

    arun(main())


# ----------------------------------------------------------------------
# Preconditions and errors
# ----------------------------------------------------------------------


def every_sock_call(loop: Any, stream: Any, dgram: Any, listener: Any) -> list[Any]:
    """One coroutine of each sock_* method (none awaited yet)."""
    return [
        loop.sock_recv(stream, 1),
        loop.sock_recv_into(stream, bytearray(1)),
        loop.sock_recvfrom(dgram, 1),
        loop.sock_recvfrom_into(dgram, bytearray(1)),
        loop.sock_sendall(stream, b"x"),
        loop.sock_sendto(dgram, b"x", ("127.0.0.1", 9)),
        loop.sock_connect(listener, ("127.0.0.1", 9)),
        loop.sock_accept(listener),
    ]


def test_blocking_socket_rejected_in_debug(
    loop: Any, arun: Any, socks: list[socket.socket]
) -> None:
    loop.set_debug(True)
    a, b = socket.socketpair()  # blocking
    socks += [a, b]
    srv = socket.socket()
    socks.append(srv)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    socks.append(udp)

    async def main() -> None:
        for coro in every_sock_call(loop, a, udp, srv):
            with pytest.raises(ValueError, match="^the socket must be non-blocking$"):
                await coro

    arun(main())


@pytest.mark.usefixtures("blocking_on_purpose")
def test_blocking_socket_not_checked_without_debug(
    loop: Any, arun: Any, socks: list[socket.socket]
) -> None:
    """asyncio only checks in debug mode; with data ready a blocking socket just works."""
    loop.set_debug(False)
    a, b = socket.socketpair()
    socks += [a, b]
    b.send(b"there")
    assert arun(loop.sock_recv(a, 100)) == b"there"


def test_ssl_socket_rejected(loop: Any, arun: Any, socks: list[socket.socket]) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    raw = nb(socket.socket(), socks)
    tls = ctx.wrap_socket(raw, server_hostname="x", do_handshake_on_connect=False)
    socks.append(tls)
    with pytest.raises(TypeError, match="^Socket cannot be of type SSLSocket$"):
        arun(loop.sock_recv(tls, 1))
    with pytest.raises(TypeError, match="^Socket cannot be of type SSLSocket$"):
        arun(loop.sock_connect(tls, ("127.0.0.1", 9)))


@pytest.mark.parametrize("debug", [False, True])
def test_ssl_socket_rejected_by_every_sock_call(
    loop: Any, arun: Any, socks: list[socket.socket], debug: bool
) -> None:
    """Each sock_* call refuses an ssl.SSLSocket before anything else: in
    debug mode a blocking one is a TypeError too, not the ValueError for a
    blocking socket (asyncio tests for SSL first)."""
    loop.set_debug(debug)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    tls = ctx.wrap_socket(socket.socket(), server_hostname="x", do_handshake_on_connect=False)
    socks.append(tls)
    assert tls.gettimeout() != 0  # blocking: debug mode would refuse it for that too

    async def main() -> None:
        for coro in every_sock_call(loop, tls, tls, tls):
            with pytest.raises(TypeError, match="^Socket cannot be of type SSLSocket$"):
                await coro

    arun(main())


def test_fd_owned_by_transport(loop: Any, arun: Any, socks: list[socket.socket]) -> None:
    udp = nb(socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socks)
    udp.bind(("127.0.0.1", 0))

    async def main() -> None:
        tr, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, sock=udp)
        try:
            with pytest.raises(RuntimeError, match="^File descriptor .* is used by transport"):
                await loop.sock_recvfrom(udp, 100)
        finally:
            tr.close()
        await settle()

    arun(main())


def test_recv_error_propagates(loop: Any, arun: Any, socks: list[socket.socket]) -> None:
    a = nb(socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socks)
    a.bind(("127.0.0.1", 0))
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()

    async def main() -> None:
        a.connect(("127.0.0.1", port))
        recv = asyncio.ensure_future(loop.sock_recv(a, 100))
        await settle()
        a.send(b"anyone?")  # ICMP port unreachable comes back as ECONNREFUSED
        with pytest.raises(ConnectionRefusedError):
            await recv
        assert not loop.remove_reader(a.fileno())

    arun(main())


def test_closed_loop(loop: Any, socks: list[socket.socket]) -> None:
    a, _b = pair(socks)
    loop.close()
    coro = loop.sock_recv(a, 1)
    with pytest.raises(RuntimeError, match="^Event loop is closed$"):
        coro.send(None)


# ----------------------------------------------------------------------
# After a read: the fd's registration is gone for whoever comes next
# (tidal keeps a finished read's fd registered with epoll but silenced, for
# the next read on the same socket to re-enable: none of that may show)
# ----------------------------------------------------------------------


class _Collect(asyncio.Protocol):
    def __init__(self) -> None:
        self.got = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        if not self.got.done():
            self.got.set_result(data)


async def _read_once(loop: Any, a: socket.socket, b: socket.socket) -> None:
    """A sock_recv that waits (the data comes later), then returns to us."""
    loop.call_later(0.01, b.send, b"one")
    assert await loop.sock_recv(a, 100) == b"one"


def _reuse_fd(fd: int, socks: list[socket.socket]) -> tuple[socket.socket, socket.socket]:
    """A new socket pair, one end of which has the number `fd` (just closed): (that end, peer)."""
    c, d = pair(socks)
    if c.fileno() == fd:
        return c, d
    if d.fileno() == fd:
        return d, c
    pytest.fail(f"fd {fd} was not reused ({c.fileno()}, {d.fileno()})")


@pytest.mark.parametrize("next_user", ["sock_recv", "add_reader", "transport", "add_writer"])
def test_fd_closed_and_reused_in_the_turn_a_read_ends(
    loop: Any, arun: Any, socks: list[socket.socket], next_user: str
) -> None:
    """The socket is closed the moment its read returns and its fd number goes
    at once to a new socket: the new socket is watched, not the old file."""
    a, b = pair(socks)

    async def main() -> None:
        await _read_once(loop, a, b)
        # Still the turn in which the read finished: no poll since.
        fd = a.fileno()
        a.close()
        new, peer = _reuse_fd(fd, socks)
        loop.call_later(0.05, peer.send, b"two")
        if next_user == "sock_recv":
            async with asyncio.timeout(5):  # (not wait_for: its task would start after a poll)
                assert await loop.sock_recv(new, 100) == b"two"
        elif next_user == "add_reader":
            ready = loop.create_future()
            loop.add_reader(new, lambda: ready.done() or ready.set_result(new.recv(100)))
            try:
                assert await asyncio.wait_for(ready, 5) == b"two"
            finally:
                assert loop.remove_reader(new)
        elif next_user == "transport":
            socks.remove(new)  # the transport owns it now
            transport, proto = await loop.create_connection(_Collect, sock=new)
            try:
                assert await asyncio.wait_for(proto.got, 5) == b"two"
            finally:
                transport.close()
        else:
            writable = loop.create_future()
            loop.add_writer(new, lambda: writable.done() or writable.set_result(True))
            try:
                assert await asyncio.wait_for(writable, 5)
            finally:
                assert loop.remove_writer(new)
            assert await asyncio.wait_for(loop.sock_recv(new, 100), 5) == b"two"

    arun(main())


def test_no_reader_left_after_a_read(loop: Any, arun: Any, socks: list[socket.socket]) -> None:
    a, b = pair(socks)

    async def main() -> None:
        await _read_once(loop, a, b)
        assert not loop.remove_reader(a)  # in the same turn
        await _read_once(loop, a, b)
        await settle()
        assert not loop.remove_reader(a)  # after polls
        # Data now waiting on a socket nobody reads does not wake anyone.
        b.send(b"unread")
        await asyncio.sleep(0.02)
        assert a.recv(100) == b"unread"

    arun(main())


def test_reads_on_many_sockets_interleaved(
    loop: Any, arun: Any, socks: list[socket.socket]
) -> None:
    """Each socket's next read re-enables only its own (parked) registration."""
    pairs = [pair(socks) for _ in range(8)]

    async def serve(a: socket.socket) -> int:
        count = 0
        while data := await loop.sock_recv(a, 100):
            await loop.sock_sendall(a, data)
            count += 1
        return count

    async def client(b: socket.socket, i: int) -> None:
        for j in range(50):
            msg = f"{i}:{j}".encode()
            await loop.sock_sendall(b, msg)
            assert await loop.sock_recv(b, 100) == msg
        b.shutdown(socket.SHUT_WR)

    async def main() -> None:
        servers = [asyncio.ensure_future(serve(a)) for a, _b in pairs]
        await asyncio.gather(*(client(b, i) for i, (_a, b) in enumerate(pairs)))
        assert await asyncio.gather(*servers) == [50] * len(pairs)
        for a, b in pairs:
            assert not loop.remove_reader(a)
            assert not loop.remove_reader(b)

    arun(main())


def test_a_file_that_outlives_its_fd_after_a_read_wakes_no_one(
    loop: Any, arun: Any, socks: list[socket.socket]
) -> None:
    """Closed right after a read while a dup keeps its file open (as a forked
    child would): epoll cannot be told about that file by number any more,
    and its data must not wake the loop, nor a new socket given the number."""
    a, b = pair(socks)

    async def main() -> None:
        await _read_once(loop, a, b)
        keep = a.dup()
        socks.append(keep)
        fd = a.fileno()
        a.close()
        b.send(b"for the dup")  # the old file is readable from now on
        await settle()
        new, _peer = _reuse_fd(fd, socks)
        calls = []
        loop.add_reader(new, calls.append, 1)
        await asyncio.sleep(0.05)
        assert loop.remove_reader(new)
        assert calls == []
        assert keep.recv(100) == b"for the dup"

    arun(main())


def test_a_waiting_sendall_cancelled_and_its_socket_closed_as_a_read_ends(
    loop: Any, arun: Any, socks: list[socket.socket]
) -> None:
    a, b = pair(socks)

    async def main() -> None:
        writer = asyncio.ensure_future(loop.sock_sendall(a, b"x" * 50_000_000))
        await settle()
        assert not writer.done()  # b never reads: it waits for room
        await _read_once(loop, a, b)  # the reader and the writer on one fd
        writer.cancel()
        socks.remove(a)
        a.close()  # same turn
        with pytest.raises(asyncio.CancelledError):
            await writer
        await asyncio.sleep(0.01)

    arun(main())


def test_a_hang_up_on_a_file_that_outlived_its_fd_reaches_no_one(
    loop: Any, arun: Any, socks: list[socket.socket]
) -> None:
    """As above, and then the old peer hangs up: epoll reports hang-ups
    whatever a registration asks for, and the new owner of the fd number
    must not hear of it."""
    a, b = pair(socks)

    async def main() -> None:
        await _read_once(loop, a, b)
        keep = a.dup()
        socks.append(keep)
        fd = a.fileno()
        a.close()
        new, _peer = _reuse_fd(fd, socks)
        calls = []
        loop.add_reader(new, calls.append, 1)
        socks.remove(b)
        b.close()  # the old file's peer hangs up
        await asyncio.sleep(0.05)
        assert loop.remove_reader(new)
        assert calls == []

    arun(main())
