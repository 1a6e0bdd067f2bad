"""Low-level socket coroutines: the loop's ``sock_*`` methods.

Every operation tries its system call at once.  Only when the kernel says
"would block" does it make a future and register a reader or writer; data
that is already there costs one syscall and no future.  That is asyncio's
contract too (its selector loop does the same), and it is what makes a
request/response exchange over ``sock_recv``/``sock_sendall`` cheap.

The pending path, the same for every operation:

* the reader/writer callback is a module-level function whose arguments
  (future, socket, size ...) ride on the Handle the loop makes once at
  registration: no closure, no ``functools.partial``;
* the future gets one done-callback (``_IoDone``) that unregisters the
  reader/writer, so completion, an error and cancellation all clean up the
  same way;
* a second pending operation on the same fd replaces the first one's
  reader/writer (as in asyncio); the first one's done-callback then sees its
  handle is no longer registered and leaves the new one alone.

These functions take the loop as ``self``: ``_loop.py`` binds them as
methods of ``EventLoop``.
"""

from __future__ import annotations

import socket
from typing import Any, TYPE_CHECKING

if TYPE_CHECKING:
    from ._loop import EventLoop  # annotations only: _loop imports this module

try:
    import ssl
except ImportError:  # pragma: no cover - Python built without ssl
    ssl = None  # type: ignore[assignment]

from . import _dns

try:
    # Compiled, `cython` is Cython's compile-time module and the `if not
    # cython.compiled:` block below is dropped: its names are the C functions
    # of _syscalls_c.pxd (cimported by _sock.pxd).
    import cython
except ImportError:  # interpreted, without Cython installed
    from types import SimpleNamespace

    cython = SimpleNamespace(compiled=False)
if not cython.compiled:
    from ._syscalls import recv_into, recv_nowait, send

# asyncio only resolves host names for these families (a Unix path, a
# Bluetooth address ... go to connect() as given).
_RESOLVED_FAMILIES: tuple[int, ...] = (
    (socket.AF_INET, socket.AF_INET6) if socket.has_ipv6 else (socket.AF_INET,)
)

_WOULD_BLOCK = (BlockingIOError, InterruptedError)


def check_not_ssl(sock: Any) -> None:
    """Refuse an ssl.SSLSocket, as every loop method that takes a socket does."""
    if ssl is not None and isinstance(sock, ssl.SSLSocket):
        raise TypeError("Socket cannot be of type SSLSocket")


def _check_sock(loop: EventLoop, sock: Any) -> int:
    """asyncio's preconditions, in asyncio's order (the blocking test is
    debug-only there too); then the fd _syscalls may use directly, or -1:
    call the socket's methods (a socket.socket subclass, or any other
    object, may have its own).

    One call per sock_* call: interpreted, every helper is a Python frame,
    and a request/response exchange makes two sock_* calls per message.
    """
    if type(sock) is socket.socket:
        fd = sock.fileno()  # (a plain socket is no ssl.SSLSocket)
    else:
        check_not_ssl(sock)
        fd = -1
    if loop._debug and sock.gettimeout() != 0:
        raise ValueError("the socket must be non-blocking")
    return fd


class _IoDone:
    """Done-callback of a pending sock_* future: unregister its reader/writer.

    Only if the handle registered for this operation is still the fd's
    reader/writer: a later operation on the same fd may have replaced it,
    and that one must keep waiting.  A read parks the fd in the poller
    instead (the next read on the socket re-enables it more cheaply than
    registering it anew: see EpollPoller.park).
    """

    __slots__ = ("_fd", "_handle", "_loop", "_writer")

    def __init__(self, loop: EventLoop, fd: int, handle: Any, writer: bool) -> None:
        self._loop = loop
        self._fd = fd
        self._handle = handle
        self._writer: bool = writer

    def __call__(self, fut: Any) -> None:
        loop = self._loop
        fd = self._fd
        if self._writer:
            if loop._writers.get(fd) is self._handle:
                loop._remove_writer(fd)
        elif loop._readers.get(fd) is self._handle:
            loop._park_reader(fd)
        # Break the future -> callback -> handle -> future cycle at once.
        self._handle = None


def _wait(loop: EventLoop, fd: int, write: bool, op: Any, *args: Any) -> Any:
    """Make the future; register ``_retry(fut, op, *args)`` as fd's writer
    (or reader) until it is done; return the future."""
    fut = loop.create_future()
    loop._ensure_fd_no_transport(fd)
    if write:
        handle = loop._add_writer(fd, _retry, fut, op, *args)
    else:
        handle = loop._add_reader(fd, _retry, fut, op, *args)
    fut.add_done_callback(_IoDone(loop, fd, handle, write))
    return fut


# ----------------------------------------------------------------------
# Receiving
# ----------------------------------------------------------------------


def _retry(fut: Any, op: Any, *args: Any) -> None:
    """The fd is ready again: retry the socket call that would have blocked.

    The one reader/writer callback of every pending sock_* operation: `op`
    is the bound socket method (recv, recv_into, recvfrom, recvfrom_into)
    or a function of this module (_sendto, _accept, _connect_result); its
    result settles the future, its error too, unless it would block again.
    """
    # The future may have been cancelled since the fd was found ready.
    if fut.done():
        return
    try:
        result = op(*args)
    except _WOULD_BLOCK:
        return  # spurious wake-up: stay registered
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        fut.set_exception(exc)
    else:
        fut.set_result(result)
    finally:
        # The error's traceback holds this frame: without its future, that
        # is not a cycle (error -> frame -> future -> error).
        fut = None


async def sock_recv(self: EventLoop, sock: socket.socket, n: int) -> bytes:
    """Receive up to `n` bytes; b"" means the peer closed its end."""
    data = recv_nowait(sock, _check_sock(self, sock), n)
    if data is not None:
        return data
    return await _wait(self, sock.fileno(), False, sock.recv, n)


async def sock_recv_into(self: EventLoop, sock: socket.socket, buf: Any) -> int:
    """Receive into the writable buffer `buf`; return how many bytes were written."""
    fd = _check_sock(self, sock)
    try:
        return recv_into(sock, fd, buf)
    except _WOULD_BLOCK:
        pass
    return await _wait(self, sock.fileno(), False, sock.recv_into, buf)


async def sock_recvfrom(self: EventLoop, sock: socket.socket, bufsize: int) -> tuple[bytes, Any]:
    """Receive one datagram: (data, sender address)."""
    _check_sock(self, sock)
    try:
        return sock.recvfrom(bufsize)
    except _WOULD_BLOCK:
        pass
    return await _wait(self, sock.fileno(), False, sock.recvfrom, bufsize)


async def sock_recvfrom_into(
    self: EventLoop, sock: socket.socket, buf: Any, nbytes: int = 0
) -> tuple[int, Any]:
    """Receive one datagram into `buf` (at most `nbytes`, 0: len(buf)): (size, address)."""
    _check_sock(self, sock)
    if not nbytes:
        nbytes = len(buf)
    try:
        return sock.recvfrom_into(buf, nbytes)
    except _WOULD_BLOCK:
        pass
    return await _wait(self, sock.fileno(), False, sock.recvfrom_into, buf, nbytes)


# ----------------------------------------------------------------------
# Sending
# ----------------------------------------------------------------------


class _SendAll:
    """The rest of a sock_sendall: a view of the data and how far it got.

    Its ``on_writable`` is the writer callback; keeping the position here
    (not in a closure or a one-element list) keeps the callback a plain
    method with typed state.
    """

    __slots__ = ("_fut", "_pos", "_sock", "_view")

    def __init__(self, fut: Any, sock: socket.socket, view: memoryview, pos: int) -> None:
        self._fut = fut
        self._sock = sock
        self._view = view
        self._pos: int = pos

    def on_writable(self) -> None:
        fut = self._fut
        if fut is None or fut.done():
            # Cancelled after the fd was found writable, in the same turn.
            return
        view = self._view
        pos = self._pos
        try:
            n = self._sock.send(view[pos:])
        except _WOULD_BLOCK:
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            fut.set_exception(exc)
            # Its traceback holds this frame, and so self: not the future.
            self._fut = fut = None
            return
        pos += n
        if pos == len(view):
            fut.set_result(None)
        else:
            self._pos = pos


async def sock_sendall(self: EventLoop, sock: socket.socket, data: Any) -> None:
    """Send all of `data`, waiting for room as often as needed."""
    fd = _check_sock(self, sock)
    try:
        n = send(sock, fd, data)
    except _WOULD_BLOCK:
        n = 0
    # bytes/bytearray: len() is the size.  Anything else is measured in
    # bytes through a byte view (len() of an array('i') counts items, and a
    # partial send would then look complete).
    if type(data) is bytes or type(data) is bytearray:
        if n == len(data):
            return
        view = memoryview(data)
    else:
        view = memoryview(data)
        if view.itemsize != 1 or view.ndim != 1:
            view = view.cast("B")
        if n == len(view):
            return
    fut = self.create_future()
    fd = sock.fileno()
    self._ensure_fd_no_transport(fd)
    state = _SendAll(fut, sock, view, n)
    handle = self._add_writer(fd, state.on_writable)
    fut.add_done_callback(_IoDone(self, fd, handle, True))
    return await fut


async def sock_sendto(self: EventLoop, sock: socket.socket, data: Any, address: Any) -> int:
    """Send one datagram to `address`; return the number of bytes sent."""
    _check_sock(self, sock)
    try:
        return sock.sendto(data, address)
    except _WOULD_BLOCK:
        pass
    return await _wait(self, sock.fileno(), True, _sendto, sock, data, address)


def _sendto(sock: socket.socket, data: Any, address: Any) -> int:
    # Looks sock.sendto up again on each retry (not a bound method captured
    # once, as the reads pass to _retry): callers may swap it, and
    # asyncio's tests do.
    return sock.sendto(data, 0, address)


# ----------------------------------------------------------------------
# Connecting and accepting
# ----------------------------------------------------------------------


async def sock_connect(self: EventLoop, sock: socket.socket, address: Any) -> None:
    """Connect `sock` to `address` (host names resolved for INET/INET6 sockets)."""
    _check_sock(self, sock)
    if sock.family in _RESOLVED_FAMILIES:
        resolved = await _dns.resolve(
            self, address, family=sock.family, type=sock.type, proto=sock.proto
        )
        address = resolved[0][4]
    await connect(self, sock, address)


def begin_connect(loop: EventLoop, sock: socket.socket, address: Any) -> Any:
    """Start connecting non-blocking `sock` to `address`: the future settles when the kernel is done.

    The one non-blocking connect of the loop (sock_connect, and each attempt
    of create_connection).  While it is in progress a writer is registered
    on the socket; it goes when the future is done, cancelled included.  An
    owner that closes the socket before that must remove it first
    (``loop._remove_writer``): once closed, the fd number may be reused.
    """
    try:
        sock.connect(address)
    except _WOULD_BLOCK:
        # In progress (EINPROGRESS; or EINTR, after which the connect goes
        # on in the background): writable means it finished, either way.
        return _wait(loop, sock.fileno(), True, _connect_result, sock, address)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:  # delivered through the future, as asyncio does
        return _settled(loop, exc)
    return _settled(loop, None)


def _settled(loop: EventLoop, exc: BaseException | None) -> Any:
    fut = loop.create_future()
    if exc is None:
        fut.set_result(None)
    else:
        fut.set_exception(exc)
    return fut


async def connect(loop: EventLoop, sock: socket.socket, address: Any) -> None:
    """begin_connect and wait.  Cancelled, its writer goes at once (the
    caller may close sock next), unless another operation on the same
    socket has replaced it since (a sock_connect retried at once)."""
    fut = begin_connect(loop, sock, address)
    fd = sock.fileno()
    writer = loop._writers.get(fd)  # the one begin_connect registered, if it waits
    try:
        await fut
    finally:
        if fut.cancelled() and writer is not None and loop._writers.get(fd) is writer:
            loop._remove_writer(fd)
        # A failed connect's exception holds this frame: drop the future so
        # the exception -> frame -> future -> exception cycle is not made.
        fut = writer = None


def _connect_result(sock: socket.socket, address: Any) -> None:
    """The socket turned writable: raise what its connect failed with, if it did."""
    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err != 0:
        # OSError(errno, ...) builds the matching subclass
        # (ConnectionRefusedError ...), as asyncio's message does.
        raise OSError(err, f"Connect call failed {address}")


async def sock_accept(self: EventLoop, sock: socket.socket) -> tuple[socket.socket, Any]:
    """Accept a connection on listening `sock`: (non-blocking conn, peer address)."""
    _check_sock(self, sock)
    try:
        return _accept(sock)
    except _WOULD_BLOCK:
        pass
    return await _wait(self, sock.fileno(), False, _accept, sock)


def _accept(sock: socket.socket) -> tuple[socket.socket, Any]:
    conn, address = sock.accept()
    conn.setblocking(False)
    return conn, address
