"""Pipe transports: the loop's ``connect_read_pipe`` / ``connect_write_pipe``.

A pipe transport wraps one end of anything byte-stream shaped that is not a
regular file: a pipe, a FIFO, a socket, a pty or another character device.
Regular files are refused (ValueError, as asyncio) because they are always
"ready" and would make the loop spin.

Read side.  The fd is registered as a reader once the protocol's
``connection_made`` has run.  When it is readable the transport is called
directly by the loop (the reader handle is made once, at registration) and
reads into a buffer it owns and reuses, then hands the protocol an exact-size
``bytes``; a BufferedProtocol gets its own buffer filled instead.  A read of
0 bytes is EOF: ``eof_received`` and then ``connection_lost(None)``, one turn
later each, as asyncio does (a pipe cannot be half-closed, so the return value
of ``eof_received`` is not consulted).  EIO, which a pty master reads once the
slave side is closed, is an ordinary end, not an error to report.

Write side.  ``write`` tries ``os.write`` at once when nothing is queued; only
what the kernel did not take is queued and the fd registered as a writer.
Flow control is the usual pair of water marks: ``pause_writing`` above the
high mark, ``resume_writing`` once the queue is back at or below the low mark.
For a pipe or a socket the write end is also registered for *reading*: a write
end never becomes readable, but epoll reports an error (or, for a socket,
EOF) there when the reader goes away, so a transport that has nothing to write
still learns that its peer closed (``connection_lost(None)``, or
``connection_lost(BrokenPipeError())`` if data was still queued).

These functions take the loop as ``self``: ``_loop.py`` binds them as methods
of ``EventLoop``.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import stat
import warnings
from collections.abc import Callable
from typing import Any, TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from .._loop import EventLoop  # annotations only: _loop imports this module

from ._base import (
    call_handler,
    checked_write_buffer_limits,
    pause_protocol,
    pause_reading,
    repr_info,
    report_fatal_error,
    resume_protocol,
    resume_reading,
    start_connection,
    wait_connection_made,
)

logger = logging.getLogger("asyncio")

# Size of the buffer each read transport reuses for every read.  64 KiB is
# Linux's default pipe capacity, so one read normally empties the pipe; the
# 256 KiB asyncio reads at most would cost a quarter of a MiB per pipe (half a
# MiB per child with stdout and stderr) for nothing.
READ_BUFFER_SIZE = 64 * 1024

# Default high water mark of the write queue (low = high // 4), as asyncio.
DEFAULT_HIGH_WATER = 64 * 1024

# Writes after the pipe is lost are dropped; after this many, each one is
# logged (asyncio's constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES).
LOG_THRESHOLD_FOR_CONNLOST_WRITES = 5

_WOULD_BLOCK = (BlockingIOError, InterruptedError)

_ProtocolT = TypeVar("_ProtocolT", bound=asyncio.BaseProtocol)


def _pipe_fileno(pipe: Any, message: str) -> tuple[int, int]:
    """(fd, st_mode) of `pipe`, refusing what would always poll ready (regular files...)."""
    fileno = pipe.fileno()
    mode = os.fstat(fileno).st_mode
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)):
        raise ValueError(message)
    return fileno, mode


class _PipeEnd:
    """What the two pipe transports share: repr, finalization, the end of the line.

    (Mixed into each, before its asyncio base class; the fields are each
    class's slots.)
    """

    __slots__ = ()

    # The loop's map of the handlers that poll this end ("_readers" or
    # "_writers"): what repr() reports as polling.
    _polled_by: str

    _pipe: Any
    _fileno: int
    _loop: Any
    _io_counts: Any  # the loop's byte counts (_iocount.py)
    _protocol: Any
    _closing: bool

    def __repr__(self) -> str:
        info = repr_info(self, self._pipe is None, self._fileno)
        loop = self._loop
        if self._pipe is not None and loop is not None and not loop.is_closed():
            info.append("polling" if self._fileno in getattr(loop, self._polled_by) else "idle")
            info.extend(self._repr_buffer())
        elif self._pipe is not None:
            info.append("open")
        else:
            info.append("closed")
        return "<{}>".format(" ".join(info))

    def _repr_buffer(self) -> list[str]:
        return []

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        # As asyncio's: close the pipe but keep it (a close() that follows
        # runs its usual course; closing a closed file does nothing).
        if self._pipe is not None:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            self._pipe.close()

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol  # type: ignore[no-any-return]

    def is_closing(self) -> bool:
        return self._closing

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        try:
            self._protocol.connection_lost(exc)
        finally:
            loop = self._loop
            # Unregister before closing: once closed, the fd number can be reused.
            if loop._transports.get(self._fileno) is self:
                del loop._transports[self._fileno]
            self._pipe.close()
            self._pipe = None
            self._protocol = None
            self._loop = None


class ReadPipeTransport(_PipeEnd, asyncio.ReadTransport):
    """The read end of a pipe, FIFO, socket, pty or character device."""

    # "__dict__": asyncio's transports accept attributes, and code (CPython's
    # own test_subprocess) replaces pause_reading/resume_reading on the
    # instance; the fields below stay slots, so the read path does not pay.
    __slots__ = (
        "__dict__",
        "__weakref__",
        "_buffered",
        "_bufs",
        "_closing",
        "_fileno",
        "_io_counts",
        "_loop",
        "_lost",
        "_paused",
        "_pipe",
        "_protocol",
        "_view",
    )

    max_size = READ_BUFFER_SIZE
    _polled_by = "_readers"

    def __init__(
        self,
        loop: Any,
        pipe: Any,
        protocol: asyncio.BaseProtocol,
        waiter: asyncio.Future[Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        # Set first: __del__ reads it even when the checks below refuse the pipe.
        self._pipe: Any = None
        self._fileno, _ = _pipe_fileno(pipe, "Pipe transport is for pipes/sockets only.")
        extra = {} if extra is None else extra
        extra["pipe"] = pipe
        super().__init__(extra)
        self._loop = loop
        self._io_counts = loop._io_counts
        self._protocol: Any = protocol
        self._buffered = isinstance(protocol, asyncio.BufferedProtocol)
        self._closing = False
        self._paused = False
        self._lost = False
        view = memoryview(bytearray(self.max_size))
        self._view = view
        # os.readv wants a sequence of buffers: build the one-item list once.
        self._bufs = [view]
        os.set_blocking(self._fileno, False)
        self._pipe = pipe
        start_connection(self, self._fileno, protocol, self._start_reading, waiter)

    def _start_reading(self) -> None:
        if not self._paused and not self._closing:
            self._loop._add_reader(self._fileno, self._read_ready)

    # -- the read path -------------------------------------------------------

    def _read_ready(self) -> None:
        """The fd is readable: read into the reused buffer, hand over an exact-size copy."""
        if self._buffered:
            self._read_ready_buffered()
            return
        try:
            n = os.readv(self._fileno, self._bufs)
        except _WOULD_BLOCK:
            return
        except OSError as exc:
            self._fatal_error(exc, "Fatal read error on pipe transport")
            return
        if n:
            self._io_counts.read += n
            self._protocol.data_received(self._view[:n].tobytes())
        else:
            self._eof()

    def _read_ready_buffered(self) -> None:
        """BufferedProtocol: the kernel writes straight into the protocol's buffer."""
        protocol = self._protocol
        try:
            buf = protocol.get_buffer(-1)
            if not len(buf):
                raise RuntimeError("get_buffer() returned an empty buffer")
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.get_buffer() call failed.")
            return
        try:
            n = os.readv(self._fileno, [buf])
        except _WOULD_BLOCK:
            return
        except OSError as exc:
            self._fatal_error(exc, "Fatal read error on pipe transport")
            return
        if not n:
            self._eof()
            return
        self._io_counts.read += n
        try:
            protocol.buffer_updated(n)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.buffer_updated() call failed.")

    def _eof(self) -> None:
        loop = self._loop
        if loop.get_debug():
            logger.info("%r was closed by peer", self)
        self._closing = True
        self._lost = True
        loop._remove_reader(self._fileno)
        loop.call_soon(self._protocol.eof_received)
        loop.call_soon(self._call_connection_lost, None)

    # -- ReadTransport -------------------------------------------------------

    def is_reading(self) -> bool:
        return not self._paused and not self._closing

    def pause_reading(self) -> None:
        """Stop reading until resume_reading(); the kernel's pipe buffer then fills up."""
        pause_reading(self, self._fileno)

    def resume_reading(self) -> None:
        resume_reading(self)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol
        self._buffered = isinstance(protocol, asyncio.BufferedProtocol)

    def close(self) -> None:
        """Stop reading; connection_lost(None) follows on the next turn, then the pipe is closed."""
        if not self._closing:
            self._close(None)

    # -- endings -------------------------------------------------------------

    def _fatal_error(self, exc: BaseException, message: str) -> None:
        if isinstance(exc, OSError) and exc.errno == errno.EIO:
            # A pty master reads EIO once the slave is closed: an end, not a fault.
            if self._loop.get_debug():
                logger.debug("%r: %s", self, message, exc_info=True)
        else:
            call_handler(self, exc, message)
        self._close(exc)

    def _close(self, exc: BaseException | None) -> None:
        self._closing = True
        if self._lost:
            return
        self._lost = True
        self._loop._remove_reader(self._fileno)
        self._loop.call_soon(self._call_connection_lost, exc)


class WritePipeTransport(_PipeEnd, asyncio.Transport):
    """The write end of a pipe, FIFO, socket, pty or character device.

    A whole ``asyncio.Transport``, as asyncio's is: the read half
    (pause_reading, resume_reading, is_reading) raises NotImplementedError.
    """

    __slots__ = (
        "__dict__",  # as ReadPipeTransport's: asyncio's transports accept attributes
        "__weakref__",
        "_buffer",
        "_closing",
        "_conn_lost",
        "_fileno",
        "_high_water",
        "_io_counts",
        "_loop",
        "_lost",
        "_low_water",
        "_pipe",
        "_protocol",
        "_protocol_paused",
    )

    _polled_by = "_writers"

    def __init__(
        self,
        loop: Any,
        pipe: Any,
        protocol: asyncio.BaseProtocol,
        waiter: asyncio.Future[Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self._pipe: Any = None
        self._fileno, mode = _pipe_fileno(
            pipe, "Pipe transport is only for pipes, sockets and character devices"
        )
        extra = {} if extra is None else extra
        extra["pipe"] = pipe
        super().__init__(extra)
        self._loop = loop
        self._io_counts = loop._io_counts
        self._protocol: Any = protocol
        self._buffer = bytearray()
        self._conn_lost = 0
        self._closing = False  # close() or write_eof() was called
        self._lost = False  # connection_lost is scheduled (or done)
        self._protocol_paused = False
        self._high_water = DEFAULT_HIGH_WATER
        self._low_water = DEFAULT_HIGH_WATER // 4
        os.set_blocking(self._fileno, False)
        self._pipe = pipe
        # Watch for the reader going away (see the module docstring).  Not
        # for character devices: a tty is readable when input arrives.
        watch = stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)
        start_connection(
            self, self._fileno, protocol, self._start_watching if watch else None, waiter
        )

    def _repr_buffer(self) -> list[str]:
        return [f"bufsize={len(self._buffer)}"]

    def _start_watching(self) -> None:
        if not self._lost:
            self._loop._add_reader(self._fileno, self._read_ready)

    def _read_ready(self) -> None:
        """The write end polled readable or in error: the reader has gone."""
        if self._loop.get_debug():
            logger.info("%r was closed by peer", self)
        if self._buffer:
            self._close(BrokenPipeError())
        else:
            self._close(None)

    # -- the write path ------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Write at once what the pipe takes; queue the rest (pause_writing above high water)."""
        if type(data) is not bytes:  # the common case costs one type test
            if isinstance(data, (bytearray, memoryview)):
                # A flat byte view: len() is then the byte count os.write returns.
                data = memoryview(data).cast("B")
            elif not isinstance(data, bytes):
                raise TypeError(
                    f"data argument must be a bytes-like object, not {type(data).__name__!r}"
                )
        if not data:
            return
        if self._conn_lost or self._closing:
            if self._conn_lost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                logger.warning("pipe closed by peer or os.write(pipe, data) raised exception.")
            self._conn_lost += 1
            return
        buffer = self._buffer
        if not buffer:
            # Nothing queued: try the write now, no writer registration if it all goes.
            try:
                n = os.write(self._fileno, data)
            except _WOULD_BLOCK:
                n = 0
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._conn_lost += 1
                self._fatal_error(exc, "Fatal write error on pipe transport")
                return
            self._io_counts.written += n
            if n == len(data):
                return
            if n:
                data = memoryview(data)[n:]
            self._loop._add_writer(self._fileno, self._write_ready)
        buffer += data
        self._maybe_pause_protocol()

    def writelines(self, list_of_data: Any) -> None:
        """One write of the joined chunks: one syscall instead of one per chunk."""
        self.write(b"".join(list_of_data))

    def _write_ready(self) -> None:
        """The fd is writable: flush as much of the queue as the pipe takes."""
        buffer = self._buffer
        try:
            n = os.write(self._fileno, buffer)
        except _WOULD_BLOCK:
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            buffer.clear()
            self._conn_lost += 1
            self._loop._remove_writer(self._fileno)
            self._fatal_error(exc, "Fatal write error on pipe transport")
            return
        self._io_counts.written += n
        if n == len(buffer):
            buffer.clear()
            self._loop._remove_writer(self._fileno)
            self._maybe_resume_protocol()  # may write again
            if self._closing and not buffer and not self._lost:
                self._lost = True
                self._loop._remove_reader(self._fileno)
                self._call_connection_lost(None)
            return
        if n:
            # O(1): a bytearray drops a prefix by moving its start.
            del buffer[:n]
            self._maybe_resume_protocol()

    # -- flow control --------------------------------------------------------

    def _maybe_pause_protocol(self) -> None:
        if len(self._buffer) > self._high_water and not self._protocol_paused:
            pause_protocol(self)

    def _maybe_resume_protocol(self) -> None:
        if self._protocol_paused and len(self._buffer) <= self._low_water:
            resume_protocol(self)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (self._low_water, self._high_water)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._high_water, self._low_water = checked_write_buffer_limits(
            high, low, DEFAULT_HIGH_WATER
        )
        self._maybe_pause_protocol()

    def get_write_buffer_size(self) -> int:
        return len(self._buffer)

    # -- WriteTransport ------------------------------------------------------

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        """Close once the queue is flushed (a pipe's EOF is its closing)."""
        if self._closing:
            return
        assert self._pipe is not None, "the pipe is already closed"
        self._closing = True
        if not self._buffer and not self._lost:
            self._lost = True
            self._loop._remove_reader(self._fileno)
            self._loop.call_soon(self._call_connection_lost, None)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def close(self) -> None:
        """Flush what is queued, then close: write_eof is all a pipe needs."""
        if self._pipe is not None and not self._closing:
            self.write_eof()

    def abort(self) -> None:
        """Close now, dropping whatever is still queued."""
        self._close(None)

    # -- endings -------------------------------------------------------------

    def _fatal_error(self, exc: BaseException, message: str) -> None:
        # EPIPE and friends: the peer went away, connection_lost says so.
        report_fatal_error(self, exc, message)
        self._close(exc)

    def _close(self, exc: BaseException | None) -> None:
        self._closing = True
        if self._lost:
            return
        self._lost = True
        loop = self._loop
        if self._buffer:
            loop._remove_writer(self._fileno)
        self._buffer.clear()
        loop._remove_reader(self._fileno)
        loop.call_soon(self._call_connection_lost, exc)


async def connect_read_pipe(
    self: EventLoop, protocol_factory: Callable[[], _ProtocolT], pipe: Any
) -> tuple[ReadPipeTransport, _ProtocolT]:
    """Read from `pipe` (a pipe, FIFO, socket, pty...) into a protocol; (transport, protocol)."""
    return await _connect_pipe(self, ReadPipeTransport, "Read", protocol_factory, pipe)


async def connect_write_pipe(
    self: EventLoop, protocol_factory: Callable[[], _ProtocolT], pipe: Any
) -> tuple[WritePipeTransport, _ProtocolT]:
    """Write to `pipe` (a pipe, FIFO, socket, pty...) through a transport; (transport, protocol)."""
    return await _connect_pipe(self, WritePipeTransport, "Write", protocol_factory, pipe)


_PipeT = TypeVar("_PipeT", ReadPipeTransport, WritePipeTransport)


async def _connect_pipe(
    loop: EventLoop,
    cls: type[_PipeT],
    direction: str,
    protocol_factory: Callable[[], _ProtocolT],
    pipe: Any,
) -> tuple[_PipeT, _ProtocolT]:
    protocol = protocol_factory()
    waiter = loop.create_future()
    transport = cls(loop, pipe, protocol, waiter)
    await wait_connection_made(transport, waiter)
    if loop._debug:
        logger.debug(
            "%s pipe %r connected: (%r, %r)", direction, pipe.fileno(), transport, protocol
        )
    return transport, protocol


__all__ = ["ReadPipeTransport", "WritePipeTransport", "connect_read_pipe", "connect_write_pipe"]
