"""Stream transports (TCP and Unix), on asyncio's loop and on tidal's.

The transport under test sits on one end of a connected socket pair (made
with blocking calls, then handed to ``loop.connect_accepted_socket``); the
other end is a plain non-blocking socket driven through ``loop.add_reader``
/ ``add_writer``, so no client-side loop machinery is involved.
"""

from __future__ import annotations

import array
import asyncio
import contextvars
import gc
import hashlib
import random
import re
import select
import socket
import struct
import sys
from typing import Any

import pytest

# ----------------------------------------------------------------------
# Raw-socket helpers (the peer side), usable on either loop
# ----------------------------------------------------------------------


async def wait_fd(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, writable: bool = False
) -> None:
    """Wait until `sock` is readable (or writable)."""
    fut = loop.create_future()

    def ready() -> None:
        if not fut.done():
            fut.set_result(None)

    fd = sock.fileno()
    if writable:
        loop.add_writer(fd, ready)
    else:
        loop.add_reader(fd, ready)
    try:
        await fut
    finally:
        if writable:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)


async def recv(loop: asyncio.AbstractEventLoop, sock: socket.socket, n: int = 65536) -> bytes:
    while True:
        try:
            return sock.recv(n)
        except BlockingIOError:
            await wait_fd(loop, sock)


async def recv_exactly(loop: asyncio.AbstractEventLoop, sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        data = await recv(loop, sock, n - len(buf))
        if not data:
            raise EOFError(f"EOF after {len(buf)} of {n} bytes")
        buf += data
    return bytes(buf)


async def recv_until_eof(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> bytes:
    buf = bytearray()
    while True:
        data = await recv(loop, sock, 256 * 1024)
        if not data:
            return bytes(buf)
        buf += data


async def sendall(loop: asyncio.AbstractEventLoop, sock: socket.socket, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = sock.send(view)
        except BlockingIOError:
            await wait_fd(loop, sock, writable=True)
        else:
            view = view[n:]


async def connect(
    loop: asyncio.AbstractEventLoop, address: Any, family: int = socket.AF_INET
) -> socket.socket:
    """A connected non-blocking client socket (connect awaited through add_writer)."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        try:
            sock.connect(address)
        except (BlockingIOError, InterruptedError):
            await wait_fd(loop, sock, writable=True)
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, f"connect to {address!r} failed")
    except BaseException:
        sock.close()
        raise
    return sock


def make_pair(kind: str, small_buffers: bool = False) -> tuple[socket.socket, socket.socket]:
    """(ours, peer): a connected pair; `peer` is non-blocking."""
    if kind == "unix":
        ours, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        with socket.create_server(("127.0.0.1", 0)) as listener:
            peer = socket.create_connection(listener.getsockname())
            ours, _ = listener.accept()
    if small_buffers:
        # Fixed small buffers (no autotuning): writes block after ~100 KiB.
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    peer.setblocking(False)
    return ours, peer


async def settle(turns: int = 5) -> None:
    """Let the loop run a few turns."""
    for _ in range(turns):
        await asyncio.sleep(0)


# ----------------------------------------------------------------------
# Protocols that record what happens to them
# ----------------------------------------------------------------------


class Recorder(asyncio.Protocol):
    """Records every callback; futures for the interesting moments."""

    keep_open: Any = None

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.events: list[str] = []
        self.data = bytearray()
        self.chunk_types: set[type] = set()
        self.transport: Any = None
        self.lost = loop.create_future()
        self.eof = loop.create_future()
        self.pauses = 0
        self.resumes = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def connection_made(self, transport: Any) -> None:
        self.events.append("made")
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if not self.events or self.events[-1] != "data":
            self.events.append("data")
        self.chunk_types.add(type(data))
        self.data += data
        self._wake()

    def _wake(self) -> None:
        for n, fut in self._waiters:
            if len(self.data) >= n and not fut.done():
                fut.set_result(None)

    async def wait_data(self, n: int) -> bytes:
        if len(self.data) < n:
            fut = self.loop.create_future()
            self._waiters.append((n, fut))
            await fut
        return bytes(self.data)

    def eof_received(self) -> Any:
        self.events.append("eof")
        self.eof.set_result(None)
        return self.keep_open

    def connection_lost(self, exc: BaseException | None) -> None:
        self.events.append("lost")
        self.lost.set_result(exc)

    def pause_writing(self) -> None:
        self.pauses += 1

    def resume_writing(self) -> None:
        self.resumes += 1


class BufferedRecorder(asyncio.BufferedProtocol):
    """A BufferedProtocol with a small buffer, so data arrives in many pieces."""

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int = 7) -> None:
        self.loop = loop
        self.buf = bytearray(size)
        self.data = bytearray()
        self.sizes_asked: list[int] = []
        self.updates = 0
        self.events: list[str] = []
        self.lost = loop.create_future()
        self.eof = loop.create_future()
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.events.append("made")
        self.transport = transport

    def get_buffer(self, sizehint: int) -> bytearray:
        self.sizes_asked.append(sizehint)
        return self.buf

    def buffer_updated(self, nbytes: int) -> None:
        self.updates += 1
        self.data += self.buf[:nbytes]

    def eof_received(self) -> None:
        self.events.append("eof")
        self.eof.set_result(None)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.events.append("lost")
        self.lost.set_result(exc)


async def open_pair(
    loop: asyncio.AbstractEventLoop, kind: str, proto: Any = None, small_buffers: bool = False
) -> tuple[Any, Any, socket.socket]:
    """(transport, protocol, peer socket) over a fresh socket pair."""
    ours, peer = make_pair(kind, small_buffers)
    protocol = Recorder(loop) if proto is None else proto
    transport, _ = await loop.connect_accepted_socket(lambda: protocol, ours)
    return transport, protocol, peer


@pytest.fixture(params=["tcp", "unix"])
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


BIG = 4 * 1024 * 1024  # more than a small-buffered socket pair holds


# ----------------------------------------------------------------------
# Connection set-up and reading
# ----------------------------------------------------------------------


def test_echo_and_event_order(loop, arun, kind):
    class Echo(Recorder):
        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self.transport.write(data)

    async def main():
        tr, proto, peer = await open_pair(loop, kind, Echo(loop))
        # The waiter resolves only after connection_made ran.
        assert proto.events == ["made"]
        assert tr.get_protocol() is proto
        assert not tr.is_closing() and tr.is_reading()
        for i in range(20):
            msg = b"ping %d" % i
            await sendall(loop, peer, msg)
            assert await recv_exactly(loop, peer, len(msg)) == msg
        peer.shutdown(socket.SHUT_WR)
        assert await proto.lost is None
        assert proto.events == ["made", "data", "eof", "lost"]
        assert proto.chunk_types == {bytes}
        assert tr.is_closing()
        assert await recv(loop, peer) == b""  # the transport closed its end
        peer.close()

    arun(main())


class CountingSocket(socket.socket):
    """A socket.socket subclass that counts the transport's calls to its methods."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def recv(self, *args: Any) -> bytes:
        self._count("recv")
        return super().recv(*args)

    def recv_into(self, *args: Any) -> int:
        self._count("recv_into")
        return super().recv_into(*args)

    def send(self, *args: Any) -> int:
        self._count("send")
        return super().send(*args)


@pytest.mark.parametrize("buffered", [False, True], ids=["protocol", "buffered"])
def test_socket_subclass_methods_are_called(loop, arun, kind, buffered):
    # asyncio's transport reads and writes through the socket's methods, so a
    # subclass's overrides run; tidal (which uses the fd directly for a plain
    # socket.socket) must call them too.
    class Echo(Recorder):
        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self.transport.write(data)

    class BufferedEcho(BufferedRecorder):
        def buffer_updated(self, nbytes: int) -> None:
            super().buffer_updated(nbytes)
            self.transport.write(bytes(self.buf[:nbytes]))

    async def main():
        plain, peer = make_pair(kind)
        ours = CountingSocket(plain.family, plain.type, plain.proto, fileno=plain.detach())
        proto = BufferedEcho(loop, size=4096) if buffered else Echo(loop)
        tr, _ = await loop.connect_accepted_socket(lambda: proto, ours)
        for i in range(5):
            msg = b"ping %d" % i
            await sendall(loop, peer, msg)
            assert await recv_exactly(loop, peer, len(msg)) == msg
        tr.close()
        await proto.lost
        peer.close()
        return dict(ours.calls)

    calls = arun(main())
    assert calls.get("recv_into" if buffered else "recv", 0) >= 5
    assert calls.get("send", 0) >= 5


def test_extra_info(loop, arun, kind):
    async def main():
        tr, proto, peer = await open_pair(loop, kind)
        sock = tr.get_extra_info("socket")
        assert sock.fileno() >= 0
        assert sock.type == socket.SOCK_STREAM
        assert sock.family == (socket.AF_UNIX if kind == "unix" else socket.AF_INET)
        assert tr.get_extra_info("sockname") == sock.getsockname()
        if kind == "tcp":
            assert tr.get_extra_info("peername") == peer.getsockname()
        assert tr.get_extra_info("nonexistent", "dflt") == "dflt"
        assert "TransportSocket" in repr(sock)
        tr.close()
        await proto.lost
        peer.close()

    arun(main())


def test_reads_large_and_small_arrive_whole_and_in_order(loop, arun, kind):
    # Large reads and small ones, in every order (compiled, a large read
    # makes the next go straight into a bytes object of its own, a small
    # one sends the next through the scratch buffer again), then a reset
    # right after a large read: each byte arrives once, in order, as bytes.
    sizes = [100_000, 10, 70_000, 1, 5_000, 3_000, 120_000, 200_000, 2, 64 * 1024, 4096, 4095]
    payload = random.Random(5).randbytes(sum(sizes))  # no repeats: a chunk out of place shows

    async def main():
        tr, proto, peer = await open_pair(loop, kind)
        sent = 0
        for size in sizes:
            await sendall(loop, peer, payload[sent : sent + size])
            sent += size
            await proto.wait_data(sent)  # one size at a time: each its own reads
        assert bytes(proto.data) == payload[:sent]
        assert proto.chunk_types == {bytes}
        await sendall(loop, peer, payload[:50_000])
        await proto.wait_data(sent + 50_000)
        if kind == "tcp":
            peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            tr.write(b"unread by the peer")  # so that the close is a reset
            await asyncio.sleep(0.01)
        peer.close()
        exc = await proto.lost
        assert exc is None or isinstance(exc, ConnectionResetError), exc
        assert bytes(proto.data) == payload[:sent] + payload[:50_000]

    arun(main())



class Keeper(Recorder):
    """Keeps every other chunk it is given, and each chunk's hash as given."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.kept: dict[int, bytes] = {}
        self.copies: list[bytes] = []
        self.hashes: list[int] = []

    def data_received(self, data: bytes) -> None:
        i = len(self.copies)
        self.copies.append(bytes(bytearray(data)))  # a copy sharing nothing with data
        self.hashes.append(hash(data))  # cached on data: a recycled object must forget it
        if i % 2 == 0:
            self.kept[i] = data
        super().data_received(data)


def test_chunks_given_to_data_received_never_change(loop, arun, kind):
    # Chunks of one length, one read each (compiled, a chunk that nothing
    # holds any more may be reused for the next read of its length): a
    # chunk the protocol keeps keeps its content, and every chunk's hash,
    # taken when it came, is its own content's.
    size, count = 1000, 40
    rng = random.Random(3)
    chunks = [rng.randbytes(size) for _ in range(count)]

    async def main():
        tr, proto, peer = await open_pair(loop, kind, Keeper(loop))
        for i, chunk in enumerate(chunks):
            await sendall(loop, peer, chunk)
            await proto.wait_data((i + 1) * size)
        assert proto.copies == chunks  # one read per chunk (else the test proves less)
        assert proto.hashes == [hash(c) for c in chunks]
        assert proto.kept == {i: chunks[i] for i in range(0, count, 2)}
        assert {c: i for i, c in proto.kept.items()} == {chunks[i]: i for i in proto.kept}
        tr.close()
        peer.close()
        await proto.lost

    arun(main())


def test_buffered_protocol(loop, arun, kind):
    async def main():
        proto = BufferedRecorder(loop, size=7)
        _, _, peer = await open_pair(loop, kind, proto)
        payload = bytes(range(256)) * 40
        await sendall(loop, peer, payload)
        peer.shutdown(socket.SHUT_WR)
        assert await proto.lost is None
        assert bytes(proto.data) == payload
        assert proto.updates >= len(payload) // 7
        assert set(proto.sizes_asked) == {-1}
        assert proto.events == ["made", "eof", "lost"]
        peer.close()

    arun(main())


@pytest.mark.parametrize("buffered", [False, True], ids=["protocol", "buffered"])
@pytest.mark.parametrize("action", ["pause", "close", "abort", "set_protocol"])
def test_reads_stop_when_the_protocol_says_so(loop_name, loop, arun, kind, buffered, action):
    # Far more is waiting than one read takes (tidal reads again at once
    # after a read that filled the buffer): once data_received/buffer_updated
    # pauses, closes, aborts or hands over to another protocol, not one more
    # byte reaches this protocol until it resumes.
    payload = random.Random(7).randbytes(300_000)

    class Stopper(BufferedRecorder if buffered else Recorder):  # type: ignore[misc]
        armed = True
        stopped_at: int | None = None

        def data_received(self, data: bytes) -> None:
            assert self.stopped_at is None, "data after the stop"
            super().data_received(data)
            self.stop()

        def buffer_updated(self, nbytes: int) -> None:
            assert self.stopped_at is None, "data after the stop"
            super().buffer_updated(nbytes)
            self.stop()

        def stop(self) -> None:
            if not self.armed:
                return
            self.stopped_at = len(self.data)
            if action == "pause":
                self.transport.pause_reading()
            elif action == "close":
                self.transport.close()
            elif action == "abort":
                self.transport.abort()
            else:
                self.transport.set_protocol(heir)

    heir = Recorder(loop)
    proto = Stopper(loop, 4096) if buffered else Stopper(loop)

    async def main():
        ours, peer = make_pair(kind)
        # Room for more than one read of the largest size (130,560 bytes on
        # tidal's Protocol path): the first read fills its buffer.
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024 * 1024)
        tr, _ = await loop.connect_accepted_socket(lambda: proto, ours)
        # (In a task: paused, a Unix socket pair holds less than the payload.)
        sender = loop.create_task(sendall(loop, peer, payload))
        while proto.stopped_at is None:
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.02)
        assert proto.stopped_at == len(proto.data) > 0
        if loop_name == "tidal":
            # The stop came from a read that filled the buffer, after which
            # tidal would have read again.
            assert proto.stopped_at == (4096 if buffered else tr.max_size)
        if action == "pause":
            proto.armed = False
            proto.stopped_at = None
            tr.resume_reading()
            while len(proto.data) < len(payload):
                await asyncio.sleep(0.001)
            assert bytes(proto.data) == payload
            tr.close()
        elif action == "set_protocol":
            await heir.wait_data(len(payload) - proto.stopped_at)
            assert bytes(proto.data) + bytes(heir.data) == payload
            tr.close()
        else:
            await proto.lost
            sender.cancel()  # (the peer may still be sending into a closed socket)
        await asyncio.gather(sender, return_exceptions=True)
        peer.close()

    arun(main())


def test_a_read_that_fills_the_buffer_is_followed_at_once(loop_name, loop, arun, kind):
    # tidal only (asyncio reads once per poll, so its callbacks run in
    # between): 50 bytes waiting for a 7-byte buffer arrive in back-to-back
    # reads of one event, four at most, before what the first read scheduled.
    async def main():
        order: list[str] = []

        class Proto(BufferedRecorder):
            def buffer_updated(self, nbytes: int) -> None:
                super().buffer_updated(nbytes)
                order.append(f"read {nbytes}")
                loop.call_soon(order.append, "scheduled")

        proto = Proto(loop, size=7)
        tr, _, peer = await open_pair(loop, kind, proto)
        await settle()
        peer.send(b"x" * 20)
        while len(proto.data) < 20:
            await asyncio.sleep(0)
        await settle()
        if loop_name == "tidal":
            assert order[:4] == ["read 7", "read 7", "read 6", "scheduled"], order
        else:
            assert order[:2] == ["read 7", "scheduled"], order
        assert bytes(proto.data) == b"x" * 20
        order.clear()
        peer.send(b"y" * 50)
        while len(proto.data) < 70:
            await asyncio.sleep(0)
        await settle()
        if loop_name == "tidal":
            assert order[:5] == ["read 7"] * 4 + ["scheduled"], order
        else:
            assert order[:2] == ["read 7", "scheduled"], order
        assert bytes(proto.data) == b"x" * 20 + b"y" * 50
        tr.close()
        await proto.lost
        peer.close()

    arun(main())


def test_set_protocol_switches_read_path(loop, arun, kind):
    async def main():
        first = Recorder(loop)
        tr, _, peer = await open_pair(loop, kind, first)
        await sendall(loop, peer, b"to the first")
        await first.wait_data(12)
        second = BufferedRecorder(loop, size=5)
        tr.set_protocol(second)
        assert tr.get_protocol() is second
        await sendall(loop, peer, b"to the second one")
        peer.shutdown(socket.SHUT_WR)
        await second.lost
        assert bytes(first.data) == b"to the first"
        assert bytes(second.data) == b"to the second one"
        assert not first.lost.done()
        peer.close()

    arun(main())


@pytest.mark.parametrize(
    "failing, message",
    [
        ("data_received", "Fatal error: protocol.data_received() call failed."),
        ("eof_received", "Fatal error: protocol.eof_received() call failed."),
    ],
)
def test_protocol_errors_are_fatal(loop, arun, loop_errors, failing, message):
    class Failing(Recorder):
        pass

    def boom(self, *args):
        raise ZeroDivisionError("boom")

    setattr(Failing, failing, boom)

    async def main():
        proto = Failing(loop)
        tr, _, peer = await open_pair(loop, "unix", proto)
        await sendall(loop, peer, b"x")
        if failing == "eof_received":
            peer.shutdown(socket.SHUT_WR)
        exc = await proto.lost
        assert isinstance(exc, ZeroDivisionError)
        assert tr.is_closing()
        peer.close()

    arun(main())
    assert [ctx["message"] for ctx in loop_errors] == [message]
    assert isinstance(loop_errors[0]["exception"], ZeroDivisionError)
    assert loop_errors[0]["transport"] is not None
    loop_errors.clear()


@pytest.mark.parametrize(
    "failing, message, exc_type",
    [
        ("empty", "Fatal error: protocol.get_buffer() call failed.", RuntimeError),
        ("get_buffer", "Fatal error: protocol.get_buffer() call failed.", ZeroDivisionError),
        (
            "buffer_updated",
            "Fatal error: protocol.buffer_updated() call failed.",
            ZeroDivisionError,
        ),
    ],
)
def test_buffered_protocol_errors_are_fatal(loop, arun, loop_errors, failing, message, exc_type):
    class Failing(BufferedRecorder):
        def get_buffer(self, sizehint):
            if failing == "empty":
                return bytearray()
            if failing == "get_buffer":
                raise ZeroDivisionError
            return super().get_buffer(sizehint)

        def buffer_updated(self, nbytes):
            if failing == "buffer_updated":
                raise ZeroDivisionError
            super().buffer_updated(nbytes)

    async def main():
        proto = Failing(loop)
        _, _, peer = await open_pair(loop, "tcp", proto)
        await sendall(loop, peer, b"x")
        exc = await proto.lost
        assert isinstance(exc, exc_type)
        if failing == "empty":
            assert str(exc) == "get_buffer() returned an empty buffer"
        peer.close()

    arun(main())
    assert [ctx["message"] for ctx in loop_errors] == [message]
    loop_errors.clear()


def test_eof_received_true_keeps_transport_open(loop, arun, kind):
    async def main():
        proto = Recorder(loop)
        proto.keep_open = True
        tr, _, peer = await open_pair(loop, kind, proto)
        await sendall(loop, peer, b"request")
        peer.shutdown(socket.SHUT_WR)
        await proto.eof
        assert not tr.is_closing()
        tr.write(b"response after the peer's EOF")
        tr.close()
        assert await recv_until_eof(loop, peer) == b"response after the peer's EOF"
        assert await proto.lost is None
        assert proto.events == ["made", "data", "eof", "lost"]
        peer.close()

    arun(main())


def test_pause_resume_reading(loop, arun, kind):
    async def main():
        tr, proto, peer = await open_pair(loop, kind)
        assert tr.is_reading()
        tr.pause_reading()
        tr.pause_reading()  # idempotent
        assert not tr.is_reading()
        await sendall(loop, peer, b"held back")
        await asyncio.sleep(0.05)
        assert proto.data == b""
        tr.resume_reading()
        tr.resume_reading()  # idempotent
        assert tr.is_reading()
        assert await proto.wait_data(9) == b"held back"
        tr.close()
        assert not tr.is_reading()
        tr.pause_reading()  # no-ops once closing
        tr.resume_reading()
        assert not tr.is_reading()
        await proto.lost
        peer.close()

    arun(main())


def test_a_transports_fd_is_refused_to_others(loop, arun):
    """add_reader/add_writer/remove_reader/remove_writer and sock_recv on the fd
    of a stream transport raise before it starts reading, while it reads and
    while it is paused, and not once it closes (asyncio's
    _ensure_fd_no_transport).  tidal knows a reading transport by its reader
    entry, with no weak reference of its own."""
    ours, peer = make_pair("tcp")
    fd = ours.fileno()

    def refusals() -> list[str]:
        calls = [
            lambda: loop.add_reader(fd, print),
            lambda: loop.add_writer(fd, print),
            lambda: loop.remove_reader(fd),
            lambda: loop.remove_writer(fd),
        ]
        found = []
        for call in calls:
            try:
                call()
            except RuntimeError as exc:
                found.append(str(exc))
        return found

    class Early(Recorder):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self.early = refusals()  # before reading starts

    async def main():
        proto = Early(loop)
        tr, _ = await loop.connect_accepted_socket(lambda: proto, ours)
        # (Its repr then said it was not reading yet.)
        assert len(proto.early) == 4
        assert all(e.startswith(f"File descriptor {fd} is used by transport <") for e in proto.early)
        assert refusals() == [f"File descriptor {fd} is used by transport {tr!r}"] * 4
        with pytest.raises(RuntimeError, match="^File descriptor .* is used by transport"):
            await loop.sock_recv(ours, 1)
        tr.pause_reading()
        assert refusals() == [f"File descriptor {fd} is used by transport {tr!r}"] * 4
        tr.resume_reading()
        await sendall(loop, peer, b"still read")
        assert await proto.wait_data(10) == b"still read"
        tr.close()
        assert refusals() == []  # closing: allowed, and nothing is registered
        assert not loop.remove_reader(fd)
        await proto.lost
        peer.close()

    arun(main())


def test_a_read_queued_before_reading_restarts_waits_for_the_next_poll(loop, arun, kind):
    """Reading paused and resumed by a callback that runs first in the turn
    where the transport's read was queued: that read is dropped, as asyncio
    drops its cancelled reader Handle, and the data comes after the next poll."""

    async def main():
        tr, proto, peer = await open_pair(loop, kind)
        await settle()
        order: list[str] = []
        data_received = proto.data_received

        def record(data: bytes) -> None:
            order.append("data")
            data_received(data)

        proto.data_received = record

        def first() -> None:
            tr.pause_reading()
            tr.resume_reading()
            order.append("first")
            loop.call_soon(order.append, "next turn")

        peer.send(b"x")
        # The byte has arrived before the loop's next poll: that poll queues
        # the read, after `first`.
        assert select.select([tr.get_extra_info("socket").fileno()], [], [], 5)[0]
        loop.call_soon(first)
        await proto.wait_data(1)
        assert order == ["first", "next turn", "data"]
        tr.close()
        peer.close()

    arun(main())


_read_var: contextvars.ContextVar[Any] = contextvars.ContextVar("_read_var", default="unset")


def test_reads_run_in_a_context_of_their_own(loop, arun, kind):
    """data_received runs in a copy of the context reading started (or was
    resumed) in, one per transport, which keeps what a read sets for the next
    (asyncio's reader Handle's context)."""

    class Seeing(Recorder):
        def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
            super().__init__(loop)
            self.seen: list[Any] = []

        def data_received(self, data: bytes) -> None:
            self.seen.append(_read_var.get())
            _read_var.set(data)
            super().data_received(data)

    async def main():
        _read_var.set("outer")
        one, two = Seeing(loop), Seeing(loop)
        tr1, _, peer1 = await open_pair(loop, kind, one)
        tr2, _, peer2 = await open_pair(loop, kind, two)
        await sendall(loop, peer1, b"1")
        await one.wait_data(1)
        await sendall(loop, peer1, b"2")
        await one.wait_data(2)
        await sendall(loop, peer2, b"3")
        await two.wait_data(1)
        tr1.pause_reading()
        _read_var.set("resumer")
        tr1.resume_reading()
        await sendall(loop, peer1, b"4")
        await one.wait_data(3)
        assert one.seen == ["outer", b"1", "resumer"]
        assert two.seen == ["outer"]
        assert _read_var.get() == "resumer"
        for tr in (tr1, tr2):
            tr.close()
        peer1.close()
        peer2.close()

    arun(main())


def test_data_after_close_is_not_delivered(loop, arun, kind):
    async def main():
        tr, proto, peer = await open_pair(loop, kind)
        tr.close()
        await sendall(loop, peer, b"too late")
        assert await proto.lost is None
        assert proto.data == b""
        peer.close()

    arun(main())


# ----------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------


class _Bytes(bytes):
    pass


def test_write_types(loop, arun, kind):
    async def main():
        tr, proto, peer = await open_pair(loop, kind)
        with pytest.raises(TypeError, match="data argument must be a bytes-like object, not 'str'"):
            tr.write("text")
        with pytest.raises(TypeError, match="not 'int'"):
            tr.write(42)
        tr.write(b"")  # nothing, no error
        tr.write(b"bytes,")
        tr.write(bytearray(b"bytearray,"))
        tr.write(memoryview(b"memoryview"))
        tr.write(_Bytes(b",subclass"))  # (not known by write()'s one type test)
        assert await recv_exactly(loop, peer, 35) == b"bytes,bytearray,memoryview,subclass"
        tr.close()
        await proto.lost
        peer.close()

    arun(main())


def test_writelines(loop, arun, kind):
    async def main():
        tr, proto, peer = await open_pair(loop, kind, small_buffers=True)
        tr.writelines([b"a", bytearray(b"b"), memoryview(b"c"), b""])
        tr.writelines([])
        assert await recv_exactly(loop, peer, 3) == b"abc"
        # While the socket is full, writelines queues (in order, after write).
        parts = [bytes([65 + i % 26]) * (1000 + i) for i in range(400)]
        tr.write(b"<" * BIG)
        tr.writelines(parts)
        tr.writelines(iter([b">"]))
        tr.close()
        data = await recv_until_eof(loop, peer)
        assert data == b"<" * BIG + b"".join(parts) + b">"
        assert await proto.lost is None
        peer.close()

    arun(main())


def test_write_eof_half_close(loop, arun, kind):
    async def main():
        tr, proto, peer = await open_pair(loop, kind)
        assert tr.can_write_eof()
        tr.write(b"last words")
        tr.write_eof()
        tr.write_eof()  # idempotent
        assert not tr.is_closing()
        with pytest.raises(RuntimeError, match=r"Cannot call write\(\) after write_eof\(\)"):
            tr.write(b"more")
        assert await recv_until_eof(loop, peer) == b"last words"
        # Still reading: the other direction is open.
        await sendall(loop, peer, b"reply")
        assert await proto.wait_data(5) == b"reply"
        peer.close()
        assert await proto.lost is None
        assert proto.events == ["made", "data", "eof", "lost"]

    arun(main())


def test_write_eof_waits_for_the_queue(loop, arun, kind):
    async def main():
        tr, proto, peer = await open_pair(loop, kind, small_buffers=True)
        tr.write(b"q" * BIG)
        assert tr.get_write_buffer_size() > 0
        tr.write_eof()
        data = await recv_until_eof(loop, peer)
        assert len(data) == BIG and data == b"q" * BIG
        tr.close()
        assert await proto.lost is None
        peer.close()

    arun(main())


def test_write_buffer_limits(loop, arun):
    async def main():
        tr, proto, peer = await open_pair(loop, "unix")
        assert tr.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
        tr.set_write_buffer_limits(high=1000)
        assert tr.get_write_buffer_limits() == (250, 1000)
        tr.set_write_buffer_limits(low=100)
        assert tr.get_write_buffer_limits() == (100, 400)
        tr.set_write_buffer_limits(high=0)
        assert tr.get_write_buffer_limits() == (0, 0)
        with pytest.raises(ValueError, match=r"high \(1\) must be >= low \(2\) must be >= 0"):
            tr.set_write_buffer_limits(high=1, low=2)
        with pytest.raises(ValueError, match=r"high \(-4\) must be >= low \(-1\) must be >= 0"):
            tr.set_write_buffer_limits(high=-4, low=-1)
        tr.set_write_buffer_limits()
        assert tr.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
        tr.close()
        await proto.lost
        peer.close()

    arun(main())


def test_pause_and_resume_writing(loop, arun, kind):
    async def main():
        tr, proto, peer = await open_pair(loop, kind, small_buffers=True)
        tr.set_write_buffer_limits(high=64 * 1024, low=16 * 1024)
        chunk = b"w" * 16 * 1024
        written = 0
        while not proto.pauses:
            tr.write(chunk)
            written += len(chunk)
            assert written < 64 * 1024 * 1024, "pause_writing never came"
        assert proto.pauses == 1
        assert tr.get_write_buffer_size() > 64 * 1024
        tr.write(chunk)  # still accepted while paused (the protocol's choice)
        written += len(chunk)
        assert proto.pauses == 1
        # Lowering the limits under a full buffer does not pause twice;
        # raising high above the buffer does not resume by itself.
        tr.set_write_buffer_limits(high=32 * 1024)
        assert proto.pauses == 1 and proto.resumes == 0
        got = await recv_exactly(loop, peer, written)
        assert got == chunk * (written // len(chunk))
        await settle()
        assert proto.resumes == 1
        assert tr.get_write_buffer_size() == 0
        tr.set_write_buffer_limits(high=0)  # empty buffer: no pause
        assert proto.pauses == 1
        tr.close()
        await proto.lost
        peer.close()

    arun(main())


def test_pause_writing_on_limit_change(loop, arun):
    async def main():
        tr, proto, peer = await open_pair(loop, "unix", small_buffers=True)
        tr.write(b"x" * BIG)  # one write: above the default high mark
        assert proto.pauses == 1
        tr.abort()
        await proto.lost
        proto2 = Recorder(loop)
        tr2, _, peer2 = await open_pair(loop, "unix", proto2, small_buffers=True)
        tr2.set_write_buffer_limits(high=BIG * 2)
        tr2.write(b"x" * BIG)
        assert proto2.pauses == 0
        tr2.set_write_buffer_limits(high=1024)
        assert proto2.pauses == 1
        tr2.abort()
        await proto2.lost
        peer.close()
        peer2.close()

    arun(main())


@pytest.mark.parametrize("which", ["pause_writing", "resume_writing"])
def test_flow_control_callback_errors_are_reported(loop, arun, loop_errors, which):
    class Failing(Recorder):
        pass

    def boom(self):
        raise ZeroDivisionError

    setattr(Failing, which, boom)

    async def main():
        proto = Failing(loop)
        tr, _, peer = await open_pair(loop, "unix", proto, small_buffers=True)
        tr.write(b"x" * BIG)
        assert await recv_exactly(loop, peer, BIG)
        await settle()
        tr.close()
        await proto.lost
        peer.close()

    arun(main())
    assert [ctx["message"] for ctx in loop_errors] == [f"protocol.{which}() failed"]
    assert isinstance(loop_errors[0]["exception"], ZeroDivisionError)
    loop_errors.clear()


def test_many_small_writes_while_blocked(loop, loop_name, arun, kind):
    # asyncio 3.12+ sums its whole write queue on every write (quadratic):
    # fewer writes there keep the test short.  tidal keeps a running count.
    count = 20000 if loop_name == "tidal" else 4000

    async def main():
        tr, proto, peer = await open_pair(loop, kind, small_buffers=True)
        tr.write(b"-" * BIG)
        expected = [b"-" * BIG]
        for i in range(count):
            piece = b"%d," % i
            if i % 3 == 0:
                piece = bytearray(piece)
            elif i % 3 == 1:
                piece = memoryview(piece)
            tr.write(piece)
            expected.append(bytes(piece))
            if i % 997 == 0:
                big = bytes([i % 251]) * 70000
                tr.write(big)
                expected.append(big)
        size = tr.get_write_buffer_size()
        assert size > 0
        tr.close()
        assert tr.is_closing()
        data = await recv_until_eof(loop, peer)
        assert data == b"".join(expected)
        assert await proto.lost is None
        peer.close()

    arun(main())


def test_get_write_buffer_size_counts_queued_bytes(loop, arun):
    async def main():
        tr, proto, peer = await open_pair(loop, "unix", small_buffers=True)
        assert tr.get_write_buffer_size() == 0
        tr.write(b"a" * BIG)
        first = tr.get_write_buffer_size()
        assert 0 < first <= BIG
        tr.write(b"b" * 100)
        tr.write(b"c" * 100000)
        tr.writelines([b"d" * 10, b"e" * 10])
        assert tr.get_write_buffer_size() == first + 100 + 100000 + 20
        tr.abort()
        assert tr.get_write_buffer_size() == 0
        assert await proto.lost is None
        peer.close()

    arun(main())


# ----------------------------------------------------------------------
# Closing
# ----------------------------------------------------------------------


def test_close_with_pending_data_delivers_it(loop, arun, kind):
    async def main():
        tr, proto, peer = await open_pair(loop, kind, small_buffers=True)
        payload = bytes(range(256)) * (BIG // 256)
        tr.write(payload)
        assert tr.get_write_buffer_size() > 0
        tr.close()
        tr.close()  # idempotent
        assert tr.is_closing()
        await settle()
        assert not proto.lost.done()  # not before the queue is sent
        assert await recv_until_eof(loop, peer) == payload
        assert await proto.lost is None
        peer.close()

    arun(main())


def test_abort_drops_queue_and_closes(loop, arun, kind):
    async def main():
        tr, proto, peer = await open_pair(loop, kind, small_buffers=True)
        tr.write(b"z" * BIG)
        tr.abort()
        assert tr.is_closing()
        assert tr.get_write_buffer_size() == 0
        assert await proto.lost is None
        try:
            data = await recv_until_eof(loop, peer)
        except ConnectionResetError:
            data = b""
        assert len(data) < BIG
        tr.abort()  # after the fact: nothing
        tr.close()
        peer.close()

    arun(main())


def test_write_after_connection_lost_warns_after_five(loop, arun, kind, caplog):
    async def main():
        tr, proto, peer = await open_pair(loop, kind)
        tr.close()
        await proto.lost
        with caplog.at_level("WARNING", logger="asyncio"):
            for _ in range(4):
                tr.write(b"x")
            assert "socket.send() raised exception." not in caplog.text
            tr.write(b"x")
            assert caplog.text.count("socket.send() raised exception.") == 1
        peer.close()

    arun(main())


def test_peer_reset_mid_write(loop, arun, loop_errors, kind):
    async def main():
        tr, proto, peer = await open_pair(loop, kind, small_buffers=True)
        tr.write(b"r" * BIG)
        await recv(loop, peer)  # some of it arrived: we are mid-write
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()  # RST
        exc = await proto.lost
        assert isinstance(exc, (ConnectionResetError, BrokenPipeError)), exc
        assert tr.is_closing()
        # The loop is fine, and no one was bothered with an ordinary reset.
        assert await asyncio.sleep(0.01, "alive") == "alive"

    arun(main())
    assert loop_errors == []


def test_peer_reset_while_reading(loop, arun, loop_errors):
    async def main():
        tr, proto, peer = await open_pair(loop, "tcp")
        tr.write(b"unread by the peer")
        await asyncio.sleep(0.01)
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()
        exc = await proto.lost
        assert exc is None or isinstance(exc, ConnectionResetError), exc

    arun(main())
    assert loop_errors == []


def test_repr(loop, arun):
    async def main():
        tr, proto, peer = await open_pair(loop, "unix", small_buffers=True)
        assert re.fullmatch(r"<\w+ fd=\d+ read=polling write=<idle, bufsize=0>>", repr(tr))
        tr.pause_reading()
        assert "read=idle" in repr(tr)
        tr.write(b"x" * BIG)
        assert re.fullmatch(r"<\w+ fd=\d+ read=idle write=<polling, bufsize=\d+>>", repr(tr))
        tr.close()
        assert re.fullmatch(
            r"<\w+ closing fd=\d+ read=idle write=<polling, bufsize=\d+>>", repr(tr)
        )
        tr.abort()
        await proto.lost
        assert re.fullmatch(r"<\w+ closed fd=\d+>", repr(tr))
        peer.close()

    arun(main())


def test_unclosed_transport_warns(loop, arun):
    held: list[Any] = []

    async def main():
        tr, proto, peer = await open_pair(loop, "unix")
        tr.pause_reading()  # the loop no longer holds it
        proto.transport = None  # no cycle: dropping `tr` frees it at once
        held.extend((tr, peer))  # not returned: the task's result would keep it

    arun(main())
    gc.collect()
    with pytest.warns(ResourceWarning, match="unclosed transport"):
        del held[0]
        gc.collect()
    held[0].close()


# ----------------------------------------------------------------------
# tidal only: guarantees asyncio does not make (or makes only on some versions)
# ----------------------------------------------------------------------


def test_queued_mutable_buffers_are_copied(loop, loop_name, arun):
    if loop_name == "asyncio":
        pytest.skip("asyncio 3.12+ queues a bytearray by reference (mutation shows)")

    async def main():
        tr, proto, peer = await open_pair(loop, "unix", small_buffers=True)
        tr.write(b"." * BIG)
        small = bytearray(b"small")
        large = bytearray(b"L" * 100000)
        view = memoryview(bytearray(b"V" * 100000))
        tr.write(small)
        tr.write(large)
        tr.write(view)
        small[:] = b"XXXXX"
        large[:10] = b"X" * 10
        view[:10] = b"X" * 10
        tr.close()
        data = await recv_until_eof(loop, peer)
        assert data == b"." * BIG + b"small" + b"L" * 100000 + b"V" * 100000
        await proto.lost
        peer.close()

    arun(main())


def test_non_byte_memoryviews(loop, loop_name, arun):
    if loop_name == "asyncio":
        pytest.skip("asyncio slices a partly sent memoryview by items, not bytes")

    async def main():
        tr, proto, peer = await open_pair(loop, "unix", small_buffers=True)
        ints = array.array("i", range(300000))
        tr.write(memoryview(ints))  # partly sent, rest queued: counted in bytes
        assert tr.get_write_buffer_size() <= len(ints) * ints.itemsize
        tr.writelines([memoryview(array.array("h", [1, 2, 3]))])
        tr.close()
        data = await recv_until_eof(loop, peer)
        assert data == ints.tobytes() + array.array("h", [1, 2, 3]).tobytes()
        await proto.lost
        peer.close()

    arun(main())


def test_writelines_type_error(loop, loop_name, arun):
    if loop_name == "asyncio" and sys.version_info < (3, 12):
        pytest.skip("asyncio 3.11 joins first: the error is bytes.join's")

    async def main():
        tr, proto, peer = await open_pair(loop, "unix")
        with pytest.raises(TypeError):
            tr.writelines([b"ok", "not ok"])
        tr.close()
        await proto.lost
        peer.close()

    arun(main())


# ----------------------------------------------------------------------
# 100 MB through flow control to a slow reader
# ----------------------------------------------------------------------


class Pusher(asyncio.Protocol):
    """Writes `total` bytes as fast as flow control allows, then closes."""

    CHUNK = 256 * 1024

    def __init__(self, loop: asyncio.AbstractEventLoop, total: int) -> None:
        self.total = total
        self.sent = 0
        self.index = 0
        self.paused = False
        self.pauses = 0
        self.max_buffer = 0
        self.digest = hashlib.sha256()
        self.lost = loop.create_future()
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.push()

    def push(self) -> None:
        tr = self.transport
        while not self.paused and self.sent < self.total:
            # Every chunk distinct: a lost, repeated or reordered chunk shows.
            n = min(self.CHUNK, self.total - self.sent)
            chunk = (struct.pack(">Q", self.index) * (self.CHUNK // 8))[:n]
            self.index += 1
            tr.write(chunk)
            self.digest.update(chunk)
            self.sent += n
            self.max_buffer = max(self.max_buffer, tr.get_write_buffer_size())
        if self.sent >= self.total and not tr.is_closing():
            tr.close()

    def pause_writing(self) -> None:
        self.paused = True
        self.pauses += 1

    def resume_writing(self) -> None:
        self.paused = False
        self.push()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost.set_result(exc)


def test_100mb_through_flow_control_to_slow_reader(loop, arun, kind):
    total = 100 * 1024 * 1024

    async def main():
        ours, peer = make_pair(kind, small_buffers=True)
        proto = Pusher(loop, total)
        tr, _ = await loop.connect_accepted_socket(lambda: proto, ours)
        high = tr.get_write_buffer_limits()[1]
        digest = hashlib.sha256()
        received = 0
        reads = 0
        while True:
            data = await recv(loop, peer, 256 * 1024)
            if not data:
                break
            digest.update(data)
            received += len(data)
            reads += 1
            if received < 4 * 1024 * 1024 and reads % 4 == 0:
                await asyncio.sleep(0.002)  # slow at first: the writer must wait
        assert await proto.lost is None
        assert received == total
        assert digest.hexdigest() == proto.digest.hexdigest()
        assert proto.pauses > 0
        assert proto.max_buffer <= high + Pusher.CHUNK, (proto.max_buffer, high)
        peer.close()

    arun(main(), timeout=60)
