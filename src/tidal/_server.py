"""Servers: create_server, create_unix_server, connect_accepted_socket, Server.

The Server owns its listening sockets and their accept readers (asyncio
keeps that logic on the loop; here the loop only binds the three functions
below as methods).  Accepting works like this:

* one reader per listening socket, made once by ``_start_serving``;
* on readiness, ``accept()`` up to `backlog` times (a burst of connections
  costs one loop turn, not one each), and for each connection make the
  protocol and a StreamTransport right there — no Task per connection;
* when the process or system runs out of fds or memory (EMFILE, ENFILE,
  ENOBUFS, ENOMEM), report it once through the exception handler, stop
  watching that socket, and watch it again after ``ACCEPT_RETRY_DELAY``
  seconds.  Level-triggered readiness would otherwise wake the loop for
  the same pending connection forever: the loop would spin, at 100% CPU,
  without making progress.  The pending connections stay in the kernel's
  backlog and are served once fds free up.

The Server counts its connections, which is what ``wait_closed`` (3.12.1+:
waits for every connection to end) uses; it holds no reference to them, so an
abandoned transport can still be collected and warn.  ``close_clients`` and
``abort_clients`` (3.13) find them among the loop's transports
(``loop._open_transports()``: every StreamTransport is found there while its
socket is open), so a connection costs the server one count, not a WeakSet
entry (~145 bytes).
"""

from __future__ import annotations

import collections.abc
import contextvars
import errno
import itertools
import logging
import os
import socket
import stat
import sys
from asyncio import events, exceptions, protocols, tasks, trsock
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._loop import EventLoop
    from asyncio import Transport
    from typing import TypeVar

    _ProtocolT = TypeVar("_ProtocolT", bound=protocols.BaseProtocol)

from . import _connect, _dns, _sock
from .transports import _tls
from .transports._base import set_reuseport, unix_paths
from .transports._stream import StreamTransport


logger = logging.getLogger("asyncio")

# Seconds to wait before watching a listening socket again after accept()
# ran out of fds or memory (asyncio's ACCEPT_RETRY_DELAY).
ACCEPT_RETRY_DELAY = 1
# accept() errors that mean "out of resources, try later", not "broken".
_RESOURCE_ERRNOS = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM))

_PY312_1 = sys.version_info >= (3, 12, 1)
_PY313 = sys.version_info >= (3, 13)

_ProtocolFactory = Callable[[], protocols.BaseProtocol]


class Server(events.AbstractServer):
    """A listening server: what create_server and create_unix_server return."""

    def __init__(
        self,
        loop: EventLoop,
        sockets: list[socket.socket],
        protocol_factory: _ProtocolFactory,
        ssl_context: Any,
        backlog: int,
        ssl_handshake_timeout: float | None,
        ssl_shutdown_timeout: float | None = None,
    ) -> None:
        self._loop = loop
        self._sockets: list[socket.socket] | None = sockets
        # Connections attached and not yet detached (see the module docstring).
        self._active_count = 0
        self._waiters: list[Any] | None = []
        self._protocol_factory = protocol_factory
        self._backlog = backlog
        self._ssl_context = ssl_context
        self._ssl_handshake_timeout = ssl_handshake_timeout
        self._ssl_shutdown_timeout = ssl_shutdown_timeout
        self._serving = False
        self._serving_forever_fut: Any = None
        # Listening socket -> timer that re-arms its accept reader after an
        # out-of-resources pause (cancelled if the server closes first).
        self._accept_retry: dict[socket.socket, Any] = {}
        # Unix socket -> inode of the file it created, removed on close
        # only if the file is still that one (3.13's cleanup_socket).
        self._unix_cleanup: dict[socket.socket, tuple[int, Any]] = {}  # sock -> (inode, unix_paths)

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} sockets={self.sockets!r}>"

    # ------------------------------------------------------------------
    # Connections (called by StreamTransport)
    # ------------------------------------------------------------------

    # A transport attaches once (in its __init__) and detaches once (when its
    # socket is closed: connection_lost, or __del__ for an abandoned one; each
    # clears its _server first).  `transport` is optional: 3.11/3.12's
    # signature is a bare count, which their own test suites call directly.
    def _attach(self, transport: Any = None) -> None:
        self._active_count += 1

    def _detach(self, transport: Any = None) -> None:
        self._active_count -= 1
        if self._sockets is None and not self._has_clients():
            self._wakeup()

    def _has_clients(self) -> bool:
        return self._active_count > 0

    def _live_clients(self) -> list[Any]:
        """The open transports attached to this server, found among the loop's."""
        return [t for t in self._loop._open_transports() if getattr(t, "_server", None) is self]

    def _wakeup(self) -> None:
        waiters = self._waiters
        self._waiters = None
        if waiters is None:
            return
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # ------------------------------------------------------------------
    # Accepting
    # ------------------------------------------------------------------

    def _start_serving(self) -> None:
        if self._serving:
            return
        self._serving = True
        for sock in self._sockets:  # type: ignore[union-attr]
            sock.listen(self._backlog)
            self._loop._add_reader(sock.fileno(), self._accept_ready, sock)

    def _resume_accepting(self, sock: socket.socket) -> None:
        """The retry delay is over: watch the listening socket again."""
        self._accept_retry.pop(sock, None)
        if self._sockets is not None and not self._loop.is_closed():
            self._loop._add_reader(sock.fileno(), self._accept_ready, sock)

    def _accept_ready(self, sock: socket.socket) -> None:
        """Connections are pending: accept up to `backlog` of them this turn."""
        loop = self._loop
        for _ in range(self._backlog):
            if self._sockets is None:
                return  # a protocol factory closed the server
            try:
                conn, addr = sock.accept()
                if loop._debug:
                    logger.debug("%r got a new connection from %r: %r", self, addr, conn)
                conn.setblocking(False)
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return  # the backlog is empty
            except OSError as exc:
                if exc.errno not in _RESOURCE_ERRNOS:
                    raise  # the loop reports it; the reader stays
                # Out of fds/memory.  The pending connection keeps the
                # socket readable, so stop watching it for a while rather
                # than wake up for it on every turn.
                loop.call_exception_handler(
                    {
                        "message": "socket.accept() out of system resource",
                        "exception": exc,
                        "socket": trsock.TransportSocket(sock),
                    }
                )
                loop._remove_reader(sock.fileno())
                if sock not in self._accept_retry:
                    self._accept_retry[sock] = loop.call_later(
                        ACCEPT_RETRY_DELAY, self._resume_accepting, sock
                    )
                return
            # Each connection's protocol starts from a copy of the server's
            # context, as it would in asyncio's per-connection Task: what one
            # protocol factory sets in a ContextVar does not leak to the next.
            contextvars.copy_context().run(self._accept_one, conn, addr)

    def _accept_one(self, conn: socket.socket, addr: Any) -> None:
        protocol = None
        transport: Any = None
        try:
            protocol = self._protocol_factory()
            if self._ssl_context is not None:
                transport = _tls.accept_tls(
                    self._loop, conn, protocol, self._ssl_context, addr, self,
                    self._ssl_handshake_timeout, self._ssl_shutdown_timeout,
                )  # fmt: skip
            else:
                transport = StreamTransport(self._loop, conn, protocol, None, None, self, addr)
        except (SystemExit, KeyboardInterrupt):
            conn.close()
            raise
        except BaseException as exc:
            if transport is None:
                conn.close()
            else:
                transport.close()
            # asyncio reports this only in debug mode.
            if self._loop._debug:
                context: dict[str, Any] = {
                    "message": "Error on transport creation for incoming connection",
                    "exception": exc,
                }
                if protocol is not None:
                    context["protocol"] = protocol
                if transport is not None:
                    context["transport"] = transport
                self._loop.call_exception_handler(context)

    def _stop_serving(self, sock: socket.socket) -> None:
        timer = self._accept_retry.pop(sock, None)
        if timer is not None:
            timer.cancel()
        path = sock.getsockname() if sock in self._unix_cleanup else None
        if not self._loop.is_closed():
            self._loop._remove_reader(sock.fileno())
        sock.close()
        if path is not None:
            prev_ino, paths = self._unix_cleanup.pop(sock)
            try:
                if paths.stat(path).st_ino == prev_ino:
                    paths.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as err:
                logger.error("Unable to clean up listening UNIX socket %r: %r", path, err)

    # ------------------------------------------------------------------
    # AbstractServer
    # ------------------------------------------------------------------

    def get_loop(self) -> Any:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    @property
    def sockets(self) -> tuple[trsock.TransportSocket, ...]:
        if self._sockets is None:
            return ()
        return tuple(trsock.TransportSocket(s) for s in self._sockets)

    def close(self) -> None:
        """Stop listening (existing connections stay open)."""
        sockets = self._sockets
        if sockets is None:
            return
        self._sockets = None
        for sock in sockets:
            self._stop_serving(sock)
        self._serving = False
        fut = self._serving_forever_fut
        if fut is not None and not fut.done():
            fut.cancel()
            self._serving_forever_fut = None
        if not self._has_clients():
            self._wakeup()

    def close_clients(self) -> None:
        """Close every connection this server accepted (3.13)."""
        for transport in self._live_clients():
            transport.close()

    def abort_clients(self) -> None:
        """Abort every connection this server accepted (3.13)."""
        for transport in self._live_clients():
            transport.abort()

    async def start_serving(self) -> None:
        self._start_serving()
        # Skip one loop turn so the accept readers are in place.
        await tasks.sleep(0)

    async def serve_forever(self) -> None:
        if self._serving_forever_fut is not None:
            raise RuntimeError(f"server {self!r} is already being awaited on serve_forever()")
        if self._sockets is None:
            raise RuntimeError(f"server {self!r} is closed")
        self._start_serving()
        self._serving_forever_fut = self._loop.create_future()
        try:
            await self._serving_forever_fut
        except exceptions.CancelledError:
            try:
                self.close()
                await self.wait_closed()
            finally:
                raise
        finally:
            self._serving_forever_fut = None

    async def wait_closed(self) -> None:
        """Wait until the server is closed and (3.12.1+) all its connections are gone.

        Before 3.12.1 asyncio returned at once once the server was closed,
        connections or not; tidal follows the running Python.
        """
        if self._waiters is None:
            return
        if not _PY312_1 and self._sockets is None:
            return
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        await waiter


# ----------------------------------------------------------------------
# Loop methods (bound on EventLoop; `self` is the loop)
# ----------------------------------------------------------------------


async def _resolve_server_host(loop: EventLoop, host: Any, port: Any, family: int, flags: int) -> Any:
    infos = await _dns.resolve(
        loop, (host, port), family=family, type=socket.SOCK_STREAM, flags=flags
    )
    if not infos:
        raise OSError(f"getaddrinfo({host!r}) returned empty list")
    return infos


async def create_server(
    self: EventLoop,
    protocol_factory: _ProtocolFactory,
    host: Any = None,
    port: Any = None,
    *,
    family: int = socket.AF_UNSPEC,
    flags: int = socket.AI_PASSIVE,
    sock: socket.socket | None = None,
    backlog: int = 100,
    ssl: Any = None,
    reuse_address: bool | None = None,
    reuse_port: bool | None = None,
    keep_alive: bool | None = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
    start_serving: bool = True,
) -> Server:
    """A TCP server on host(s)/port or an existing listening socket."""
    if isinstance(ssl, bool):
        raise TypeError("ssl argument must be an SSLContext or None")
    if ssl_handshake_timeout is not None and ssl is None:
        raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
    if ssl_shutdown_timeout is not None and ssl is None:
        raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
    if sock is not None:
        _sock.check_not_ssl(sock)
    if ssl is not None:
        # Checked now: asyncio accepts a bad value here and then fails every handshake.
        _tls.check_timeouts(ssl_handshake_timeout, ssl_shutdown_timeout)

    if host is not None or port is not None:
        if sock is not None:
            raise ValueError("host/port and sock can not be specified at the same time")
        if reuse_address is None:
            reuse_address = os.name == "posix" and sys.platform != "cygwin"
        if host == "":
            hosts: Any = [None]
        elif isinstance(host, str) or not isinstance(host, collections.abc.Iterable):
            hosts = [host]
        else:
            hosts = list(host)

        if len(hosts) == 1:
            # The usual case: no gather (and no Task) for a single host.
            infos_lists = [await _resolve_server_host(self, hosts[0], port, family, flags)]
        else:
            infos_lists = await tasks.gather(
                *[_resolve_server_host(self, h, port, family, flags) for h in hosts]
            )
        # A set: a host listed twice (or two names for one address) binds once.
        infos = set(itertools.chain.from_iterable(infos_lists))

        sockets: list[socket.socket] = []
        completed = False
        try:
            for af, socktype, proto, _canonname, sa in infos:
                try:
                    sock = self._socket_factory(af, socktype, proto)
                except OSError:
                    # Assume it is a bad family/type/protocol combination.
                    if self._debug:
                        logger.warning(
                            "create_server() failed to create socket.socket(%r, %r, %r)",
                            af,
                            socktype,
                            proto,
                            exc_info=True,
                        )
                    continue
                sockets.append(sock)
                if reuse_address:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, True)
                if reuse_port:
                    set_reuseport(sock)
                if keep_alive:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, True)
                # Linux listens on both families through one v6 socket by
                # default; we bind one socket per family, so v6 stays v6.
                if af == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, True)
                try:
                    sock.bind(sa)
                except OSError as err:
                    if not _PY313:
                        raise OSError(
                            err.errno,
                            "error while attempting to bind on address %r: %s"
                            % (sa, (err.strerror or str(err)).lower()),
                        ) from None
                    msg = "error while attempting to bind on address %r: %s" % (
                        sa,
                        str(err).lower(),
                    )
                    if err.errno == errno.EADDRNOTAVAIL:
                        # Assume the family is not enabled (bpo-30945).
                        sockets.pop()
                        sock.close()
                        if self._debug:
                            logger.warning(msg)
                        continue
                    raise OSError(err.errno, msg) from None
            if _PY313 and not sockets:
                raise OSError(
                    "could not bind on any address out of %r" % ([info[4] for info in infos],)
                )
            completed = True
        finally:
            if not completed:
                for s in sockets:
                    s.close()
    else:
        if sock is None:
            raise ValueError("Neither host/port nor sock were specified")
        if sock.type != socket.SOCK_STREAM:
            raise ValueError(f"A Stream Socket was expected, got {sock!r}")
        sockets = [sock]

    for s in sockets:
        s.setblocking(False)
    server = Server(
        self, sockets, protocol_factory, ssl, backlog, ssl_handshake_timeout, ssl_shutdown_timeout
    )
    if start_serving:
        server._start_serving()
        # Skip one loop turn so the accept readers are in place.
        await tasks.sleep(0)
    if self._debug:
        logger.info("%r is serving", server)
    return server


if _PY313:

    async def create_unix_server(
        self: EventLoop,
        protocol_factory: _ProtocolFactory,
        path: Any = None,
        *,
        sock: socket.socket | None = None,
        backlog: int = 100,
        ssl: Any = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
        start_serving: bool = True,
        cleanup_socket: bool = True,
    ) -> Server:
        """A Unix stream server on a path (a stale socket file is replaced) or a socket."""
        return await _create_unix_server(
            self, protocol_factory, path, sock, backlog, ssl,
            ssl_handshake_timeout, ssl_shutdown_timeout, start_serving, cleanup_socket,
        )  # fmt: skip

else:

    async def create_unix_server(  # type: ignore[misc]
        self: EventLoop,
        protocol_factory: _ProtocolFactory,
        path: Any = None,
        *,
        sock: socket.socket | None = None,
        backlog: int = 100,
        ssl: Any = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
        start_serving: bool = True,
    ) -> Server:
        """A Unix stream server on a path (a stale socket file is replaced) or a socket.

        (3.11/3.12 signature: ``cleanup_socket`` arrived in 3.13, as in asyncio.)
        """
        return await _create_unix_server(
            self, protocol_factory, path, sock, backlog, ssl,
            ssl_handshake_timeout, ssl_shutdown_timeout, start_serving, False,
        )  # fmt: skip


async def _create_unix_server(
    self: EventLoop,
    protocol_factory: _ProtocolFactory,
    path: Any,
    sock: socket.socket | None,
    backlog: int,
    ssl: Any,
    ssl_handshake_timeout: float | None,
    ssl_shutdown_timeout: float | None,
    start_serving: bool,
    cleanup_socket: bool,
) -> Server:
    if isinstance(ssl, bool):
        raise TypeError("ssl argument must be an SSLContext or None")
    if ssl_handshake_timeout is not None and not ssl:
        raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
    if ssl_shutdown_timeout is not None and not ssl:
        raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
    if ssl is not None:
        _tls.check_timeouts(ssl_handshake_timeout, ssl_shutdown_timeout)

    paths = unix_paths(self)
    if path is not None:
        if sock is not None:
            raise ValueError("path and sock can not be specified at the same time")
        path = os.fspath(path)
        sock = self._socket_factory(socket.AF_UNIX, socket.SOCK_STREAM, 0)
        # An abstract socket (leading NUL, str or bytes) has no file.
        if path[0] not in (0, "\x00"):
            try:
                if stat.S_ISSOCK(paths.stat(path).st_mode):
                    paths.remove(path)  # a stale socket from an earlier run
            except FileNotFoundError:
                pass
            except OSError as err:
                # The directory may only allow creating the socket.
                logger.error("Unable to check or remove stale UNIX socket %r: %r", path, err)
        try:
            sock.bind(path)
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                raise OSError(errno.EADDRINUSE, f"Address {path!r} is already in use") from None
            raise
        except BaseException:
            sock.close()
            raise
    else:
        if sock is None:
            raise ValueError("path was not specified, and no sock specified")
        if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
            raise ValueError(f"A UNIX Domain Stream Socket was expected, got {sock!r}")

    cleanup_ino = None
    if cleanup_socket:
        bound = sock.getsockname()
        if bound and bound[0] not in (0, "\x00"):
            try:
                cleanup_ino = paths.stat(bound).st_ino
            except FileNotFoundError:
                pass

    sock.setblocking(False)
    server = Server(
        self, [sock], protocol_factory, ssl, backlog, ssl_handshake_timeout, ssl_shutdown_timeout
    )
    if cleanup_ino is not None:
        server._unix_cleanup[sock] = (cleanup_ino, paths)
    if start_serving:
        server._start_serving()
        # Skip one loop turn so the accept reader is in place.
        await tasks.sleep(0)
    return server


async def connect_accepted_socket(
    self: EventLoop,
    protocol_factory: Callable[[], _ProtocolT],
    sock: socket.socket,
    *,
    ssl: Any = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
) -> tuple[Transport, _ProtocolT]:
    """Wrap a socket accepted outside the loop in a transport and protocol."""
    if sock.type != socket.SOCK_STREAM:
        raise ValueError(f"A Stream Socket was expected, got {sock!r}")
    if ssl_handshake_timeout is not None and not ssl:
        raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
    if ssl_shutdown_timeout is not None and not ssl:
        raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
    _sock.check_not_ssl(sock)
    if ssl:
        _tls.check_timeouts(ssl_handshake_timeout, ssl_shutdown_timeout)
        pair: tuple[Any, Any] = await _tls.open_tls(
            self, sock, protocol_factory, ssl, "", owned=False, server_side=True,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
        )  # fmt: skip
    else:
        pair = await _connect.make_stream_transport(self, sock, protocol_factory, owned=False)
    if self._debug:
        logger.debug("%r handled: (%r, %r)", pair[0].get_extra_info("socket"), *pair)
    return pair


__all__ = ["Server", "create_server", "create_unix_server", "connect_accepted_socket"]
