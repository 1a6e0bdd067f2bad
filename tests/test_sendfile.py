"""loop.sock_sendfile and loop.sendfile, on asyncio's loop and on tidal's.

Real files (a 10 MB one of random bytes, written once per module) and real
sockets: TCP on 127.0.0.1 and Unix socket pairs.  Readers are deliberately
slow (small receive buffers, a pause now and then) so the sender meets a
full socket many times and has to wait for room.  The zero-copy path is
what a regular file takes; the fallback path is forced with file objects
that have no ``fileno()`` (``io.BytesIO``), as asyncio's own tests do.

Where tidal deliberately differs from asyncio (asyncio's behaviour is an
accident there: a wrong ``tell()``, a transfer that hangs), the test says
so and asserts each loop's behaviour.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import importlib.util
import io
import os
import socket
import ssl
import sys
from collections.abc import Iterator
from typing import Any

import pytest

SIZE = 10 * 1024 * 1024
CHUNK = 16384  # the transport fallback's chunk (asyncio's)
WRITELINES = "writelines" if sys.version_info >= (3, 12) else "write"


@pytest.fixture(scope="module")
def data() -> bytes:
    return os.urandom(SIZE)


@pytest.fixture(scope="module")
def big_path(data: bytes, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("sendfile") / "big.bin"
    path.write_bytes(data)
    return str(path)


@pytest.fixture
def big(big_path: str) -> Iterator[Any]:
    with open(big_path, "rb") as f:
        yield f


def sock_pair(
    socks: list[socket.socket], kind: str = "tcp", small: bool = True
) -> tuple[socket.socket, socket.socket]:
    """(sender, receiver), both non-blocking; small buffers make the sender wait often."""
    if kind == "unix":
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        with socket.create_server(("127.0.0.1", 0)) as listener:
            b = socket.create_connection(listener.getsockname())
            a, _ = listener.accept()
    socks += [a, b]
    if small:
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)
        b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    a.setblocking(False)
    b.setblocking(False)
    return a, b


async def settle(turns: int = 5) -> None:
    for _ in range(turns):
        await asyncio.sleep(0)


async def slow_read_all(loop: Any, sock: socket.socket) -> bytes:
    """Read to EOF in small pieces, sleeping a little every 256 KiB."""
    got = bytearray()
    mark = 0
    while True:
        chunk = await loop.sock_recv(sock, 16 * 1024)
        if not chunk:
            return bytes(got)
        got += chunk
        if len(got) - mark >= 256 * 1024:
            mark = len(got)
            await asyncio.sleep(0.001)
        else:
            await asyncio.sleep(0)


def digest(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


# ----------------------------------------------------------------------
# loop.sock_sendfile
# ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_sock_sendfile_10mb_to_slow_reader(
    loop: Any, arun: Any, socks: list[socket.socket], big: Any, data: bytes, kind: str
) -> None:
    a, b = sock_pair(socks, kind)

    async def main() -> None:
        reader = asyncio.ensure_future(slow_read_all(loop, b))
        ret = await loop.sock_sendfile(a, big)
        assert ret == SIZE
        assert big.tell() == SIZE
        assert not loop.remove_writer(a.fileno())  # nothing left registered
        a.shutdown(socket.SHUT_WR)
        got = await reader
        assert len(got) == SIZE and digest(got) == digest(data)

    arun(main(), timeout=60)


def test_sock_sendfile_offset_and_count(
    loop: Any, arun: Any, socks: list[socket.socket], big: Any, data: bytes
) -> None:
    a, b = sock_pair(socks)

    async def main() -> None:
        reader = asyncio.ensure_future(slow_read_all(loop, b))
        ret = await loop.sock_sendfile(a, big, 1000, 3_000_000)
        a.shutdown(socket.SHUT_WR)
        assert ret == 3_000_000
        assert big.tell() == 3_001_000
        assert await reader == data[1000:3_001_000]

    arun(main())


def test_sock_sendfile_count_beyond_eof(
    loop: Any, arun: Any, socks: list[socket.socket], big: Any, data: bytes
) -> None:
    a, b = sock_pair(socks)

    async def main() -> None:
        reader = asyncio.ensure_future(slow_read_all(loop, b))
        ret = await loop.sock_sendfile(a, big, SIZE - 100, 1000)
        assert ret == 100
        assert big.tell() == SIZE
        # Past the end: nothing sent, and the position is left alone.
        big.seek(5)
        assert await loop.sock_sendfile(a, big, SIZE + 10, 10) == 0
        assert big.tell() == 5
        a.shutdown(socket.SHUT_WR)
        assert await reader == data[-100:]

    arun(main())


def test_sock_sendfile_empty_file(
    loop: Any, arun: Any, socks: list[socket.socket], tmp_path: Any
) -> None:
    a, _b = sock_pair(socks)
    path = tmp_path / "empty"
    path.write_bytes(b"")

    async def main(f: Any) -> None:
        assert await loop.sock_sendfile(a, f) == 0
        assert f.tell() == 0
        assert await loop.sock_sendfile(a, f, fallback=False) == 0

    with open(path, "rb") as f:
        arun(main(f))


def test_sock_sendfile_between_sendalls(
    loop: Any, arun: Any, socks: list[socket.socket], big: Any, data: bytes
) -> None:
    a, b = sock_pair(socks)
    pre, post = b"<" * 300_000, b">" * 300_000

    async def main() -> None:
        reader = asyncio.ensure_future(slow_read_all(loop, b))
        await loop.sock_sendall(a, pre)
        assert await loop.sock_sendfile(a, big, 0, 1_000_000) == 1_000_000
        await loop.sock_sendall(a, post)
        a.shutdown(socket.SHUT_WR)
        assert await reader == pre + data[:1_000_000] + post

    arun(main())


def test_sock_sendfile_fallback_without_fileno(
    loop: Any, arun: Any, socks: list[socket.socket], data: bytes
) -> None:
    """A file object without fileno() is read and sent in chunks."""
    a, b = sock_pair(socks)
    bio = io.BytesIO(data[:2_000_000])

    async def main() -> None:
        reader = asyncio.ensure_future(slow_read_all(loop, b))
        assert await loop.sock_sendfile(a, bio) == 2_000_000
        assert bio.tell() == 2_000_000
        assert await loop.sock_sendfile(a, bio, 10, 5000) == 5000
        assert bio.tell() == 5010
        a.shutdown(socket.SHUT_WR)
        assert await reader == data[:2_000_000] + data[10:5010]

    arun(main())


class NoFileno(io.RawIOBase):
    """A readable binary file whose fileno() is unsupported (as a wrapped stream's)."""

    def __init__(self, path: str) -> None:
        self._f = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        self.mode = "rb"

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        return self._f.readinto(b)  # type: ignore[return-value]

    def seek(self, pos: int, whence: int = 0) -> int:
        return self._f.seek(pos, whence)

    def tell(self) -> int:
        return self._f.tell()

    def close(self) -> None:
        self._f.close()
        super().close()


def test_sock_sendfile_no_fallback(
    loop: Any, arun: Any, socks: list[socket.socket], big_path: str
) -> None:
    a, b = sock_pair(socks)
    with open(big_path, "rb") as g:
        expected = g.read()[100:200_100]

    async def main() -> None:
        with pytest.raises(asyncio.SendfileNotAvailableError, match="^not a regular file$"):
            await loop.sock_sendfile(a, io.BytesIO(b"abc"), fallback=False)
        f = NoFileno(big_path)
        try:
            with pytest.raises(asyncio.SendfileNotAvailableError, match="^not a regular file$"):
                await loop.sock_sendfile(a, f, fallback=False)
            assert f.tell() == 0
            # ... and with the fallback it is sent all the same.
            reader = asyncio.ensure_future(slow_read_all(loop, b))
            assert await loop.sock_sendfile(a, f, 100, 200_000) == 200_000
            assert f.tell() == 200_100
            a.shutdown(socket.SHUT_WR)
            assert await reader == expected
        finally:
            f.close()

    arun(main())


def test_sock_sendfile_file_sendfile_cannot_read(
    loop: Any, arun: Any, socks: list[socket.socket]
) -> None:
    """os.sendfile refuses a pipe at once: SendfileNotAvailableError, or the fallback."""
    a, b = sock_pair(socks)
    r, w = os.pipe()
    os.write(w, b"through a pipe")
    os.close(w)

    async def main(pipe: Any) -> None:
        # A pipe has no size: with a count, os.sendfile is tried and refuses
        # (EINVAL) before anything is sent ...
        with pytest.raises(asyncio.SendfileNotAvailableError, match="^os.sendfile call failed$"):
            await loop.sock_sendfile(a, pipe, 0, 5, fallback=False)
        # ... so the fallback reads it; then, as asyncio's, it sets the
        # position with seek(), which a pipe refuses.
        with pytest.raises(OSError) as info:
            await loop.sock_sendfile(a, pipe, 0, 7)
        assert info.value.errno == errno.ESPIPE
        assert await loop.sock_recv(b, 100) == b"through"

    with open(r, "rb", buffering=0) as pipe:
        arun(main(pipe))


@pytest.mark.parametrize(
    ("args", "exc", "message"),
    [
        ((0, "x"), TypeError, "count must be a positive integer (got 'x')"),
        ((0, 0), ValueError, "count must be a positive integer (got 0)"),
        ((0, -1), ValueError, "count must be a positive integer (got -1)"),
        (("0",), TypeError, "offset must be a non-negative integer (got '0')"),
        ((-1,), ValueError, "offset must be a non-negative integer (got -1)"),
        ((1.5, 10), TypeError, "offset must be a non-negative integer (got 1.5)"),
    ],
)
def test_sock_sendfile_bad_numbers(
    loop: Any, arun: Any, socks: list[socket.socket], big: Any, args: Any, exc: Any, message: str
) -> None:
    a, _b = sock_pair(socks)
    with pytest.raises(exc) as info:
        arun(loop.sock_sendfile(a, big, *args))
    assert str(info.value) == message
    assert big.tell() == 0


def test_sock_sendfile_bad_file_and_socket(
    loop: Any, arun: Any, socks: list[socket.socket], big: Any, big_path: str
) -> None:
    a, _b = sock_pair(socks)
    with (
        open(big_path) as text,
        pytest.raises(ValueError, match="^file should be opened in binary mode$"),
    ):
        arun(loop.sock_sendfile(a, text))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.setblocking(False)
    socks.append(udp)
    with pytest.raises(ValueError, match="^only SOCK_STREAM type sockets are supported$"):
        arun(loop.sock_sendfile(udp, big))

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    raw = socket.socket()
    raw.setblocking(False)
    socks.append(raw)
    tls = ctx.wrap_socket(raw, server_hostname="x", do_handshake_on_connect=False)
    socks.append(tls)
    with pytest.raises(TypeError, match="^Socket cannot be of type SSLSocket$"):
        arun(loop.sock_sendfile(tls, big))


def test_sock_sendfile_blocking_socket_in_debug(
    loop: Any, arun: Any, socks: list[socket.socket], big: Any
) -> None:
    a, _b = sock_pair(socks)
    a.setblocking(True)
    loop.set_debug(True)
    with pytest.raises(ValueError, match="^the socket must be non-blocking$"):
        arun(loop.sock_sendfile(a, big))
    # The blocking check comes before the SSL one (asyncio's order for sendfile).
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    tls = ctx.wrap_socket(socket.socket(), server_hostname="x", do_handshake_on_connect=False)
    socks.append(tls)
    with pytest.raises(ValueError, match="^the socket must be non-blocking$"):
        arun(loop.sock_sendfile(tls, big))


def test_sock_sendfile_cancelled(
    loop: Any, loop_name: str, arun: Any, socks: list[socket.socket], big: Any, data: bytes
) -> None:
    a, b = sock_pair(socks)

    async def main() -> None:
        task = asyncio.ensure_future(loop.sock_sendfile(a, big))
        await asyncio.sleep(0.05)  # the peer reads nothing: the send is stuck
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not loop.remove_writer(a.fileno())  # the writer went with it
        # The socket is still fine for other sends.
        reader = asyncio.ensure_future(slow_read_all(loop, b))
        await loop.sock_sendall(a, b"tail")
        a.shutdown(socket.SHUT_WR)
        got = await reader
        sent = len(got) - 4
        assert 0 < sent < SIZE
        assert got == data[:sent] + b"tail"
        if loop_name == "tidal":
            # The position says how much was sent, as it does after an error.
            assert big.tell() == sent
        else:
            # asyncio's cancellation unregisters the writer before its own
            # "cancelled: update the position" step can run.
            assert big.tell() == 0

    arun(main())


def test_sock_sendfile_fallback_cancelled(
    loop: Any, arun: Any, socks: list[socket.socket], data: bytes
) -> None:
    a, b = sock_pair(socks)
    bio = io.BytesIO(data)

    async def main() -> None:
        task = asyncio.ensure_future(loop.sock_sendfile(a, bio))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not loop.remove_writer(a.fileno())
        a.shutdown(socket.SHUT_WR)
        got = await slow_read_all(loop, b)
        assert got == data[: len(got)]
        # Whole chunks only: a chunk cut by the cancellation was not counted.
        assert 0 < bio.tell() <= len(got) + 256 * 1024

    arun(main())


def test_sock_sendfile_peer_closes(
    loop: Any, arun: Any, socks: list[socket.socket], big: Any
) -> None:
    a, b = sock_pair(socks)

    async def main() -> None:
        task = asyncio.ensure_future(loop.sock_sendfile(a, big))
        await loop.sock_recv(b, 1000)
        b.close()
        with pytest.raises(ConnectionError):
            await task
        assert 0 < big.tell() < SIZE  # how far it got
        assert not loop.remove_writer(a.fileno())

    arun(main())


def test_sock_sendfile_keeps_buffered_position_right(
    loop: Any, loop_name: str, arun: Any, socks: list[socket.socket], big: Any, data: bytes
) -> None:
    """After reading from the file object first, tell() and read() are right afterwards on tidal.

    asyncio moves the fd with os.lseek behind the buffered reader's back,
    so its tell() comes out negative and read() returns stale read-ahead;
    tidal seeks through the file object.
    """
    a, b = sock_pair(socks, small=False)
    assert big.read(10) == data[:10]

    async def main() -> None:
        assert await loop.sock_sendfile(a, big, 10, 100) == 100
        assert await loop.sock_recv(b, 1000) == data[10:110]

    arun(main())
    if loop_name == "tidal":
        assert big.tell() == 110
        assert big.read(5) == data[110:115]
    else:
        assert big.tell() != 110


# ----------------------------------------------------------------------
# loop.sendfile over a transport
# ----------------------------------------------------------------------


class Sink(asyncio.Protocol):
    """Server side: collects what arrives, reading slowly if asked."""

    def __init__(self, loop: Any, slow: bool = False, reply: bytes = b"") -> None:
        self.loop = loop
        self.slow = slow
        self.reply = reply
        self.data = bytearray()
        self.transport: Any = None
        self.connected = loop.create_future()
        self.done = loop.create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.connected.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self.reply and not self.data:
            self.transport.write(self.reply)  # answered while the sender is busy
        self.data += data
        if self.slow:
            self.transport.pause_reading()
            self.loop.call_later(0.0005, self.transport.resume_reading)

    def eof_received(self) -> None:
        return None  # close

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.done.done():
            self.done.set_result(exc)


class Client(asyncio.Protocol):
    """Client side: records data and flow-control calls."""

    def __init__(self, loop: Any) -> None:
        self.data = bytearray()
        self.events: list[str] = []
        self.transport: Any = None
        self.got_data = loop.create_future()
        self.lost = loop.create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.data += data
        if not self.got_data.done():
            self.got_data.set_result(None)

    def pause_writing(self) -> None:
        self.events.append("pause")

    def resume_writing(self) -> None:
        self.events.append("resume")

    def connection_lost(self, exc: BaseException | None) -> None:
        self.events.append("lost")
        if not self.lost.done():
            self.lost.set_result(exc)


class BufferedClient(asyncio.BufferedProtocol):
    def __init__(self, loop: Any) -> None:
        self.buf = bytearray(1024)
        self.data = bytearray()
        self.got_data = loop.create_future()
        self.lost = loop.create_future()

    def get_buffer(self, sizehint: int) -> bytearray:
        return self.buf

    def buffer_updated(self, nbytes: int) -> None:
        self.data += self.buf[:nbytes]
        if not self.got_data.done():
            self.got_data.set_result(None)

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


async def open_pair(
    loop: Any,
    sink: Sink,
    client_factory: Any = None,
    server_ssl: Any = None,
    client_ssl: Any = None,
    small: bool = True,
) -> tuple[Any, Any, Any]:
    """(server, client transport, client protocol) connected over 127.0.0.1."""
    server = await loop.create_server(lambda: sink, "127.0.0.1", 0, ssl=server_ssl)
    port = server.sockets[0].getsockname()[1]
    factory = client_factory or (lambda: Client(loop))
    kw: dict[str, Any] = {}
    if client_ssl is not None:
        kw = {"ssl": client_ssl, "server_hostname": "localhost"}
    tr, pr = await loop.create_connection(factory, "127.0.0.1", port, **kw)
    await sink.connected
    if small:
        tr.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)
        # And a fixed receive buffer on the sink's side: left to autotuning,
        # loopback's receive window can grow to hold megabytes, and then a
        # slow sink never makes the sender wait (the flow-control tests
        # would pass or fail with the kernel's mood).
        sink.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024
        )
    return server, tr, pr


async def close_pair(server: Any, tr: Any, sink: Sink) -> None:
    tr.close()
    await sink.done
    server.close()
    await server.wait_closed()


def test_sendfile_pre_and_post_data_in_order(loop: Any, arun: Any, big: Any, data: bytes) -> None:
    """A write queued before sendfile is flushed first; one after it comes after."""
    pre, post = b"P" * 1_000_000, b"S" * 50_000

    async def main() -> None:
        sink = Sink(loop, slow=True)
        server, tr, _pr = await open_pair(loop, sink)
        tr.write(pre)
        assert tr.get_write_buffer_size() > 0  # still queued when sendfile starts
        ret = await loop.sendfile(tr, big, 0, 3_000_000)
        assert ret == 3_000_000
        assert big.tell() == 3_000_000
        tr.write(post)
        await close_pair(server, tr, sink)
        assert len(sink.data) == len(pre) + 3_000_000 + len(post)
        assert digest(sink.data) == digest(pre + data[:3_000_000] + post)

    arun(main(), timeout=60)


def test_sendfile_whole_file_offset_count(loop: Any, arun: Any, big: Any, data: bytes) -> None:
    async def main() -> None:
        sink = Sink(loop)
        server, tr, _pr = await open_pair(loop, sink, small=False)
        assert await loop.sendfile(tr, big) == SIZE
        assert big.tell() == SIZE
        assert await loop.sendfile(tr, big, 1000, 100) == 100
        assert big.tell() == 1100
        assert await loop.sendfile(tr, big, SIZE - 10, 100) == 10
        assert big.tell() == SIZE
        await close_pair(server, tr, sink)
        assert digest(sink.data) == digest(data + data[1000:1100] + data[-10:])

    arun(main(), timeout=60)


def test_sendfile_refuses_writes_and_pauses_reading(loop: Any, arun: Any, big: Any) -> None:
    """While the file goes out: write() is refused, the buffer stays empty, nothing is read."""

    async def main() -> None:
        sink = Sink(loop, slow=True, reply=b"pong")
        server, tr, pr = await open_pair(loop, sink)
        task = asyncio.ensure_future(loop.sendfile(tr, big, 0, 2_000_000))
        await settle()
        assert not task.done()
        with pytest.raises(RuntimeError, match="^unable to write; sendfile is in progress$"):
            tr.write(b"x")
        # 3.11's writelines() is write(b"".join(...)), and its message says so.
        with pytest.raises(
            RuntimeError, match=f"^unable to {WRITELINES}; sendfile is in progress$"
        ):
            tr.writelines([b"x"])
        assert tr.get_write_buffer_size() == 0
        assert await task == 2_000_000
        # The reply the sink sent at once was not read during the transfer ...
        assert pr.data == b""
        # ... reading resumes now, and writes work again.
        await pr.got_data
        assert pr.data == b"pong"
        tr.write(b"after")
        await close_pair(server, tr, sink)
        assert len(sink.data) == 2_000_000 + 5

    arun(main())


def test_sendfile_fallback_flow_control(loop: Any, loop_name: str, arun: Any, data: bytes) -> None:
    """The fallback writes a chunk only when the transport has room (pause/resume_writing)."""
    content = data[:3_000_000]

    async def main() -> None:
        sink = Sink(loop, slow=True)
        server, tr, pr = await open_pair(loop, sink)
        tr.set_write_buffer_limits(high=CHUNK * 2)
        peak = 0
        sampling = True

        def sample() -> None:
            nonlocal peak
            peak = max(peak, tr.get_write_buffer_size())
            if sampling:
                loop.call_soon(sample)

        loop.call_soon(sample)
        bio = io.BytesIO(content)
        assert await loop.sendfile(tr, bio) == len(content)
        sampling = False
        assert bio.tell() == len(content)
        # Bounded by high water + one chunk: every chunk waited for room.
        assert 0 < peak <= CHUNK * 3
        # The transport's pause/resume went to the stand-in protocol, not to
        # ours; only if the last chunk left the transport paused is ours told
        # (on tidal: asyncio does not tell it, and later resumes it all the same).
        paused_at_end = ["pause"] if loop_name == "tidal" else []
        assert pr.events in ([], paused_at_end)
        while tr.get_write_buffer_size():
            await asyncio.sleep(0.001)
        assert pr.events in ([], paused_at_end + ["resume"])
        await close_pair(server, tr, sink)
        assert len(sink.data) == len(content)
        if loop_name == "asyncio" and sys.version_info >= (3, 12):
            # asyncio 3.12+'s socket transport queues the caller's memoryview
            # itself, and its fallback reuses that buffer for the next chunk:
            # what was queued is overwritten before it is sent.
            return
        assert digest(sink.data) == digest(content)

    arun(main())


def test_sendfile_fallback_restores_protocol_and_reading(loop: Any, arun: Any) -> None:
    """After the fallback the protocol is ours again (a BufferedProtocol too) and reads resume."""

    async def main() -> None:
        sink = Sink(loop, reply=b"hello")
        server, tr, pr = await open_pair(loop, sink, lambda: BufferedClient(loop))
        assert await loop.sendfile(tr, io.BytesIO(b"abc" * 100_000)) == 300_000
        assert tr.get_protocol() is pr
        await pr.got_data
        assert pr.data == b"hello"
        await close_pair(server, tr, sink)
        assert sink.data == b"abc" * 100_000

    arun(main())


def test_sendfile_fallback_false(loop: Any, arun: Any, big: Any) -> None:
    async def main() -> None:
        sink = Sink(loop, reply=b"still reading")
        server, tr, pr = await open_pair(loop, sink)
        with pytest.raises(asyncio.SendfileNotAvailableError, match="^not a regular file$"):
            await loop.sendfile(tr, io.BytesIO(b"abc"), fallback=False)
        # Nothing sent, and the transport is as it was.
        assert tr.get_protocol() is pr and tr.is_reading()
        tr.write(b"x")
        await pr.got_data
        assert pr.data == b"still reading"
        await close_pair(server, tr, sink)
        assert sink.data == b"x"

    arun(main())


def test_sendfile_closing_transport(loop: Any, arun: Any, big: Any) -> None:
    async def main() -> None:
        sink = Sink(loop)
        server, tr, _pr = await open_pair(loop, sink)
        tr.close()
        with pytest.raises(RuntimeError, match="^Transport is closing$"):
            await loop.sendfile(tr, big)
        assert big.tell() == 0
        await sink.done
        server.close()
        await server.wait_closed()
        assert sink.data == b""

    arun(main())


def test_sendfile_bad_args(loop: Any, arun: Any, big: Any, big_path: str) -> None:
    """Checked (as asyncio does) once the zero-copy path is taken: same errors as sock_sendfile."""

    async def main(text: Any) -> None:
        sink = Sink(loop)
        server, tr, _pr = await open_pair(loop, sink)
        with pytest.raises(ValueError, match=r"^offset must be a non-negative integer \(got -1\)$"):
            await loop.sendfile(tr, big, -1)
        with pytest.raises(TypeError, match=r"^count must be a positive integer \(got 'x'\)$"):
            await loop.sendfile(tr, big, 0, "x")
        with pytest.raises(ValueError, match="^file should be opened in binary mode$"):
            await loop.sendfile(tr, text)
        # The transport is not left in sendfile mode.
        tr.write(b"ok")
        await close_pair(server, tr, sink)
        assert sink.data == b"ok"

    with open(big_path) as text:
        arun(main(text))


def test_sendfile_unsupported_transports(loop: Any, arun: Any, big: Any) -> None:
    r, w = os.pipe()

    async def main(wf: Any) -> None:
        tr, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
        )
        try:
            with pytest.raises(RuntimeError, match="^sendfile is not supported for transport <"):
                await loop.sendfile(tr, big)
        finally:
            tr.close()
        wtr, _ = await loop.connect_write_pipe(asyncio.Protocol, wf)
        try:
            with pytest.raises(RuntimeError, match="^sendfile is not supported for transport"):
                await loop.sendfile(wtr, big)
        finally:
            wtr.close()
            await settle()

    with open(r, "rb", buffering=0) as rf, open(w, "wb", buffering=0) as wf:
        arun(main(wf))
        assert rf.read() == b""
    assert big.tell() == 0


class FallbackOnly(asyncio.Transport):
    """A transport that declares it can only take sendfile's fallback (as TLS does)."""

    _sendfile_compatible = asyncio.constants._SendfileMode.FALLBACK

    def is_closing(self) -> bool:
        return False


def test_sendfile_fallback_disabled_for_fallback_transport(loop: Any, arun: Any, big: Any) -> None:
    with pytest.raises(
        RuntimeError,
        match="^fallback is disabled and native sendfile is not supported for transport <",
    ):
        arun(loop.sendfile(FallbackOnly(), big, fallback=False))


def test_sendfile_cancelled(loop: Any, arun: Any, big: Any, data: bytes) -> None:
    """Cancelled mid-transfer: the transport takes writes and reads again."""

    async def main() -> None:
        sink = Sink(loop, reply=b"r")
        sink_reading = sink
        server, tr, pr = await open_pair(loop, sink)
        task = asyncio.ensure_future(loop.sendfile(tr, big))
        await settle()
        sink_reading.transport.pause_reading()  # stall the transfer
        await asyncio.sleep(0.05)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        tr.write(b"!")
        sink.transport.resume_reading()
        await pr.got_data
        assert pr.data == b"r"
        await close_pair(server, tr, sink)
        sent = len(sink.data) - 1
        assert sink.data == data[:sent] + b"!"

    arun(main())


def test_sendfile_peer_closes_midway(loop: Any, arun: Any, big: Any) -> None:
    async def main() -> None:
        sink = Sink(loop, slow=True)
        server, tr, pr = await open_pair(loop, sink)
        task = asyncio.ensure_future(loop.sendfile(tr, big))
        while len(sink.data) < 100_000:
            await asyncio.sleep(0.001)
        sink.transport.abort()
        with pytest.raises(ConnectionError):
            await task
        assert 0 < big.tell() < SIZE
        await pr.lost  # reading resumed, and found the connection gone
        assert tr.is_closing()
        server.close()
        await server.wait_closed()

    arun(main())


@pytest.mark.parametrize("how", ["close", "abort"])
def test_sendfile_transport_closed_midway(
    loop: Any, loop_name: str, arun: Any, big: Any, how: str
) -> None:
    """Closing the transport mid-transfer ends the transfer with ConnectionError on tidal.

    asyncio's transfer never finishes then (its writer waits on a closed
    socket), so this one is tidal's behaviour only.
    """
    if loop_name == "asyncio":
        pytest.skip("asyncio's sendfile waits forever when its transport is closed midway")

    async def main() -> None:
        sink = Sink(loop)
        server, tr, pr = await open_pair(loop, sink)
        fd = tr.get_extra_info("socket").fileno()
        task = asyncio.ensure_future(loop.sendfile(tr, big))
        await settle()
        sink.transport.pause_reading()
        await asyncio.sleep(0.05)
        assert not task.done()
        getattr(tr, how)()
        with pytest.raises(ConnectionError, match="^Connection is closed by peer$"):
            await task
        assert 0 < big.tell() < SIZE
        assert await pr.lost is None
        assert fd not in loop._writers
        sink.transport.resume_reading()
        await sink.done
        server.close()
        await server.wait_closed()

    arun(main())


def test_sendfile_fallback_keeps_pause_resume_balanced(
    loop: Any, loop_name: str, arun: Any
) -> None:
    """A protocol paused before the fallback ran hears one resume_writing per pause_writing on tidal.

    asyncio's fallback resumes it on the way out even while the transport is
    still paused, and the transport resumes it again once drained.
    """

    async def main() -> None:
        sink = Sink(loop)
        server, tr, pr = await open_pair(loop, sink)
        tr.set_write_buffer_limits(high=CHUNK * 2)
        sink.transport.pause_reading()
        while not pr.events:
            tr.write(b"w" * CHUNK)  # until the transport pauses us
        # Then far more than the kernel's buffers (fixed sizes: open_pair)
        # can take while the sink reads nothing, so that the transport stays
        # paused: with just over the high-water mark queued, the kernel could
        # drain it below the low one, and a resume came first (seen on a
        # loaded machine: pause, resume, pause).
        tr.write(b"w" * (1024 * 1024))
        await settle()
        assert pr.events == ["pause"]
        task = asyncio.ensure_future(loop.sendfile(tr, io.BytesIO(b"f" * 200_000)))
        await asyncio.sleep(0.02)
        sink.transport.resume_reading()
        assert await task == 200_000
        while tr.get_write_buffer_size():
            await asyncio.sleep(0.001)
        await settle()
        if loop_name == "tidal":
            assert pr.events == ["pause", "resume"]
        else:
            assert pr.events.count("resume") >= 1
        await close_pair(server, tr, sink)

    arun(main())


HAS_TLS = importlib.util.find_spec("tidal.transports._tls") is not None


def test_sendfile_over_tls_uses_fallback(
    loop: Any, loop_name: str, arun: Any, big: Any, data: bytes
) -> None:
    if loop_name == "tidal" and not HAS_TLS:
        pytest.skip("tidal's TLS transport has not landed")
    from test.test_asyncio import utils as test_utils

    pre, post = b"<tls>" * 10_000, b"</tls>" * 10_000

    async def main() -> None:
        sink = Sink(loop, slow=True)
        server, tr, _pr = await open_pair(
            loop,
            sink,
            server_ssl=test_utils.simple_server_sslcontext(),
            client_ssl=test_utils.simple_client_sslcontext(),
        )
        with pytest.raises(RuntimeError, match="^fallback is disabled"):
            await loop.sendfile(tr, big, fallback=False)
        tr.write(pre)
        assert await loop.sendfile(tr, big, 0, 2_000_000) == 2_000_000
        assert big.tell() == 2_000_000
        tr.write(post)
        await close_pair(server, tr, sink)
        assert digest(sink.data) == digest(pre + data[:2_000_000] + post)

    arun(main(), timeout=60)
