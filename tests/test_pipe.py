"""Pipe transports (connect_read_pipe / connect_write_pipe) on both loops.

Real pipes, FIFOs, ptys and socketpairs; every test runs on asyncio's loop and
on tidal's and expects the same callbacks in the same order.  The few that
check something asyncio does not do (BufferedProtocol, fd ownership) say so
and run on tidal only.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import os
import socket
import stat
import sys
import tty
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="Unix pipes")


class ReadProto(asyncio.Protocol):
    """Records every callback; `done` resolves on connection_lost."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.events: list[Any] = []
        self.data = bytearray()
        self.transport: Any = None
        self.done = loop.create_future()
        self.got_data = asyncio.Event()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.events.append("made")

    def data_received(self, data: bytes) -> None:
        assert type(data) is bytes
        if not self.events or self.events[-1] != "data":
            self.events.append("data")
        self.data += data
        self.got_data.set()

    def eof_received(self) -> None:
        self.events.append("eof")

    def connection_lost(self, exc: BaseException | None) -> None:
        self.events.append("lost")
        self.done.set_result(exc)


class WriteProto(asyncio.BaseProtocol):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.events: list[str] = []
        self.transport: Any = None
        self.done = loop.create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.events.append("made")

    def pause_writing(self) -> None:
        self.events.append("pause")

    def resume_writing(self) -> None:
        self.events.append("resume")

    def connection_lost(self, exc: BaseException | None) -> None:
        self.events.append("lost")
        self.done.set_result(exc)


async def _turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def test_read_pipe_data_then_eof(loop, arun):
    rfd, wfd = os.pipe()
    rpipe = open(rfd, "rb", buffering=0)

    async def main():
        proto = ReadProto(loop)
        tr, p = await loop.connect_read_pipe(lambda: proto, rpipe)
        assert p is proto and proto.transport is tr
        assert proto.events == ["made"]
        assert tr.get_extra_info("pipe") is rpipe
        assert tr.is_reading() and not tr.is_closing()
        os.write(wfd, b"hello ")
        await proto.got_data.wait()
        os.write(wfd, b"world")
        os.close(wfd)
        exc = await proto.done
        assert exc is None
        assert bytes(proto.data) == b"hello world"
        assert proto.events == ["made", "data", "eof", "lost"]
        assert tr.is_closing()
        assert rpipe.closed  # the transport closes the pipe object

    arun(main())


def test_write_pipe_to_read_pipe_echo(loop, arun):
    rfd, wfd = os.pipe()
    payload = os.urandom(3 * 1024 * 1024 + 17)  # far more than a pipe holds

    async def main():
        rproto = ReadProto(loop)
        wproto = WriteProto(loop)
        rtr, _ = await loop.connect_read_pipe(lambda: rproto, open(rfd, "rb", buffering=0))
        wtr, _ = await loop.connect_write_pipe(lambda: wproto, open(wfd, "wb", buffering=0))
        assert wtr.can_write_eof()
        wtr.write(payload[:10])
        wtr.write(bytearray(payload[10:100]))
        wtr.write(memoryview(payload)[100:1000])
        wtr.writelines([payload[1000:5000], payload[5000:]])
        wtr.write_eof()
        assert wtr.is_closing()
        wtr.write(b"dropped")  # after write_eof: silently dropped, as asyncio
        assert await wproto.done is None
        assert await rproto.done is None
        assert bytes(rproto.data) == payload
        assert rproto.events == ["made", "data", "eof", "lost"]
        assert wproto.events[0] == "made" and wproto.events[-1] == "lost"
        assert rtr.is_closing()

    arun(main())


def test_write_then_close_flushes_queue_first(loop, arun):
    rfd, wfd = os.pipe()
    payload = b"x" * (1024 * 1024)

    async def main():
        wproto = WriteProto(loop)
        wtr, _ = await loop.connect_write_pipe(lambda: wproto, open(wfd, "wb", buffering=0))
        wtr.write(payload)
        assert wtr.get_write_buffer_size() > 0  # the pipe took at most its capacity
        wtr.close()
        assert wtr.is_closing()
        await _turns()
        assert not wproto.done.done()  # still flushing
        rproto = ReadProto(loop)
        await loop.connect_read_pipe(lambda: rproto, open(rfd, "rb", buffering=0))
        assert await wproto.done is None
        await rproto.done
        assert len(rproto.data) == len(payload)
        assert wtr.get_write_buffer_size() == 0

    arun(main())


def test_fifo(loop, arun, tmp_path):
    path = tmp_path / "fifo"
    os.mkfifo(path)
    # Non-blocking opens: the read end first (a writer needs a reader to open).
    rfd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    wfd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    payload = os.urandom(512 * 1024)

    async def main():
        rproto = ReadProto(loop)
        wproto = WriteProto(loop)
        await loop.connect_read_pipe(lambda: rproto, open(rfd, "rb", buffering=0))
        wtr, _ = await loop.connect_write_pipe(lambda: wproto, open(wfd, "wb", buffering=0))
        wtr.write(payload)
        wtr.close()
        assert await wproto.done is None
        assert await rproto.done is None
        assert bytes(rproto.data) == payload
        assert rproto.events == ["made", "data", "eof", "lost"]

    arun(main())
    assert stat.S_ISFIFO(os.stat(path).st_mode)


def test_pty_read_then_slave_closed(loop, arun):
    master, slave = os.openpty()
    tty.setraw(slave)  # no echo, no newline translation

    async def main():
        proto = ReadProto(loop)
        tr, _ = await loop.connect_read_pipe(lambda: proto, open(master, "rb", buffering=0))
        os.write(slave, b"from the pty")
        while len(proto.data) < 12:
            proto.got_data.clear()
            await proto.got_data.wait()
        assert bytes(proto.data) == b"from the pty"
        os.close(slave)
        # Linux: the master then reads EIO.  Not reported to the exception
        # handler (the fixture would fail the test); connection_lost gets it.
        exc = await proto.done
        assert isinstance(exc, OSError) and exc.errno == errno.EIO, exc
        assert proto.events[-1] == "lost"
        assert tr.is_closing()

    arun(main())


def test_pty_write_side(loop, arun):
    master, slave = os.openpty()
    tty.setraw(slave)

    async def main():
        wproto = WriteProto(loop)
        wtr, _ = await loop.connect_write_pipe(lambda: wproto, open(slave, "wb", buffering=0))
        assert wtr.get_extra_info("pipe") is not None
        wtr.write(b"to the pty")
        got = b""
        while len(got) < 10:
            await asyncio.sleep(0.01)
            got += await loop.run_in_executor(None, os.read, master, 1024)
        assert got == b"to the pty"
        wtr.close()
        assert await wproto.done is None
        assert wproto.events == ["made", "lost"]

    try:
        arun(main())
    finally:
        os.close(master)


def test_regular_file_refused(loop, arun, tmp_path):
    path = tmp_path / "regular"
    path.write_bytes(b"data")
    made: list[Any] = []

    async def main():
        with open(path, "rb") as f:
            with pytest.raises(ValueError, match=r"^Pipe transport is for pipes/sockets only\.$"):
                await loop.connect_read_pipe(lambda: made.append(1) or asyncio.Protocol(), f)
        with open(path, "wb") as f:
            with pytest.raises(
                ValueError,
                match=r"^Pipe transport is only for pipes, sockets and character devices$",
            ):
                await loop.connect_write_pipe(lambda: made.append(2) or asyncio.Protocol(), f)

    arun(main())
    gc.collect()  # a half-built transport must not warn (filterwarnings = error)
    assert made == [1, 2]  # the factory is called first, as asyncio


def test_reader_closing_with_nothing_queued(loop, arun):
    rfd, wfd = os.pipe()

    async def main():
        wproto = WriteProto(loop)
        wtr, _ = await loop.connect_write_pipe(lambda: wproto, open(wfd, "wb", buffering=0))
        wtr.write(b"some")
        await _turns()
        os.close(rfd)
        # Noticed through the reader registered on the write end.
        assert await asyncio.wait_for(wproto.done, 5) is None
        assert wproto.events == ["made", "lost"]
        assert wtr.is_closing()
        wtr.write(b"dropped")  # no error once lost

    arun(main())


def test_socket_peer_closing(loop, arun):
    rsock, wsock = socket.socketpair()

    async def main():
        wproto = WriteProto(loop)
        wtr, _ = await loop.connect_write_pipe(lambda: wproto, open(wsock.detach(), "wb", 0))
        wtr.write(b"1")
        rsock.setblocking(False)
        assert await loop.sock_recv(rsock, 10) == b"1"
        rsock.close()
        assert await asyncio.wait_for(wproto.done, 5) is None

    arun(main())


def test_flow_control_with_nobody_reading(loop, arun):
    rfd, wfd = os.pipe()

    async def main():
        wproto = WriteProto(loop)
        wtr, _ = await loop.connect_write_pipe(lambda: wproto, open(wfd, "wb", buffering=0))
        assert wtr.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
        with pytest.raises(ValueError):
            wtr.set_write_buffer_limits(high=1, low=2)
        wtr.set_write_buffer_limits(high=100_000)
        assert wtr.get_write_buffer_limits() == (25_000, 100_000)
        chunk = b"y" * 16384
        for _ in range(64):  # 1 MiB; the pipe takes its 64 KiB, the rest queues
            wtr.write(chunk)
        await _turns()
        queued = wtr.get_write_buffer_size()
        assert queued > 100_000
        assert wproto.events == ["made", "pause"]  # paused once, never resumed
        # The reader goes away with data still queued: BrokenPipeError.
        os.close(rfd)
        exc = await asyncio.wait_for(wproto.done, 5)
        assert isinstance(exc, BrokenPipeError)
        assert wproto.events == ["made", "pause", "lost"]
        assert wtr.get_write_buffer_size() == 0

    arun(main())


def test_flow_control_resumes_when_drained(loop, arun):
    rfd, wfd = os.pipe()
    payload = os.urandom(2 * 1024 * 1024)

    async def main():
        wproto = WriteProto(loop)
        wtr, _ = await loop.connect_write_pipe(lambda: wproto, open(wfd, "wb", buffering=0))
        wtr.write(payload)
        assert wproto.events == ["made", "pause"]
        rproto = ReadProto(loop)
        await loop.connect_read_pipe(lambda: rproto, open(rfd, "rb", buffering=0))
        while "resume" not in wproto.events:
            await asyncio.sleep(0.001)
        assert wtr.get_write_buffer_size() <= 16 * 1024  # at or below the low mark
        wtr.close()
        await wproto.done
        await rproto.done
        assert bytes(rproto.data) == payload
        assert wproto.events == ["made", "pause", "resume", "lost"]

    arun(main())


def test_write_after_reader_gone_is_broken_pipe(loop, arun):
    rfd, wfd = os.pipe()

    async def main():
        wproto = WriteProto(loop)
        wtr, _ = await loop.connect_write_pipe(lambda: wproto, open(wfd, "wb", buffering=0))
        os.close(rfd)
        wtr.write(b"too late")  # os.write at once: EPIPE (Python ignores SIGPIPE)
        assert isinstance(await wproto.done, BrokenPipeError)
        for _ in range(3):
            wtr.write(b"more")  # counted and dropped

    arun(main())


def test_abort_drops_the_queue(loop, arun):
    rfd, wfd = os.pipe()

    async def main():
        wproto = WriteProto(loop)
        wtr, _ = await loop.connect_write_pipe(lambda: wproto, open(wfd, "wb", buffering=0))
        wtr.write(b"z" * 1024 * 1024)
        assert wtr.get_write_buffer_size() > 0
        wtr.abort()
        assert wtr.is_closing()
        assert wtr.get_write_buffer_size() == 0
        assert await wproto.done is None

    try:
        arun(main())
    finally:
        os.close(rfd)


def test_pause_and_resume_reading(loop, arun):
    rfd, wfd = os.pipe()

    async def main():
        proto = ReadProto(loop)
        tr, _ = await loop.connect_read_pipe(lambda: proto, open(rfd, "rb", buffering=0))
        tr.pause_reading()
        tr.pause_reading()  # idempotent
        assert not tr.is_reading()
        os.write(wfd, b"held back")
        await asyncio.sleep(0.05)
        assert proto.data == b""
        tr.resume_reading()
        tr.resume_reading()
        assert tr.is_reading()
        await proto.got_data.wait()
        assert proto.data == b"held back"
        tr.close()
        assert not tr.is_reading()
        assert await proto.done is None
        assert proto.events == ["made", "data", "lost"]  # close(): no eof_received

    try:
        arun(main())
    finally:
        os.close(wfd)


def test_pause_reading_in_connection_made(loop, arun):
    rfd, wfd = os.pipe()

    class Paused(ReadProto):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            transport.pause_reading()

    async def main():
        proto = Paused(loop)
        tr, _ = await loop.connect_read_pipe(lambda: proto, open(rfd, "rb", buffering=0))
        os.write(wfd, b"x")
        await asyncio.sleep(0.05)
        assert proto.data == b""
        tr.resume_reading()
        await proto.got_data.wait()
        tr.close()
        await proto.done

    try:
        arun(main())
    finally:
        os.close(wfd)


def test_unclosed_transport_warns(loop_factory):
    lp = loop_factory()
    rfd, wfd = os.pipe()
    rpipe = open(rfd, "rb", buffering=0)
    wpipe = open(wfd, "wb", buffering=0)

    async def main():
        r, _ = await lp.connect_read_pipe(asyncio.Protocol, rpipe)
        w, _ = await lp.connect_write_pipe(asyncio.BaseProtocol, wpipe)
        return r, w

    r, w = lp.run_until_complete(main())
    lp.close()
    assert "open" in repr(r) and "open" in repr(w)
    with pytest.warns(ResourceWarning, match="unclosed transport"):
        del r, w
        gc.collect()
    assert rpipe.closed and wpipe.closed


def test_cancelled_connect_closes_the_transport(loop, arun):
    rfd, wfd = os.pipe()
    rpipe = open(rfd, "rb", buffering=0)
    protos: list[ReadProto] = []

    def factory() -> ReadProto:
        protos.append(ReadProto(loop))
        return protos[-1]

    async def main():
        task = loop.create_task(loop.connect_read_pipe(factory, rpipe))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await protos[0].done is None
        assert rpipe.closed

    try:
        arun(main())
    finally:
        os.close(wfd)


# --- tidal only: things asyncio's pipe transports do not do -------------------


def test_tidal_fd_owned_by_transport(loop, loop_name, arun):
    if loop_name != "tidal":
        pytest.skip("asyncio does not record pipe transports as owners of their fd")
    rfd, wfd = os.pipe()

    async def main():
        proto = ReadProto(loop)
        tr, _ = await loop.connect_read_pipe(lambda: proto, open(rfd, "rb", buffering=0))
        with pytest.raises(RuntimeError, match="is used by transport"):
            loop.add_reader(rfd, lambda: None)
        tr.close()
        await proto.done
        assert rfd not in loop._transports

    try:
        arun(main())
    finally:
        os.close(wfd)


def test_tidal_buffered_protocol(loop, loop_name, arun):
    if loop_name != "tidal":
        pytest.skip("asyncio's pipe transport only calls data_received")
    rfd, wfd = os.pipe()

    class Buffered(asyncio.BufferedProtocol):
        def __init__(self) -> None:
            self.buf = bytearray(10)
            self.got = bytearray()
            self.done = loop.create_future()

        def get_buffer(self, sizehint: int) -> bytearray:
            return self.buf

        def buffer_updated(self, nbytes: int) -> None:
            self.got += self.buf[:nbytes]

        def connection_lost(self, exc: BaseException | None) -> None:
            self.done.set_result(exc)

    async def main():
        proto = Buffered()
        await loop.connect_read_pipe(lambda: proto, open(rfd, "rb", buffering=0))
        os.write(wfd, b"0123456789abcdefghij-")
        os.close(wfd)
        assert await proto.done is None
        assert proto.got == b"0123456789abcdefghij-"

    arun(main())


def test_text_pipe_object_accepted(loop, arun):
    # asyncio only needs fileno() and close(): a text wrapper works too.
    rfd, wfd = os.pipe()
    wpipe = open(wfd, "w", 1024, encoding="utf-8")

    async def main():
        wproto = WriteProto(loop)
        wtr, _ = await loop.connect_write_pipe(lambda: wproto, wpipe)
        wtr.write(b"raw bytes")
        wtr.close()
        await wproto.done
        assert os.read(rfd, 100) == b"raw bytes"

    try:
        arun(main())
    finally:
        os.close(rfd)
