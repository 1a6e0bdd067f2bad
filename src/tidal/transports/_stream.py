"""StreamTransport: the transport of TCP and Unix stream sockets.

It behaves as asyncio's selector socket transport (same callbacks in the
same order, same errors and messages); what differs is how it spends time
and memory:

* **Read path.**  No reader Handle: while reading, the transport itself is
  the loop's reader entry for its fd, and each readiness event runs
  ``read_event`` (a C call, compiled), which reads at most just under
  128 KiB at a time (a fresh 256 KiB ``recv()``, as asyncio's, costs an mmap
  and page faults per call), again at once while a read fills the buffer,
  up to _READS_PER_EVENT reads.  Compiled, a small read goes into one buffer
  the loop's transports share and the few bytes that came are copied out; after a
  large one, the next read goes straight into a bytes object, shrunk to what
  came (no copy: see _DIRECT_READ).  A BufferedProtocol gets its own buffer
  filled directly, with no copy at all.
* **Write path.**  ``write()`` sends at once when nothing is queued; only
  the rest is queued, and only then is the writer registered.  Queued data
  is never dropped: large ``bytes`` are kept as they are (zero copy), small
  writes are packed into bytearrays (so a protocol making many small writes
  while the peer is slow costs few iovecs, not one object each), and mutable
  buffers are copied (the caller may reuse them once write() returns).  The
  queue is flushed with one ``sendmsg`` per writable event.
* **Flow control.**  The queued byte count is kept as a number, not summed:
  ``pause_writing()`` fires as soon as it passes the high-water mark, so a
  protocol that respects it bounds memory at high-water + one write.
"""

from __future__ import annotations

import collections
import logging
import os
import socket
import sys
import warnings
import weakref
from asyncio import constants, protocols, streams, transports
from collections.abc import Iterable
from itertools import islice
from typing import Any

try:
    # Compiled, `cython` is Cython's compile-time module and the `if not
    # cython.compiled:` block below is dropped: its names are the C functions
    # of _syscalls_c.pxd (cimported by _stream.pxd).
    import cython
except ImportError:  # interpreted, without Cython installed
    from types import ModuleType

    # A module, as Cython's own shadow module is (and as _loop.py's): the
    # read and write paths test `cython.compiled`, and the interpreter reads
    # a module's attribute through its specialized path.
    cython = ModuleType("cython")
    vars(cython).update(compiled=False, locals=lambda **types: lambda func: func, Py_ssize_t=int)
if not cython.compiled:
    from .._syscalls import recv_bytes, recv_into, send

    def stream_layout_matches(cls: type) -> bool:
        return True

    # Compiled, CStream is the C struct view of StreamSlots' fields
    # (_stream_layout.pxd, cimported by _stream.pxd); interpreted, the class.
    from ._stream_slots import StreamSlots as CStream

    # Compiled, the cimported C type of _stream.pxd.
    from .._iocount import IOCounts

from ._base import (
    PEERNAME_UNKNOWN,
    checked_write_buffer_limits,
    close_socket_transport,
    force_close,
    pause_protocol,
    repr_info,
    report_fatal_error,
    resume_protocol,
    socket_extra,
    start_connection,
)
from ._stream_slots import StreamSlots

logger = logging.getLogger("asyncio")

# Bytes asked of the kernel per readiness event.  asyncio asks for 256 KiB;
# tidal asks for just under 128 KiB, so that the bytes object handed to
# data_received stays under glibc's mmap threshold (128 KiB: no mmap/munmap,
# no page faults per large read) while a 100 KiB message still arrives in one
# read, one data_received and one write back.  Server CPU per 100 KiB echo
# message (protocol, 10 connections): 256 KiB 75-88 us, 64 KiB 64 us, this 50 us.
MAX_READ = 128 * 1024 - 512
# Except into asyncio's streams, which get their limit (64 KiB by default) a
# read: a StreamReader copies each chunk into a bytearray it grows and
# shrinks, and with larger reads glibc trims the top of its heap and takes
# fresh pages for the next one (interpreted, 100 KiB streams echo at 10
# connections, CPU per message: 64 KiB reads 52 us and ~1 page fault; 112 to
# 127.5 KiB reads 58-79 us and 16-19 faults; level at 100 connections).  A
# StreamReader also pauses its transport once it holds twice its limit.
STREAM_READ = 64 * 1024
# Compiled, a read that brought at least this much makes the transport's next
# read go straight into a bytes object of its own rather than into the loop's
# scratch buffer and then copied out (_syscalls.recv_bytes): a connection
# that just brought this much will likely bring as much again.  Received from
# a socketpair, in C: 1 KiB 311 ns copied, 328 direct; 4 KiB 480 / 463;
# 16 KiB 786 / 554; 100 KiB 5.3 / 3.6 us.
_DIRECT_READ = 4 * 1024
# Reads per readiness event, at most: after a read that filled the buffer
# (the kernel likely holds more), the transport reads again at once instead
# of waiting for the next turn's poll to say what it already knows, as libuv
# (uvloop) does, up to 32 times.  A 100 KiB message into a 64 KiB buffer
# (asyncio's streams, a BufferedProtocol's buffer) then arrives in one event,
# one turn and, on a stream, one wake-up of the reading task instead of two.
# Four bounds one connection's turn at 256 KiB into streams (asyncio's
# transport reads that much per event) and 510 KiB into a Protocol.
_READS_PER_EVENT = 4
# Writes up to this size are copied into a bytearray at the tail of the
# queue rather than queued as objects of their own ...
_SMALL_WRITE = 4 * 1024
# ... and such a bytearray grows up to this size before another starts (so a
# partial send's ``del head[:n]`` never moves much memory).
_COALESCE_MAX = 64 * 1024
# After the connection is lost, write() warns once this many writes were
# dropped (asyncio's LOG_THRESHOLD_FOR_CONNLOST_WRITES).
_LOG_THRESHOLD_FOR_CONNLOST_WRITES = 5

# 3.11's writelines was write(b"".join(...)), so its error named write().
_WRITELINES_AFTER_EOF = (
    "Cannot call writelines() after write_eof()"
    if sys.version_info >= (3, 12)
    else "Cannot call write() after write_eof()"
)
_WRITELINES_DURING_SENDFILE = (
    "unable to writelines; sendfile is in progress"
    if sys.version_info >= (3, 12)
    else "unable to write; sendfile is in progress"
)

_HAS_SENDMSG = hasattr(socket.socket, "sendmsg")
if _HAS_SENDMSG:
    try:
        _IOV_MAX = os.sysconf("SC_IOV_MAX")
    except (OSError, ValueError):
        _HAS_SENDMSG = False
        _IOV_MAX = 1

# One receive buffer per loop: a loop runs one callback at a time and
# data_received gets a copy, so its transports can share it (10,000
# connections must not cost 10,000 x 128 KiB).  Keyed weakly by loop: loops in
# other threads have their own.  Each loop's entry is the whole buffer and
# its first STREAM_READ bytes (made once: a memoryview costs 184 bytes).
_recv_views: weakref.WeakKeyDictionary[Any, tuple[memoryview, memoryview]] = (
    weakref.WeakKeyDictionary()
)


def _shared_recv_view(loop: Any, size: int = MAX_READ) -> memoryview:
    """The loop's scratch receive buffer: MAX_READ bytes, or its first STREAM_READ.

    Anything running on `loop` may fill and read it within one callback;
    nothing may keep data in it across callbacks (the next read reuses it).
    """
    views = _recv_views.get(loop)
    if views is None:
        whole = memoryview(bytearray(MAX_READ))
        views = _recv_views[loop] = (whole, whole[:STREAM_READ])
    return views[0] if size == MAX_READ else views[1]


def _read_size(protocol: Any) -> int:
    """How much one read hands `protocol` (see STREAM_READ)."""
    return STREAM_READ if isinstance(protocol, streams.StreamReaderProtocol) else MAX_READ


def _set_nodelay(sock: socket.socket) -> None:
    """Disable Nagle on TCP: small writes go out without waiting for an ACK.

    Only where asyncio's own _set_nodelay does: proto must say IPPROTO_TCP, so
    a socket made by socket.socket() (proto 0), and what its listener
    accepts, keep Nagle on as they do on asyncio's loop.
    """
    if (
        sock.family in (socket.AF_INET, socket.AF_INET6)
        and sock.type == socket.SOCK_STREAM
        and sock.proto == socket.IPPROTO_TCP
    ):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # e.g. the peer already reset the connection: reading will tell


def _byte_view(data: memoryview) -> Any:
    """A memoryview as a flat view of bytes, so len() counts bytes."""
    if data.ndim == 1 and data.itemsize == 1:
        return data
    if data.c_contiguous:
        return data.cast("B")
    return data.tobytes()


def _reads_on(tr: StreamSlots, protocol: Any, reads: int) -> bool:
    """After read number `reads` of this event filled its buffer: read again now?

    Not past _READS_PER_EVENT, nor once the protocol paused reading, closed
    the transport or handed it to another protocol.
    """
    return (
        reads < _READS_PER_EVENT
        and not tr._paused
        and not tr._closing
        and tr._protocol is protocol
    )


# get_extra_info()'s socket entries.  asyncio fills them in when the transport
# is made: a dict, a TransportSocket and a getsockname() result, ~400 bytes
# per connection that most servers never ask for.  A connection tidal's server
# accepted fills them in on the first get_extra_info() of one of these names,
# or when it closes (before its socket does), whichever comes first; until
# then it keeps only accept()'s peer address.  Lazily, the values are the same
# as eagerly: only the server holds the socket until then (nobody can close it
# behind the transport's back), an accepted socket's local address never
# changes, and on Linux getsockname() still answers once the peer has gone
# (reset, EOF), which getpeername() does not: hence accept()'s address, kept.
# Elsewhere the entries are filled in at once, as asyncio does.
_SOCKET_EXTRA = frozenset(("socket", "sockname", "peername"))
_DEFER_SOCKET_EXTRA = sys.platform.startswith("linux")
# _peername once _extra holds the socket entries.
_EXTRA_FILLED: Any = object()
# The get_extra_info asyncio's socket transports run: BaseTransport's, which
# they inherit (they define none).  StreamTransport defines its own (for the
# deferred entries above), which would hide one patched on asyncio's classes
# (mock.patch("asyncio.Transport.get_extra_info"), as websockets' tests do)
# that asyncio's transports call: so its get_extra_info first checks whether
# Transport's is still this one.
_Transport = transports.Transport
_INHERITED_GET_EXTRA_INFO = _Transport.get_extra_info


def _compact_address(addr: Any) -> Any:
    """accept()'s address as _peername keeps it: an IPv4 (host, port) as one
    int, (address << 16) | port, 32 bytes where the tuple, its str and its port
    take ~150 per idle connection; any other address as it is."""
    if type(addr) is tuple and len(addr) == 2:
        host, port = addr
        if type(host) is str and type(port) is int:
            try:
                return int.from_bytes(socket.inet_aton(host), "big") << 16 | port
            except OSError:
                pass
    return addr


def _full_address(kept: Any) -> Any:
    """The address _compact_address was given (inet_ntoa writes the dotted
    quad accept()'s inet_ntop wrote)."""
    if type(kept) is int:
        return (socket.inet_ntoa((kept >> 16).to_bytes(4, "big")), kept & 0xFFFF)
    return kept


# Compiled, the read and write paths read StreamSlots' fields at the offsets
# _stream_layout.pxd's C struct gives: check once, at import, that this
# Python put them there.
if not stream_layout_matches(StreamSlots):
    raise ImportError(
        "tidal's compiled build does not match this Python's layout of StreamSlots; "
        "run with TIDAL_NO_EXT=1 and report the Python version"
    )


class StreamTransport(StreamSlots):
    """A connected stream socket (TCP or Unix) driven by a tidal loop."""

    # The fields are StreamSlots' (_stream_slots.py); compiled, the read and
    # write paths below read them as C struct members through `tr`, this
    # object typed as that struct (@cython.locals(tr=CStream)).  "__dict__":
    # asyncio's transports accept attributes, and tests (aiohttp's) patch
    # write() on the instance; added here, not to StreamSlots, so the struct
    # layout the compiled paths read stays as it is.
    __slots__ = ("__dict__",)

    # Class attributes asyncio's loop code looks for on socket transports.
    max_size = MAX_READ
    _start_tls_compatible = True
    _sendfile_compatible = constants._SendfileMode.TRY_NATIVE

    def __init__(
        self,
        loop: Any,
        sock: socket.socket,
        protocol: protocols.BaseProtocol,
        waiter: Any = None,
        extra: dict[str, Any] | None = None,
        server: Any = None,
        peername: Any = PEERNAME_UNKNOWN,
    ) -> None:
        # `peername`: accept()'s address, from tidal's server (_SOCKET_EXTRA
        # says why it is kept, and when _extra is filled in).
        # (Not BaseTransport.__init__: it would make an empty dict.)
        if peername is PEERNAME_UNKNOWN or not _DEFER_SOCKET_EXTRA:
            self._extra = socket_extra(sock, extra, peername)
            self._peername = _EXTRA_FILLED
        else:
            self._extra = extra  # type: ignore[assignment]
            self._peername = _compact_address(peername)
        self._sock = None  # set near the end: __del__ tests it
        self._loop = loop
        self._sock_fd = sock.fileno()
        # The fd the read/write paths' syscalls use, or -1 for "call the
        # socket's methods" (a socket.socket subclass may override them).
        self._io_fd = self._sock_fd if type(sock) is socket.socket else -1
        self._protocol = protocol
        self._protocol_connected = True
        self._buffered = isinstance(protocol, protocols.BufferedProtocol)
        self._server = server
        # The write queue, made on the first write the kernel does not take
        # whole: an empty deque costs ~600 bytes, and most connections never
        # queue anything (an empty tuple stands in: falsy, len() 0).
        self._buffer = ()  # type: ignore[assignment]
        self._buffer_size = 0
        self._conn_lost = 0  # > 0 once connection_lost is scheduled; counts writes after
        self._closing = False
        self._paused = False
        self._eof = False
        self._empty_waiter = None
        self._protocol_paused = False
        self._high_water = 64 * 1024
        self._low_water = 16 * 1024
        self._recv_view = _shared_recv_view(loop, _read_size(protocol))
        self._big_reads = False  # the last read brought _DIRECT_READ or more
        self._read_ctx = None  # (set while reading: see _stream_slots.py)
        self._read_queued = None
        # The loop's byte counts (_iocount.py).  Compiled, the read and write
        # paths add to it as a C struct, unchecked: it must be an IOCounts.
        counts = loop._io_counts
        if type(counts) is not IOCounts:
            raise TypeError(f"loop._io_counts must be an IOCounts, not {type(counts).__name__}")
        self._io_counts = counts
        # The fd's reader entry from now on (reading starts next turn, when
        # _start_reading runs): what tells the loop the fd is ours.
        loop._add_transport_reader(self, False)
        self._sock = sock
        if server is not None:
            server._attach(self)
        _set_nodelay(sock)
        start_connection(self, self._sock_fd, protocol, self._start_reading, waiter, False)

    def __repr__(self) -> str:
        info = repr_info(self, self._sock is None, self._sock_fd)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            entry = loop._readers.get(self._sock_fd)
            if entry is self:
                polling = self._read_ctx is not None  # (not before reading starts)
            else:
                polling = entry is not None and not entry._cancelled
            info.append("read=polling" if polling else "read=idle")
            handle = loop._writers.get(self._sock_fd)
            polling = handle is not None and not handle._cancelled
            state = "polling" if polling else "idle"
            info.append(f"write=<{state}, bufsize={self._buffer_size}>")
        return "<{}>".format(" ".join(info))

    def __del__(self, _warn: Any = warnings.warn) -> None:
        # As asyncio's: close the socket but keep it, so that a close() or
        # abort() that follows (a StreamWriter finalized after its transport,
        # in the same cycle) runs its usual course on a closed socket.  The
        # fd number is no longer ours: the syscalls go through the closed
        # socket from now on (EBADF), never to whoever gets the number next.
        sock = getattr(self, "_sock", None)
        if sock is not None:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            if self._peername is not _EXTRA_FILLED:
                self._fill_extra()  # while getsockname() still answers
            sock.close()
            self._io_fd = -1
            server = self._server
            if server is not None:
                self._server = None
                server._detach(self)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if _Transport.get_extra_info is not _INHERITED_GET_EXTRA_INFO:
            # Patched on asyncio's Transport or one of its bases: what
            # asyncio's transport would call, looked up (and bound, or not,
            # as a mock is not) past tidal's classes, over a complete _extra;
            # given the arguments the caller gave (a mock's assert_called_with
            # compares them), but for a None default, which only a caller
            # that spelled it out gave.
            if self._peername is not _EXTRA_FILLED:
                self._fill_extra()
            patched = super(StreamSlots, self).get_extra_info
            return patched(name) if default is None else patched(name, default)
        if self._peername is not _EXTRA_FILLED and name in _SOCKET_EXTRA:
            self._fill_extra()
        extra = self._extra
        return default if extra is None else extra.get(name, default)

    def _fill_extra(self) -> None:
        """Fill in _extra's socket entries, as asyncio does when it makes the transport."""
        self._extra = socket_extra(self._sock, self._extra, _full_address(self._peername))  # type: ignore[arg-type]
        self._peername = _EXTRA_FILLED

    # ------------------------------------------------------------------
    # Protocol
    # ------------------------------------------------------------------

    def set_protocol(self, protocol: protocols.BaseProtocol) -> None:
        self._protocol = protocol
        self._protocol_connected = True
        if self._loop is not None:
            self._recv_view = _shared_recv_view(self._loop, _read_size(protocol))
        # (read_event asks, per readiness event, which read to make.)
        self._buffered = isinstance(protocol, protocols.BufferedProtocol)

    def get_protocol(self) -> protocols.BaseProtocol:
        return self._protocol

    def is_closing(self) -> bool:
        return self._closing

    # ------------------------------------------------------------------
    # Reading
    # ------------------------------------------------------------------

    def is_reading(self) -> bool:
        return not self._closing and not self._paused

    # (Not _base's pause_reading/resume_reading: a StreamReader pauses and
    # resumes its transport per large message; these stay compiled code.)
    def pause_reading(self) -> None:
        if self._closing or self._paused:
            return
        self._paused = True
        self._loop._remove_reader(self._sock_fd)
        if self._loop.get_debug():
            logger.debug("%r pauses reading", self)

    def resume_reading(self) -> None:
        if self._closing or not self._paused:
            return
        self._paused = False
        self._start_reading()
        if self._loop.get_debug():
            logger.debug("%r resumes reading", self)

    def _start_reading(self) -> None:
        """Become the fd's reader: the loop's entry for it is this transport
        itself, no Handle (the loop's _add_transport_reader)."""
        if self._closing or self._paused:
            return
        self._loop._add_transport_reader(self, True)

    def _read_ready(self) -> None:
        """The fd is readable: asyncio's name for it (the loop calls read_event)."""
        read_event(self)

    def _read_eof(self) -> None:
        if self._loop.get_debug():
            logger.debug("%r received EOF", self)
        try:
            keep_open = self._protocol.eof_received()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.eof_received() call failed.")
            return
        if keep_open:
            # The protocol may still write, but nothing more will be read.
            self._loop._remove_reader(self._sock_fd)
        else:
            self.close()

    # ------------------------------------------------------------------
    # Writing
    # ------------------------------------------------------------------

    @cython.locals(tr=CStream, n=cython.Py_ssize_t)  # compiled: tr's fields are C struct members
    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send now what the kernel takes; queue the rest (never dropped)."""
        tr = self
        # (bytes, the common case, known by one type test: interpreted, the
        # isinstance call and its tuple cost ~100 instructions a write.)
        if type(data) is not bytes and not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"data argument must be a bytes-like object, not {type(data).__name__!r}"
            )
        if tr._eof:
            raise RuntimeError("Cannot call write() after write_eof()")
        if tr._empty_waiter is not None:
            raise RuntimeError("unable to write; sendfile is in progress")
        if type(data) is memoryview:
            data = _byte_view(data)
        if not data:
            return
        if tr._conn_lost:
            if tr._conn_lost >= _LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                logger.warning("socket.send() raised exception.")
            tr._conn_lost += 1
            return

        if not tr._buffer_size:
            # Nothing queued: try to send right away (the common case: the
            # kernel takes it all, and no writer is ever registered).
            try:
                if cython.compiled:
                    n = send(tr._sock, tr._io_fd, data)  # type: ignore[arg-type]
                else:
                    n = tr._sock.send(data)  # type: ignore[union-attr]  # (see _syscalls.send)
            except (BlockingIOError, InterruptedError):
                n = 0
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal write error on socket transport")
                return
            tr._io_counts.written += n
            if n == len(data):
                return
            self._queue(data, n)
            self._watch_writable()
        else:
            self._queue(data, 0)
        if tr._buffer_size > tr._high_water and not tr._protocol_paused:
            self._pause_protocol()

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        """Write several buffers with one sendmsg (no join copy)."""
        if self._eof:
            raise RuntimeError(_WRITELINES_AFTER_EOF)
        if self._empty_waiter is not None:
            raise RuntimeError(_WRITELINES_DURING_SENDFILE)
        items = []
        for data in list_of_data:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError(
                    f"data argument must be a bytes-like object, not {type(data).__name__!r}"
                )
            if type(data) is memoryview:
                data = _byte_view(data)
            if data:
                items.append(data)
        if not items:
            return
        if self._conn_lost:
            if self._conn_lost >= _LOG_THRESHOLD_FOR_CONNLOST_WRITES:
                logger.warning("socket.send() raised exception.")
            self._conn_lost += 1
            return

        if not self._buffer_size:
            try:
                if len(items) == 1:
                    n = send(self._sock, self._io_fd, items[0])  # type: ignore[arg-type]
                elif _HAS_SENDMSG:
                    n = self._sock.sendmsg(items[:_IOV_MAX])  # type: ignore[union-attr]
                else:
                    n = self._sock.send(b"".join(items))  # type: ignore[union-attr]
            except (BlockingIOError, InterruptedError):
                n = 0
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(exc, "Fatal write error on socket transport")
                return
            self._io_counts.written += n
            for data in items:
                size = len(data)
                if n >= size:
                    n -= size
                    continue
                self._queue(data, n)
                n = 0
            if not self._buffer_size:
                return
            self._watch_writable()
        else:
            for data in items:
                self._queue(data, 0)
        if self._buffer_size > self._high_water and not self._protocol_paused:
            self._pause_protocol()

    def _watch_writable(self) -> None:
        """Register the writer, unless it still is: resume_writing() runs inside
        _write_ready, where a write may refill the emptied queue before the
        writer is removed; keeping the live handle saves a Handle and two
        epoll_ctl calls per flow-control cycle."""
        loop = self._loop
        if self._sock_fd not in loop._writers:
            loop._add_writer(self._sock_fd, self._write_ready)

    @cython.locals(tr=CStream)  # compiled: tr's fields are C struct members
    def _queue(self, data: Any, offset: int) -> None:
        """Append data[offset:] to the write queue, owning what it keeps."""
        tr = self
        size = len(data) - offset
        tr._buffer_size += size
        buffer = tr._buffer
        if type(buffer) is tuple:
            buffer = tr._buffer = collections.deque()
        if size <= _SMALL_WRITE:
            # Small: pack into the tail bytearray (a copy, so the caller may
            # reuse a mutable buffer; and one iovec for many writes).
            if buffer:
                tail = buffer[-1]
                if type(tail) is bytearray and len(tail) < _COALESCE_MAX:
                    tail += data[offset:] if offset else data
                    return
            buffer.append(bytearray(data[offset:] if offset else data))
        elif type(data) is bytes:
            # Large and immutable: keep it (a view if partly sent), no copy.
            buffer.append(memoryview(data)[offset:] if offset else data)
        elif type(data) is memoryview and data.readonly:
            buffer.append(data[offset:] if offset else data)
        else:
            # Large and mutable: the caller may reuse it after write returns.
            buffer.append(memoryview(data)[offset:].tobytes())

    @cython.locals(tr=CStream, n=cython.Py_ssize_t)  # compiled: tr's fields are C struct members
    def _write_ready(self) -> None:
        """The fd is writable: flush as much of the queue as the kernel takes."""
        tr = self
        if tr._conn_lost:
            return
        buffer = tr._buffer
        try:
            if len(buffer) == 1 or not _HAS_SENDMSG:
                n = send(tr._sock, tr._io_fd, buffer[0])  # type: ignore[arg-type]
            else:
                n = tr._sock.sendmsg(islice(buffer, _IOV_MAX))  # type: ignore[union-attr]
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            tr._loop._remove_writer(tr._sock_fd)
            buffer.clear()
            tr._buffer_size = 0
            self._fatal_error(exc, "Fatal write error on socket transport")
            if tr._empty_waiter is not None:
                tr._empty_waiter.set_exception(exc)
            return

        tr._io_counts.written += n
        # Drop the n bytes sent from the front of the queue.
        tr._buffer_size -= n
        while n:
            head = buffer[0]
            size = len(head)
            if size <= n:
                buffer.popleft()
                n -= size
            else:
                if type(head) is bytearray:
                    del head[:n]  # O(1) in CPython: moves the start, no copy
                else:
                    buffer[0] = memoryview(head)[n:]
                break

        if tr._protocol_paused and tr._buffer_size <= tr._low_water:
            self._resume_protocol()  # may write (or close, or abort)
            if tr._conn_lost:
                return
        if not tr._buffer_size:
            tr._loop._remove_writer(tr._sock_fd)
            if tr._empty_waiter is not None:
                tr._empty_waiter.set_result(None)
            if tr._closing:
                tr._conn_lost += 1
                self._call_connection_lost(None)
            elif tr._eof:
                tr._sock.shutdown(socket.SHUT_WR)  # type: ignore[union-attr]

    def write_eof(self) -> None:
        """Half-close: shut down the sending side once the queue has drained."""
        if self._closing or self._eof:
            return
        self._eof = True
        if not self._buffer_size:
            self._sock.shutdown(socket.SHUT_WR)  # type: ignore[union-attr]

    def can_write_eof(self) -> bool:
        return True

    # ------------------------------------------------------------------
    # Write flow control
    # ------------------------------------------------------------------

    def get_write_buffer_size(self) -> int:
        return self._buffer_size

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (self._low_water, self._high_water)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._high_water, self._low_water = checked_write_buffer_limits(high, low, 64 * 1024)
        if self._buffer_size > self._high_water and not self._protocol_paused:
            self._pause_protocol()

    def _pause_protocol(self) -> None:
        pause_protocol(self)

    def _resume_protocol(self) -> None:
        resume_protocol(self)

    # ------------------------------------------------------------------
    # Closing
    # ------------------------------------------------------------------

    def close(self) -> None:
        """Stop reading; connection_lost(None) once queued data is sent."""
        close_socket_transport(self, self._sock_fd, self._buffer_size)

    def abort(self) -> None:
        """Close now, dropping whatever is queued."""
        self._force_close(None)

    def _fatal_error(self, exc: BaseException, message: str = "Fatal error on transport") -> None:
        report_fatal_error(self, exc, message)
        self._force_close(exc)

    def _force_close(self, exc: BaseException | None) -> None:
        force_close(self, self._sock_fd, exc)

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        try:
            if self._protocol_connected:
                self._protocol.connection_lost(exc)
        finally:
            if self._peername is not _EXTRA_FILLED:
                self._fill_extra()  # while getsockname() still answers
            self._sock.close()  # type: ignore[union-attr]
            self._sock = None
            self._protocol = None
            self._loop = None
            server = self._server
            if server is not None:
                self._server = None
                server._detach(self)
            waiter = self._empty_waiter
            if waiter is not None and not waiter.done():
                waiter.set_exception(ConnectionError("Connection is closed by peer"))

    # ------------------------------------------------------------------
    # For loop.sendfile (asyncio's protocol with socket transports)
    # ------------------------------------------------------------------

    def _make_empty_waiter(self) -> Any:
        if self._empty_waiter is not None:
            raise RuntimeError("Empty waiter is already set")
        self._empty_waiter = self._loop.create_future()
        if not self._buffer_size:
            self._empty_waiter.set_result(None)
        return self._empty_waiter

    def _reset_empty_waiter(self) -> None:
        self._empty_waiter = None


# The read path.  Module functions rather than methods: compiled, the loop's
# run phase calls read_event as a C function (no attribute lookup, no bound
# method, no Python call per event), and read_event calls _read_buffered the
# same way.  The data_received path is read_event's own body rather than a
# function of its own: interpreted, every function is a Python frame per
# event.


def read_event(transport: StreamTransport) -> None:
    """A readable transport's turn: what the loop runs when its fd is readable.

    The loop runs it in the context copied when reading started (as it
    would run a reader Handle), once per readiness event.  Which read
    happens is decided here, per event, as asyncio's transport decides it:
    straight into a BufferedProtocol's buffer (_read_buffered), or recv into
    the shared buffer and hand data_received a bytes copy, here.  Either
    reads again at once while a read fills the buffer (_READS_PER_EVENT).
    """
    tr = transport  # compiled: tr's fields are C struct members
    if tr._buffered:
        _read_buffered(transport)
        return
    protocol = tr._protocol
    reads = 1
    while True:
        if tr._conn_lost:
            return
        try:
            # A copy of just the bytes received (the buffer is reused at
            # once), or after a large read a bytes object received into.
            # Interpreted, recv() itself (_syscalls.recv_bytes says why),
            # called here: through recv_bytes it would be a second call.
            if cython.compiled:
                data = recv_bytes(tr._sock, tr._io_fd, tr._recv_view, tr._big_reads)  # type: ignore[arg-type]
            else:
                data = tr._sock.recv(len(tr._recv_view))  # type: ignore[union-attr]
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            transport._fatal_error(exc, "Fatal read error on socket transport")
            return
        if not data:
            transport._read_eof()
            return
        # (A socket subclass's recv() may return any object: only a bytes
        # object's length is asked for.)
        n = len(data) if type(data) is bytes else 0
        tr._io_counts.read += n
        if cython.compiled:
            tr._big_reads = n >= _DIRECT_READ  # (interpreted, recv() does not ask)
        try:
            protocol.data_received(data)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            transport._fatal_error(exc, "Fatal error: protocol.data_received() call failed.")
            return
        # Again only if the read filled the buffer (the first test is
        # all a small read costs) and the protocol still wants more.
        if (
            n < STREAM_READ  # (the smaller of the two read sizes)
            or n < len(tr._recv_view)
            or not _reads_on(tr, protocol, reads)
        ):
            return
        reads += 1


def _read_buffered(self: StreamTransport) -> None:
    """The fd is readable: recv straight into the BufferedProtocol's buffer.

    Again at once while a read fills the buffer (_READS_PER_EVENT).
    """
    tr = self  # compiled: tr's fields are C struct members
    protocol = tr._protocol
    reads = 1
    while True:
        if tr._conn_lost:
            return
        try:
            buf = protocol.get_buffer(-1)
            size = len(buf)
            if not size:
                raise RuntimeError("get_buffer() returned an empty buffer")
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.get_buffer() call failed.")
            return
        try:
            if cython.compiled:
                nbytes = recv_into(tr._sock, tr._io_fd, buf)  # type: ignore[arg-type]
            else:
                nbytes = tr._sock.recv_into(buf)  # type: ignore[union-attr]  # (as in read_event)
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal read error on socket transport")
            return
        if not nbytes:
            self._read_eof()
            return
        tr._io_counts.read += nbytes
        try:
            protocol.buffer_updated(nbytes)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(exc, "Fatal error: protocol.buffer_updated() call failed.")
            return
        if (
            nbytes < size
            # (len() counts items: a buffer of wider items is full only
            # when its bytes are, asked of the rare read that may be.)
            or nbytes < memoryview(buf).nbytes
            or not _reads_on(tr, protocol, reads)
        ):
            return
        reads += 1


__all__ = ["StreamTransport"]
