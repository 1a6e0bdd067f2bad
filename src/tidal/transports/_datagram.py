"""UDP and Unix datagram transports, and ``loop.create_datagram_endpoint``.

Reading: the loop calls ``_read_ready`` when the socket is readable; it
receives one datagram and hands it to ``datagram_received`` (one per
wake-up, as asyncio does, so a flood on one socket cannot starve the others
within a turn).  An OSError from the socket is not fatal for a datagram
socket (an ICMP "port unreachable" comes back as ECONNREFUSED on the next
call): it goes to ``error_received`` and the transport lives on.

Writing: ``sendto`` sends at once when nothing is queued (the common case:
no allocation, no copy).  Only when the kernel would block is the datagram
copied into the queue, the writer registered, and the queued bytes counted
for flow control (pause_writing above the high-water mark, resume_writing
below the low one).  Datagrams are never split: each queue entry is one
send.

Behaviour follows the running Python's asyncio where it changed: 3.13 sends
zero-length datagrams (earlier versions drop them silently) and counts an
8-byte header per queued datagram.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import stat
import sys
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._loop import EventLoop
    from typing import TypeVar

    _ProtocolT = TypeVar("_ProtocolT", bound=asyncio.BaseProtocol)

from .. import _dns
from ._base import (
    checked_write_buffer_limits,
    close_socket_transport,
    force_close,
    pause_protocol,
    pause_reading,
    repr_info,
    report_fatal_error,
    resume_protocol,
    resume_reading,
    set_reuseport,
    socket_extra,
    start_connection,
    unix_paths,
    wait_connection_made,
)

logger = logging.getLogger("asyncio")  # asyncio's logger: users filter on it

# Python-version switches (asyncio changed here; we follow the running one).
_PY313: bool = sys.version_info >= (3, 13)
# What a queued datagram costs in flow control beyond its payload (3.13+:
# "include header bytes", so empty datagrams still fill the buffer).
_HEADER_SIZE: int = 8 if _PY313 else 0

# recvfrom() size: the largest UDP payload fits; a bigger Unix datagram is
# truncated, as with asyncio (same value).
_MAX_SIZE = 256 * 1024
# Default write-buffer limits, asyncio's.
_HIGH_WATER = 64 * 1024
# After this many sendto() calls on a lost connected transport, each one logs
# a warning (asyncio's LOG_THRESHOLD_FOR_CONNLOST_WRITES).
_LOG_THRESHOLD_FOR_CONNLOST_WRITES = 5

_WOULD_BLOCK = (BlockingIOError, InterruptedError)


class DatagramTransport(asyncio.Transport, asyncio.DatagramTransport):
    """A datagram socket (UDP, Unix) driven by tidal's loop.

    Also an ``asyncio.Transport``, as asyncio's own datagram transport is
    (code and CPython's tests check ``isinstance(tr, asyncio.Transport)``);
    the stream-only methods (write, write_eof ...) stay unimplemented.
    """

    # asyncio's socket transports say how much one read asks for.
    max_size = _MAX_SIZE

    __slots__ = (
        "__dict__",  # asyncio's transports accept attributes (tests patch sendto())
        "__weakref__",  # the loop's fd -> transport map is weak
        "_address",
        "_buffer",
        "_buffer_size",
        "_closing",
        "_conn_lost",
        "_connected",
        "_high_water",
        "_io_counts",
        "_loop",
        "_low_water",
        "_paused",
        "_protocol",
        "_protocol_paused",
        "_sock",
        "_sock_fd",
    )

    def __init__(
        self,
        loop: Any,
        sock: socket.socket,
        protocol: asyncio.BaseProtocol,
        address: Any = None,
        waiter: asyncio.Future[Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        info = socket_extra(sock, extra)
        super().__init__(info)
        self._loop = loop
        self._io_counts = loop._io_counts  # the loop's byte counts (_iocount.py)
        self._sock: socket.socket | None = sock
        self._sock_fd: int = sock.fileno()
        self._protocol: Any = protocol
        # The peer given as remote_addr (None: unconnected).  sendto checks
        # addresses against it.
        self._address = address
        # Connected at the socket level: send() rather than sendto().
        self._connected: bool = bool(info["peername"])
        # (bytes, addr) datagrams waiting for the socket to be writable.
        self._buffer: collections.deque[tuple[bytes, Any]] = collections.deque()
        self._buffer_size: int = 0
        self._conn_lost: int = 0
        self._closing: bool = False
        self._paused: bool = False
        self._protocol_paused: bool = False
        self._high_water: int = _HIGH_WATER
        self._low_water: int = _HIGH_WATER // 4
        # The protocol is set up before any datagram arrives or
        # create_datagram_endpoint returns.
        start_connection(self, self._sock_fd, protocol, self._start_reading, waiter)

    def __repr__(self) -> str:
        info = repr_info(self, self._sock is None, self._sock_fd)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            reading = self._sock_fd in loop._readers
            info.append("read=polling" if reading else "read=idle")
            writing = "polling" if self._sock_fd in loop._writers else "idle"
            info.append(f"write=<{writing}, bufsize={self.get_write_buffer_size()}>")
        return "<{}>".format(" ".join(info))

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        # getattr: __init__ may have failed before _sock was set.
        sock = getattr(self, "_sock", None)
        if sock is not None:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            sock.close()

    # ------------------------------------------------------------------
    # Protocol and state
    # ------------------------------------------------------------------

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol  # type: ignore[no-any-return]

    def is_closing(self) -> bool:
        return self._closing

    # ------------------------------------------------------------------
    # Reading
    # ------------------------------------------------------------------

    def is_reading(self) -> bool:
        return not self._closing and not self._paused

    def pause_reading(self) -> None:
        """Stop receiving datagrams until resume_reading() (the kernel queues or drops them)."""
        pause_reading(self, self._sock_fd)

    def resume_reading(self) -> None:
        resume_reading(self)

    def _start_reading(self) -> None:
        # Scheduled from __init__: the transport may have been closed or
        # paused before this runs.
        if not self._closing and not self._paused:
            self._loop._add_reader(self._sock_fd, self._read_ready)

    def _read_ready(self) -> None:
        """The reader callback: one datagram to the protocol."""
        if self._conn_lost:
            return
        try:
            data, addr = self._sock.recvfrom(_MAX_SIZE)  # type: ignore[union-attr]
        except _WOULD_BLOCK:
            pass
        except OSError as exc:
            # Not fatal for a datagram socket: an ICMP error for an earlier
            # send (ECONNREFUSED ...), reported to the protocol.
            self._protocol.error_received(exc)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal read error on datagram transport")
        else:
            self._io_counts.read += len(data)
            self._protocol.datagram_received(data, addr)

    # ------------------------------------------------------------------
    # Writing
    # ------------------------------------------------------------------

    def sendto(self, data: Any, addr: Any = None) -> None:
        """Send one datagram to `addr` (a connected transport: None or its peer)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"data argument must be a bytes-like object, not {type(data).__name__!r}"
            )
        if not data and not _PY313:
            return  # before 3.13 asyncio drops empty datagrams, unchecked

        # (Read once: each attribute read of this Python class is a type
        # lookup, on the path of every datagram.)
        address = self._address
        if address:
            if addr is not None and addr != address:
                raise ValueError(f"Invalid address: must be None or {address}")
            addr = address

        if self._conn_lost and (address or self._sock is None):
            # Closed (or lost): drop the datagram, warn once it looks like
            # the application has not noticed.  (asyncio crashes with
            # AttributeError here for an unconnected transport whose socket
            # is gone; we drop it as for a connected one.)
            if self._conn_lost >= _LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                logger.warning("socket.send() raised exception.")
            self._conn_lost += 1
            return

        if not self._buffer:
            # Nothing queued: send right away, the common case.
            try:
                if self._connected:
                    sent = self._sock.send(data)  # type: ignore[union-attr]
                else:
                    sent = self._sock.sendto(data, addr)  # type: ignore[union-attr]
                self._io_counts.written += sent
                return
            except _WOULD_BLOCK:
                self._loop._add_writer(self._sock_fd, self._sendto_ready)
            except OSError as exc:
                self._protocol.error_received(exc)
                return
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal write error on datagram transport")
                return

        # Queue a copy: the caller may reuse a bytearray/memoryview buffer.
        self._buffer.append((bytes(data), addr))
        self._buffer_size += len(data) + _HEADER_SIZE
        self._maybe_pause_protocol()

    def _sendto_ready(self) -> None:
        """The writer callback: flush queued datagrams until the kernel would block."""
        buffer = self._buffer
        sock = self._sock
        connected = self._connected
        while buffer:
            data, addr = buffer.popleft()
            self._buffer_size -= len(data) + _HEADER_SIZE
            try:
                if connected:
                    sent = sock.send(data)  # type: ignore[union-attr]
                else:
                    sent = sock.sendto(data, addr)  # type: ignore[union-attr]
                self._io_counts.written += sent
            except _WOULD_BLOCK:
                buffer.appendleft((data, addr))  # try again when writable
                self._buffer_size += len(data) + _HEADER_SIZE
                break
            except OSError as exc:
                self._protocol.error_received(exc)
                return
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal write error on datagram transport")
                return

        self._maybe_resume_protocol()  # the protocol may queue more here
        if not buffer:
            self._loop._remove_writer(self._sock_fd)
            if self._closing:
                self._call_connection_lost(None)

    def abort(self) -> None:
        """Close now, dropping queued datagrams."""
        self._force_close(None)

    def close(self) -> None:
        """Stop reading; close once queued datagrams are sent."""
        # (Counted in datagrams: before 3.13 an empty one adds no bytes.)
        close_socket_transport(self, self._sock_fd, len(self._buffer))

    # ------------------------------------------------------------------
    # Flow control
    # ------------------------------------------------------------------

    def get_write_buffer_size(self) -> int:
        return self._buffer_size

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (self._low_water, self._high_water)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._high_water, self._low_water = checked_write_buffer_limits(high, low, _HIGH_WATER)
        self._maybe_pause_protocol()

    def _maybe_pause_protocol(self) -> None:
        if self._buffer_size > self._high_water and not self._protocol_paused:
            pause_protocol(self)

    def _maybe_resume_protocol(self) -> None:
        if self._protocol_paused and self._buffer_size <= self._low_water:
            resume_protocol(self)

    # ------------------------------------------------------------------
    # Closing
    # ------------------------------------------------------------------

    def _fatal_error(self, exc: BaseException, message: str) -> None:
        report_fatal_error(self, exc, message)
        self._force_close(exc)

    def _force_close(self, exc: BaseException | None) -> None:
        force_close(self, self._sock_fd, exc)

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        try:
            self._protocol.connection_lost(exc)
        finally:
            if self._sock is not None:
                self._sock.close()
            self._sock = None
            self._protocol = None
            self._loop = None


# ----------------------------------------------------------------------
# loop.create_datagram_endpoint
# ----------------------------------------------------------------------


def _check_given_sock(sock: socket.socket) -> None:
    """asyncio's test on a sock= argument (3.13 accepts any non-stream socket)."""
    if _PY313:
        if sock.type == socket.SOCK_STREAM:
            raise ValueError(f"A datagram socket was expected, got {sock!r}")
    elif sock.type != socket.SOCK_DGRAM:
        raise ValueError(f"A UDP Socket was expected, got {sock!r}")


def _remove_stale_unix_socket(loop: Any, path: str) -> None:
    """A socket file left by a previous run would make bind() fail: remove it."""
    paths = unix_paths(loop)
    try:
        if stat.S_ISSOCK(paths.stat(path).st_mode):
            paths.remove(path)
    except FileNotFoundError:
        pass
    except OSError as err:
        # The directory may allow creating the socket but not inspecting it.
        logger.error("Unable to check or remove stale UNIX socket %r: %r", path, err)


async def _address_pairs(
    loop: Any, local_addr: Any, remote_addr: Any, family: int, proto: int, flags: int
) -> list[tuple[tuple[int, int], list[Any]]]:
    """Resolve local/remote (host, port) and pair them by (family, proto), asyncio's way."""
    by_key: dict[tuple[int, int], list[Any]] = {}  # insertion order = preference
    for idx, addr in ((0, local_addr), (1, remote_addr)):
        if addr is None:
            continue
        if not (isinstance(addr, tuple) and len(addr) == 2):
            raise TypeError("2-tuple is expected")
        infos = await _dns.resolve(
            loop, addr, family=family, type=socket.SOCK_DGRAM, proto=proto, flags=flags
        )
        if not infos:
            raise OSError("getaddrinfo() returned empty list")
        for fam, _, pro, _, address in infos:
            pair = by_key.setdefault((fam, pro), [None, None])
            pair[idx] = address
    # Keep only the (family, proto) keys that have every address asked for.
    pairs = [
        (key, pair)
        for key, pair in by_key.items()
        if not ((local_addr and pair[0] is None) or (remote_addr and pair[1] is None))
    ]
    if not pairs:
        raise ValueError("can not get address information")
    return pairs


async def create_datagram_endpoint(
    self: EventLoop,
    protocol_factory: Callable[[], _ProtocolT],
    local_addr: Any = None,
    remote_addr: Any = None,
    *,
    family: int = 0,
    proto: int = 0,
    flags: int = 0,
    reuse_port: bool | None = None,
    allow_broadcast: bool | None = None,
    sock: socket.socket | None = None,
) -> tuple[DatagramTransport, _ProtocolT]:
    """Make a datagram endpoint; return (transport, protocol) once connection_made has run.

    No ``reuse_address``: asyncio removed it in 3.11 (SO_REUSEADDR on UDP
    lets another process steal the port), so passing it is a TypeError.
    """
    r_addr: Any = None
    sock_given = sock is not None
    if sock is not None:
        _check_given_sock(sock)
        if local_addr or remote_addr or family or proto or flags or reuse_port or allow_broadcast:
            opts = {
                "local_addr": local_addr,
                "remote_addr": remote_addr,
                "family": family,
                "proto": proto,
                "flags": flags,
                "reuse_port": reuse_port,
                "allow_broadcast": allow_broadcast,
            }
            problems = ", ".join(f"{k}={v}" for k, v in opts.items() if v)
            raise ValueError(
                "socket modifier keyword arguments can not be used "
                f"when sock is specified. ({problems})"
            )
        sock.setblocking(False)
    else:
        pairs: Any
        if not (local_addr or remote_addr):
            if family == 0:
                raise ValueError("unexpected address family")
            pairs = [((family, proto), [None, None])]
        elif hasattr(socket, "AF_UNIX") and family == socket.AF_UNIX:
            for addr in (local_addr, remote_addr):
                if addr is not None and not isinstance(addr, str):
                    raise TypeError("string is expected")
            # An abstract-namespace name (leading NUL) has no file to remove.
            if local_addr and local_addr[0] not in (0, "\x00"):
                _remove_stale_unix_socket(self, local_addr)
            pairs = [((family, proto), [local_addr, remote_addr])]
        else:
            pairs = await _address_pairs(self, local_addr, remote_addr, family, proto, flags)

        exceptions: list[OSError] = []
        for (fam, pro), (local_address, remote_address) in pairs:
            sock = None
            r_addr = None
            try:
                sock = self._socket_factory(fam, socket.SOCK_DGRAM, pro)
                if reuse_port:
                    set_reuseport(sock)
                if allow_broadcast:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
                sock.setblocking(False)
                if local_addr:
                    sock.bind(local_address)
                if remote_addr:
                    # A broadcast endpoint stays unconnected (so it can
                    # receive replies from anyone), but still only sends to
                    # remote_addr.
                    if not allow_broadcast:
                        await self.sock_connect(sock, remote_address)
                    r_addr = remote_address
            except OSError as exc:
                if sock is not None:
                    sock.close()
                exceptions.append(exc)
            except BaseException:
                if sock is not None:
                    sock.close()
                raise
            else:
                break
        else:
            try:
                raise exceptions[0]
            finally:
                # Its traceback holds this frame: not the list holding it.
                exceptions = None  # type: ignore[assignment]

    try:
        protocol = protocol_factory()
    except BaseException:
        # A socket we made must not leak (asyncio leaves it to the GC); one
        # the caller passed in stays theirs.
        if not sock_given:
            sock.close()
        raise
    waiter = self.create_future()
    transport = DatagramTransport(self, sock, protocol, r_addr, waiter)
    if self._debug:
        if local_addr:
            logger.info(
                "Datagram endpoint local_addr=%r remote_addr=%r created: (%r, %r)",
                local_addr,
                remote_addr,
                transport,
                protocol,
            )
        else:
            logger.debug(
                "Datagram endpoint remote_addr=%r created: (%r, %r)",
                remote_addr,
                transport,
                protocol,
            )
    await wait_connection_made(transport, waiter)
    return transport, protocol


__all__ = ["DatagramTransport", "create_datagram_endpoint"]
