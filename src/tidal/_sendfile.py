"""loop.sock_sendfile and loop.sendfile: file bytes to a socket without passing through Python.

Two ways to send a file, chosen per call:

* **Zero copy.**  ``os.sendfile`` moves bytes from the file's page cache to
  the socket inside the kernel.  The first calls are made at once (a small
  file is sent before anything is registered); when the socket is full, one
  writer is registered for the whole transfer and each writable event calls
  ``os.sendfile`` again from where the last call stopped, until the count is
  reached or the file ends.  The writer stays registered between events
  (asyncio removes and re-adds it after every call: two epoll_ctl calls per
  socket-buffer's worth).
* **Fallback.**  Read the file in chunks (in the default executor, as
  asyncio does: a file read may block) and send each one: ``sock_sendall``
  for a socket; ``transport.write`` for a transport, respecting its flow
  control by standing in for its protocol (``_FallbackProtocol``) so that
  ``pause_writing``/``resume_writing`` gate the next chunk.

``sendfile(transport)`` goes zero-copy only on tidal's own
``StreamTransport`` (``_sendfile_compatible`` TRY_NATIVE): reading is paused,
the transport's queued writes are flushed first (``_make_empty_waiter``) and
further ``write()`` calls are refused ("sendfile is in progress") until the
file is sent.  TLS transports (FALLBACK) always take the fallback.

What a caller sees is asyncio's: the same argument checks and messages,
``SendfileNotAvailableError`` when zero copy is impossible and
``fallback=False``, the file position left after the last byte sent (also on
error and cancellation), the number of bytes sent returned.  Where asyncio's
behaviour is an accident, tidal does the evident intent and says so below.

These functions take the loop as ``self``: ``_loop.py`` binds them as
methods.  ``_sendfile_native``/``_sock_sendfile_native`` keep asyncio's
private names and signatures and are called through the loop, so code (and
CPython's own tests) that replaces them on a loop instance still works.
"""

from __future__ import annotations

import asyncio
import errno
import io
import os
import socket
import sys
from asyncio import constants, exceptions, protocols
from typing import Any, TYPE_CHECKING

if TYPE_CHECKING:
    from ._loop import EventLoop  # annotations only: _loop imports this module

from . import _sock
from ._sock import _IoDone
from .transports._stream import StreamTransport

_HAS_SENDFILE = hasattr(os, "sendfile")

# Bytes asked of one os.sendfile call at most: beyond it a 32-bit size_t
# overflows (asyncio 3.12+ caps the same way).
_MAX_BLOCK = sys.maxsize // 2 + 1

# os.sendfile calls per writable event.  More than one: a reader on the same
# host often drains the socket while we are still in the callback, and each
# extra call that finds room saves a trip through the poller.  Bounded, so
# one fast transfer cannot keep the loop from its other callbacks.
_CALLS_PER_EVENT = 4

# The transport fallback's chunk size: asyncio's (fixed; the sock_* fallback
# reads constants.SENDFILE_FALLBACK_READBUFFER_SIZE at call time instead).
_TRANSPORT_CHUNK = 16384

_NATIVE = constants._SendfileMode.TRY_NATIVE
_FALLBACK = constants._SendfileMode.FALLBACK
_UNSUPPORTED = constants._SendfileMode.UNSUPPORTED


# ----------------------------------------------------------------------
# Argument checks (asyncio's order and messages)
# ----------------------------------------------------------------------


def _check_sock(loop: EventLoop, sock: Any) -> None:
    # sock_sendfile checks blocking before SSL (the other sock_* the other
    # way round): asyncio's order, so the same mistake raises the same error.
    if loop._debug and sock.gettimeout() != 0:
        raise ValueError("the socket must be non-blocking")
    _sock.check_not_ssl(sock)


def _check_params(sock: Any, file: Any, offset: Any, count: Any) -> None:
    if "b" not in getattr(file, "mode", "b"):
        raise ValueError("file should be opened in binary mode")
    if not sock.type == socket.SOCK_STREAM:
        raise ValueError("only SOCK_STREAM type sockets are supported")
    if count is not None:
        if not isinstance(count, int):
            raise TypeError(f"count must be a positive integer (got {count!r})")
        if count <= 0:
            raise ValueError(f"count must be a positive integer (got {count!r})")
    if not isinstance(offset, int):
        raise TypeError(f"offset must be a non-negative integer (got {offset!r})")
    if offset < 0:
        raise ValueError(f"offset must be a non-negative integer (got {offset!r})")


# ----------------------------------------------------------------------
# Zero copy
# ----------------------------------------------------------------------


class _ZeroCopy:
    """One os.sendfile transfer: where it has got to, and the writer callback that moves it on.

    During ``sendfile(transport)`` this object also sits in the transport's
    ``_empty_waiter`` slot: the slot being set keeps ``write()`` refused, and
    the transport fails a pending waiter when its connection is lost, which
    here ends the transfer (``done``/``set_exception`` below).  Without that
    a ``close()`` or ``abort()`` in the middle would leave the transfer
    waiting forever on a closed socket (asyncio's does).
    """

    __slots__ = (
        "_blocksize",
        "_count",
        "_fd",
        "_fileno",
        "_fut",
        "_handle",
        "_loop",
        "_sock",
        "offset",
        "total_sent",
    )

    def __init__(
        self,
        loop: EventLoop,
        sock: socket.socket,
        fileno: int,
        offset: int,
        count: int | None,
        blocksize: int,
    ) -> None:
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._fileno = fileno
        self._count = count
        self._blocksize = blocksize
        self._fut: Any = None
        self._handle: Any = None
        self.offset = offset
        self.total_sent = 0

    def pump(self) -> bool:
        """Call os.sendfile until the socket is full; True once the transfer is complete.

        Raises what the transfer should fail with.
        """
        count = self._count
        blocksize = self._blocksize
        for _ in range(_CALLS_PER_EVENT):
            if count:
                blocksize = min(count - self.total_sent, _MAX_BLOCK)
                if blocksize <= 0:
                    return True
            try:
                sent = os.sendfile(self._fd, self._fileno, self.offset, blocksize)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError as exc:
                raise self._failure(exc) from None
            if sent == 0:
                return True  # end of file
            self.offset += sent
            self.total_sent += sent
        return False

    def _failure(self, exc: OSError) -> BaseException:
        if self.total_sent == 0:
            # Nothing sent yet: most likely the file is not one sendfile(2)
            # can read (not mmap-able); the caller may fall back on send().
            err = exceptions.SendfileNotAvailableError("os.sendfile call failed")
            err.__cause__ = exc
            return err
        if exc.errno == errno.ENOTCONN and type(exc) is not ConnectionError:
            # The peer went away mid-transfer: report it as every POSIX
            # system's ConnectionError does (asyncio normalizes the same way;
            # its errno/strerror are swapped, ours are not).
            new = ConnectionError(errno.ENOTCONN, "socket is not connected")
            new.__cause__ = exc
            return new
        return exc

    def wait(self, check_transport: bool) -> Any:
        """Register the writer for the rest of the transfer; return the future it settles."""
        loop = self._loop
        if check_transport:
            loop._ensure_fd_no_transport(self._fd)
        fut = self._fut = loop.create_future()
        self._handle = loop._add_writer(self._fd, self.on_writable)
        fut.add_done_callback(_IoDone(loop, self._fd, self._handle, True))
        return fut

    def on_writable(self) -> None:
        fut = self._fut
        if fut.done():
            return  # cancelled after the fd was found writable, in the same turn
        try:
            finished = self.pump()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            fut.set_exception(exc)
            return
        if finished:
            fut.set_result(self.total_sent)

    # The transport's empty-waiter protocol (see the class docstring).

    def done(self) -> bool:
        return self._fut is None or self._fut.done()

    def set_exception(self, exc: BaseException) -> None:
        fut = self._fut
        if fut is None or fut.done():
            return
        # Unregister now, not in the done-callback a turn later: the socket is
        # already closed and its fd number may be handed out again meanwhile.
        loop = self._loop
        if loop._writers.get(self._fd) is self._handle:
            loop._remove_writer(self._fd)
        fut.set_exception(exc)


def _set_file_position(file: Any, fileno: int, position: int) -> None:
    # Through the file object when it has seek(): a buffered reader then
    # drops its stale read-ahead (asyncio lseeks the fd, and a file read from
    # before the call then tells the wrong position).
    if hasattr(file, "seek"):
        file.seek(position)
    else:
        os.lseek(fileno, position, os.SEEK_SET)


async def _zero_copy(
    loop: EventLoop,
    sock: socket.socket,
    file: Any,
    offset: int,
    count: int | None,
    transport: StreamTransport | None,
) -> int:
    """Send with os.sendfile; SendfileNotAvailableError if this file/socket cannot."""
    if not _HAS_SENDFILE:
        raise exceptions.SendfileNotAvailableError("os.sendfile() is not available")
    try:
        fileno = file.fileno()
    except (AttributeError, io.UnsupportedOperation):
        raise exceptions.SendfileNotAvailableError("not a regular file") from None
    try:
        fsize = os.fstat(fileno).st_size
    except OSError:
        raise exceptions.SendfileNotAvailableError("not a regular file") from None
    blocksize = count if count else fsize
    if not blocksize:
        return 0  # empty file (asyncio's rule: this also covers pipes without a count)

    send = _ZeroCopy(loop, sock, fileno, offset, count, min(blocksize, _MAX_BLOCK))
    try:
        if send.pump():
            return send.total_sent
        fut = send.wait(check_transport=transport is None)
        if transport is not None:
            transport._empty_waiter = send
        try:
            return await fut
        finally:
            fut = None  # an exception's traceback must not hold the future
    finally:
        if send.total_sent:
            _set_file_position(file, fileno, send.offset)
            if transport is not None:  # a transport's bytes count in loop.stats()
                transport._io_counts.written += send.total_sent


async def sock_sendfile_native(
    self: EventLoop, sock: socket.socket, file: Any, offset: int, count: int | None
) -> int:
    """Zero-copy send (bound as ``loop._sock_sendfile_native``, asyncio's hook)."""
    return await _zero_copy(self, sock, file, offset, count, None)


async def _sock_fallback(
    loop: EventLoop, sock: socket.socket, file: Any, offset: int, count: int | None
) -> int:
    """Read a chunk, sock_sendall it, repeat: asyncio's fallback, step for step."""
    if offset:
        file.seek(offset)
    # Read at call time: callers (CPython's tests among them) change it.
    chunk = constants.SENDFILE_FALLBACK_READBUFFER_SIZE
    blocksize = min(count, chunk) if count else chunk
    buf = bytearray(blocksize)
    total_sent = 0
    try:
        while True:
            if count:
                blocksize = min(count - total_sent, blocksize)
                if blocksize <= 0:
                    break
            view = memoryview(buf)[:blocksize]
            read = await loop.run_in_executor(None, file.readinto, view)
            if not read:
                break  # end of file
            await loop.sock_sendall(sock, view[:read])
            total_sent += read
        return total_sent
    finally:
        if total_sent > 0 and hasattr(file, "seek"):
            file.seek(offset + total_sent)


async def sock_sendfile(
    self: EventLoop,
    sock: socket.socket,
    file: Any,
    offset: int = 0,
    count: int | None = None,
    *,
    fallback: bool | None = True,  # only tested for truth (None = False), as in asyncio
) -> int:
    """Send `file` (from `offset`, `count` bytes or to its end) over `sock`; return bytes sent."""
    _check_sock(self, sock)
    _check_params(sock, file, offset, count)
    try:
        return await self._sock_sendfile_native(sock, file, offset, count)
    except exceptions.SendfileNotAvailableError:
        if not fallback:
            raise
    return await _sock_fallback(self, sock, file, offset, count)


# ----------------------------------------------------------------------
# loop.sendfile over a transport
# ----------------------------------------------------------------------


async def sendfile_native(
    self: EventLoop, transp: Any, file: Any, offset: int, count: int | None
) -> int:
    """Zero copy over tidal's StreamTransport (bound as ``loop._sendfile_native``, asyncio's hook).

    Reading pauses (the protocol must not see data while its transport is
    borrowed), queued writes are flushed first, then the socket is handed
    to os.sendfile; new writes are refused until it is done.
    """
    if not isinstance(transp, StreamTransport):
        raise exceptions.SendfileNotAvailableError("sendfile syscall is not supported")
    resume_reading = transp.is_reading()
    transp.pause_reading()
    waiter = transp._make_empty_waiter()  # "Empty waiter is already set": one at a time
    try:
        await waiter
        if transp.is_closing():
            # Closed while its queue drained: the socket is gone (asyncio
            # trips over the missing socket with an AttributeError here).
            raise ConnectionError("Connection is closed by peer")
        sock: Any = transp._sock
        _check_sock(self, sock)
        _check_params(sock, file, offset, count)
        return await _zero_copy(self, sock, file, offset, count, transp)
    finally:
        transp._reset_empty_waiter()
        if resume_reading:
            transp.resume_reading()


class _FallbackProtocol(protocols.Protocol):
    """Stands in for a transport's protocol while the fallback writes a file through it.

    It receives the transport's ``pause_writing``/``resume_writing`` so each
    chunk waits for room (``drain``); reading is paused meanwhile, so data
    must not arrive.  ``restore`` gives the transport back.  Unlike asyncio's
    wrapper, restore leaves the real protocol's pause/resume balanced: it is
    resumed only if the transport is no longer paused, and told to pause if
    the last chunk paused it (asyncio resumes it unconditionally, so a
    protocol that was paused can be resumed twice).
    """

    def __init__(self, loop: EventLoop, transport: Any) -> None:
        self._loop = loop
        self._transport = transport
        self._proto = transport.get_protocol()
        self._was_reading = transport.is_reading()
        self._was_paused = bool(getattr(transport, "_protocol_paused", False))
        self._lost = False
        transport.pause_reading()
        transport.set_protocol(self)
        self._write_ready: Any = loop.create_future() if self._was_paused else None

    async def drain(self) -> None:
        if self._transport.is_closing():
            raise ConnectionError("Connection closed by peer")
        fut = self._write_ready
        if fut is not None:
            await fut

    def connection_made(self, transport: Any) -> None:
        raise RuntimeError("Invalid state: connection should have been established already.")

    def connection_lost(self, exc: BaseException | None) -> None:
        self._lost = True
        fut = self._write_ready
        if fut is not None and not fut.done():
            # The peer left before the whole file was sent: an error for the
            # caller either way.
            fut.set_exception(
                ConnectionError("Connection is closed by peer") if exc is None else exc
            )
        self._proto.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._write_ready is None:
            self._write_ready = self._loop.create_future()

    def resume_writing(self) -> None:
        fut = self._write_ready
        if fut is None:
            return
        self._write_ready = None
        if not fut.done():
            fut.set_result(False)

    def data_received(self, data: bytes) -> None:
        raise RuntimeError("Invalid state: reading should be paused")

    def eof_received(self) -> bool | None:
        raise RuntimeError("Invalid state: reading should be paused")

    def restore(self) -> None:
        transport = self._transport
        transport.set_protocol(self._proto)
        if self._was_reading:
            transport.resume_reading()
        fut = self._write_ready
        paused = fut is not None
        if fut is not None:
            if fut.done() and not fut.cancelled():
                fut.exception()  # seen: no "exception was never retrieved" later
            fut.cancel()
        if self._lost:
            return
        if self._was_paused and not paused:
            self._proto.resume_writing()
        elif paused and not self._was_paused:
            self._proto.pause_writing()


async def _transport_fallback(
    loop: EventLoop, transp: Any, file: Any, offset: int, count: int | None
) -> int:
    """Read a chunk, wait for room, write it; asyncio's fallback, step for step."""
    if offset:
        file.seek(offset)
    blocksize = min(count, _TRANSPORT_CHUNK) if count else _TRANSPORT_CHUNK
    buf = bytearray(blocksize)
    total_sent = 0
    proto = _FallbackProtocol(loop, transp)
    try:
        while True:
            if count:
                blocksize = min(count - total_sent, blocksize)
                if blocksize <= 0:
                    return total_sent
            view = memoryview(buf)[:blocksize]
            read = await loop.run_in_executor(None, file.readinto, view)
            if not read:
                return total_sent  # end of file
            await proto.drain()
            # The transport copies what it cannot send now (buf is reused).
            transp.write(view[:read])
            total_sent += read
    finally:
        if total_sent > 0 and hasattr(file, "seek"):
            file.seek(offset + total_sent)
        proto.restore()


async def sendfile(
    self: EventLoop,
    transport: asyncio.BaseTransport,
    file: Any,
    offset: int = 0,
    count: int | None = None,
    *,
    fallback: bool = True,
) -> int:
    """Send `file` over `transport` (zero copy where it can); return bytes sent."""
    if transport.is_closing():
        raise RuntimeError("Transport is closing")
    mode = getattr(transport, "_sendfile_compatible", _UNSUPPORTED)
    if mode is _UNSUPPORTED:
        raise RuntimeError(f"sendfile is not supported for transport {transport!r}")
    if mode is _NATIVE:
        try:
            return await self._sendfile_native(transport, file, offset, count)
        except exceptions.SendfileNotAvailableError:
            if not fallback:
                raise
    if not fallback:
        raise RuntimeError(
            f"fallback is disabled and native sendfile is not supported for transport {transport!r}"
        )
    return await _transport_fallback(self, transport, file, offset, count)
