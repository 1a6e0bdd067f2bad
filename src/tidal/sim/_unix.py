"""Unix stream sockets between the tasks of one simulated host.

A Unix socket path belongs to a host: n0's ``/tmp/app.sock`` is not n1's,
and no real file is made or looked at.  Each host has a table of the
socket files its programs bound (``Host.unix_paths``, path -> ``_Node``);
like a disk, it outlives a crash, so a restarted server finds its stale
socket file, as on a real machine (``create_unix_server`` removes it).

The byte stream is the simulated TCP's (``_net.SimSocket``: the same
readiness, flow control, half-close and resets), carried by pipes that
hand each segment to the peer at once: one kernel moves the bytes, so
there is no latency, no link to cut and nothing in flight.  What a real
Unix socket does differently from TCP, this does too: a connect completes
(or fails) inside ``connect()``; a path nobody bound is FileNotFoundError
(ENOENT), a bound path with no listener ConnectionRefusedError
(ECONNREFUSED); a listener queues backlog + 1 connections, and a
connect beyond that is BlockingIOError (EAGAIN), leaving the socket
unconnected (writable, and EINVAL to a read), as Linux's non-blocking
connect does; a send after the peer closed is BrokenPipeError (EPIPE);
closing a listener resets the connections it had not accepted.  While a
simulation runs, os.stat/lstat/unlink/remove called by a host's code on
one of its socket files act on the table, and socket.socketpair() makes
a simulated pair (``patches``).  Unix datagram sockets are not simulated.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
import threading
from typing import Any

from ._host import Host, current_host
from ._net import _UNIX_SEGMENT, Network, SimSocket, _oserror, _Pipe

# /proc/sys/net/core/somaxconn's default: the longest listen queue.
_SOMAXCONN = 4096


class _Node:
    """A socket file in a host's table: its inode number and the socket bound to it."""

    __slots__ = ("ino", "sock")

    def __init__(self, ino: int, sock: UnixSocket | None) -> None:
        self.ino = ino
        self.sock = sock


class UnixPaths:
    """A host's socket files, seen through the ``os`` functions that the
    loop uses on real ones (stat, remove, unlink; ``transports._base.unix_paths``)."""

    def __init__(self, table: dict[Any, _Node]) -> None:
        self._table = table

    def stat(self, path: Any) -> os.stat_result:
        node = self._table.get(_key(path))
        if node is None:
            raise FileNotFoundError(errno.ENOENT, "[simulated] No such file or directory", path)
        return os.stat_result((stat.S_IFSOCK | 0o755, node.ino, 0, 1, 0, 0, 0, 0, 0, 0))

    def remove(self, path: Any) -> None:
        if self._table.pop(_key(path), None) is None:
            raise FileNotFoundError(errno.ENOENT, "[simulated] No such file or directory", path)

    unlink = remove


def _key(path: Any) -> Any:
    """A path as the table keys it: str, or bytes for the abstract namespace."""
    path = os.fspath(path)
    if path[:1] in ("\0", b"\0"):
        return os.fsencode(path)
    return os.fsdecode(path)


class _LocalPipe(_Pipe):
    """One direction of a Unix stream connection: each segment reaches the
    peer as it is sent (no latency, no link, nothing in flight)."""

    def push(self, kind: int, payload: bytes = b"") -> None:
        net = self.net
        net.trace.record(net.clock.ns, _UNIX_SEGMENT, kind, self.label_id, len(payload), 0, 0, 0)
        self.dst._receive(kind, payload)


class UnixSocket(SimSocket):
    """An AF_UNIX SOCK_STREAM socket of a simulated host."""

    def __init__(self, net: Network, host: Host, proto: int = 0) -> None:
        super().__init__(net, host, socket.SOCK_STREAM, proto, socket.AF_UNIX)
        self._node: _Node | None = None

    def __repr__(self) -> str:
        return f"<SimSocket unix fd={self.fileno()} host={self.host.name} laddr={self._local!r} {self._state}>"

    def name(self) -> str:
        return f"{self.host.name}:{self._local or '?'}"

    def getsockname(self) -> Any:
        self._check_open()
        return "" if self._local is None else self._local

    def bind(self, address: Any) -> None:
        self._check_open()
        if self._local is not None:
            raise _oserror(errno.EINVAL)
        key = _key(address)
        table = self.host.unix_paths
        if key in table:
            raise _oserror(errno.EADDRINUSE)
        self.host.unix_inodes += 1
        self._node = table[key] = _Node(self.host.unix_inodes, self)
        self._local = key  # (a path: see connect)

    def listen(self, backlog: int = 128) -> None:
        self._check_open()
        if self._local is None:
            raise _oserror(errno.EINVAL)  # (Linux would bind an abstract name)
        self._state = "listening"
        # Linux queues one more than the backlog (and at most somaxconn).
        self._backlog_max = min(max(backlog, 0), _SOMAXCONN) + 1

    def connect(self, address: Any) -> None:
        self._check_open()
        if self._state == "connected":
            raise _oserror(errno.EISCONN)
        if self._state != "new":
            raise _oserror(errno.EINVAL)
        key = _key(address)
        node = self.host.unix_paths.get(key)
        if node is None:
            raise FileNotFoundError(errno.ENOENT, "[simulated] No such file or directory")
        listener = node.sock
        if listener is None or listener._state != "listening":
            raise ConnectionRefusedError(errno.ECONNREFUSED, "[simulated] Connection refused")
        if len(listener._backlog) >= listener._backlog_max:
            raise BlockingIOError(errno.EAGAIN, "[simulated] the listener's backlog is full")
        net = self.net
        conn = UnixSocket(net, self.host, self.proto)
        # (Addresses here are paths, not the (ip, port) of SimSocket's annotations.)
        conn._local = listener._local
        conn._peer = "" if self._local is None else self._local  # type: ignore[assignment]
        self._peer = key
        _join(conn, self)
        listener._backlog.append(conn)
        net.trace.add(net.clock.ns, f"unix connect {self.name()}>{listener.name()}")
        listener._wake()

    def _readiness(self) -> int:
        if self._state == "new":
            # Unconnected (as after a connect that found the backlog full):
            # Linux reports it hung up, readable and writable.
            return self.net.READ | self.net.WRITE
        return SimSocket._readiness(self)

    def recv(self, size: int, flags: int = 0) -> bytes:
        if self._state == "new":
            raise _oserror(errno.EINVAL)  # what Linux says to a read on it
        return SimSocket.recv(self, size, flags)  # type: ignore[no-any-return]

    def send(self, data: Any, flags: int = 0) -> int:
        peer = self._peer_sock
        if peer is not None and peer._state == "closed" and not self._reset:
            raise BrokenPipeError(errno.EPIPE, "[simulated] Broken pipe")
        return SimSocket.send(self, data, flags)

    def close(self) -> None:
        if self._state == "listening":
            # Connections never accepted are reset, not ended (Linux).
            for conn in self._backlog:
                conn._die()
                conn.close()
            self._backlog.clear()
        SimSocket.close(self)

    def _unbind(self) -> None:
        # The socket file stays (a later connect is refused) until unlinked.
        node = self._node
        if node is not None and node.sock is self:
            node.sock = None


def _join(a: UnixSocket, b: UnixSocket) -> None:
    """Connect `a` and `b`: each hands what it sends to the other."""
    a._state = b._state = "connected"
    a._peer_sock, b._peer_sock = b, a
    a._out = _LocalPipe(a.net, a, b)
    b._out = _LocalPipe(a.net, b, a)


def patches(net: Network) -> list[tuple[Any, str, Any]]:
    """What a simulation patches while it runs, for a host's code:
    socket.socketpair() makes a simulated pair of that host; os.stat,
    lstat, unlink and remove on a socket file of that host (a server that
    unlinks its path at exit, os.path.exists on it) act on the host's
    table, and on any other path on the real file system."""
    patches: list[tuple[Any, str, Any]] = [(socket, "socketpair", _socketpair(net))]
    for name, op in (
        ("stat", "stat"),
        ("lstat", "stat"),
        ("unlink", "remove"),
        ("remove", "remove"),
    ):
        patches.append((os, name, _on_socket_files(getattr(os, name), op)))
    return patches


def _on_socket_files(real: Any, op: str) -> Any:
    def host_os_call(path: Any, *args: Any, **kwargs: Any) -> Any:
        host = current_host.get(None)
        if host is not None and host.unix_paths and not args and not kwargs:
            try:
                key = _key(path)
            except TypeError:  # an fd
                key = None
            if key is not None and key in host.unix_paths:
                return getattr(UnixPaths(host.unix_paths), op)(path)
        return real(path, *args, **kwargs)

    host_os_call.__name__ = real.__name__
    host_os_call.__doc__ = real.__doc__
    return host_os_call


def _socketpair(net: Network) -> Any:
    real = socket.socketpair

    def socketpair(
        family: Any = None, type: int = socket.SOCK_STREAM, proto: int = 0
    ) -> tuple[Any, Any]:
        host = current_host.get(None)
        if (
            host is None
            or family not in (None, socket.AF_UNIX)  # (Linux pairs Unix sockets only)
            or threading.get_ident() != net.loop._thread_id
        ):
            # (A thread of a host, as asyncio.to_thread runs one, may make
            # an event loop of its own: its self-pipe is a real pair.)
            return real(family, type, proto)
        a, b = socket_factory(net, host, type, proto), socket_factory(net, host, type, proto)
        a._peer = b._peer = ""  # type: ignore[assignment]  # (unnamed, as a real pair's)
        _join(a, b)
        net.trace.add(net.clock.ns, f"unix socketpair {a.name()} {a.fileno()} {b.fileno()}")
        return a, b

    socketpair.__doc__ = real.__doc__
    return socketpair


def socket_factory(net: Network, host: Host, type: int, proto: int) -> UnixSocket:
    """A simulated Unix socket of `host` (stream only)."""
    if type != socket.SOCK_STREAM:
        raise RuntimeError(
            f"the simulated network has Unix stream sockets only (socket type {type!r})"
        )
    return UnixSocket(net, host, proto)
