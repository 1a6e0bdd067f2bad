"""Outgoing stream connections: create_connection and create_unix_connection.

How a TCP connection is made
----------------------------
1. **Validate** the arguments, in asyncio's order and with its messages, so a
   caller's mistake reads the same on either loop.
2. **Resolve** the remote (and local) address with ``_dns.resolve``: an IP
   literal is answered at once, a name goes to ``loop.getaddrinfo``.
3. **Connect**, one address after another, or (with ``happy_eyeballs_delay``)
   as a staggered race: the next attempt starts when the delay has passed or
   as soon as the attempt before it failed; the first to connect wins and the
   others are cancelled and their sockets closed.
4. **Wrap** the connected socket in a ``StreamTransport`` and wait until the
   protocol has been told ``connection_made``.

Each attempt is a non-blocking ``connect()`` plus a writer callback that
reads ``SO_ERROR`` and settles a future; no task is spawned per attempt, so
losing attempts are cancelled and closed synchronously when the race ends
(or when the caller is cancelled): a cancelled connect never leaks an fd or
leaves a writer registered on a closed descriptor.

Errors are reported exactly as asyncio reports them: one error is raised
as is; several with the same text raise the first; otherwise one
``OSError('Multiple exceptions: ...')``; ``all_errors=True`` (3.12+) raises
``ExceptionGroup("create_connection failed", errors)``.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TYPE_CHECKING

if TYPE_CHECKING:
    from ._loop import EventLoop  # annotations only: _loop imports this module

from . import _dns, _sock
from .transports import _tls
from .transports._stream import StreamTransport

logger = logging.getLogger("asyncio")  # asyncio's logger: users filter on it

_AddrInfo = tuple[int, int, int, str, tuple[Any, ...]]

# 3.13 reworded the bind failure message (str(exc) instead of exc.strerror).
_BIND_MESSAGE_USES_STR = sys.version_info >= (3, 13)

# ----------------------------------------------------------------------
# One attempt
# ----------------------------------------------------------------------


def _abandon(loop: EventLoop, sock: socket.socket, fut: Any) -> None:
    """Stop an attempt now: cancel its future, drop its writer, close its socket.

    The writer goes first, while the fd is still ours: once closed, the same
    number may be handed to someone else's socket.
    """
    fut.cancel()
    if sock.fileno() >= 0:
        loop._remove_writer(sock.fileno())
    sock.close()


def _bind_error(exc: OSError, laddr: Any) -> OSError:
    """Rephrase a bind failure as asyncio does, naming the local address."""
    detail = str(exc) if _BIND_MESSAGE_USES_STR else exc.strerror
    msg = f"error while attempting to bind on address {laddr!r}: {str(detail).lower()}"
    return OSError(exc.errno, msg)


def _open_socket(
    loop: EventLoop, addrinfo: _AddrInfo, laddr_infos: list[_AddrInfo] | None
) -> socket.socket:
    """A non-blocking socket for `addrinfo`, bound to the first local address that binds.

    Bind failures are collected and the last one is raised (asyncio's
    choice); the caller records the earlier ones through ``_BindFailed``.
    """
    family, type_, proto, _, _ = addrinfo
    sock = loop._socket_factory(family, type_, proto)
    try:
        sock.setblocking(False)
        if laddr_infos is not None:
            bind_errors: list[OSError] = []
            for lfamily, _, _, _, laddr in laddr_infos:
                if lfamily != family:
                    continue  # a local address must be of the remote's family
                try:
                    sock.bind(laddr)
                    break
                except OSError as exc:
                    bind_errors.append(_bind_error(exc, laddr))
            else:
                if bind_errors:
                    try:
                        raise _BindFailed(bind_errors)
                    finally:
                        # Its traceback holds this frame: not the errors.
                        bind_errors = None  # type: ignore[assignment]
                raise OSError(f"no matching local address with {family=} found")
    except BaseException:
        sock.close()
        raise
    return sock


class _BindFailed(Exception):
    """Internal: every local address failed to bind; carries each error, in order.

    It becomes the ``__context__`` of the error raised in its place: taking
    the errors (``take()``) leaves it holding none, or that error would
    reach itself through it (a cycle the collector must break).
    """

    def __init__(self, errors: list[OSError]) -> None:
        super().__init__()
        self.errors = errors

    def take(self) -> list[OSError]:
        errors, self.errors = self.errors, []
        return errors


async def _connect_one(
    loop: EventLoop, addrinfo: _AddrInfo, laddr_infos: list[_AddrInfo] | None, errors: list[OSError]
) -> socket.socket:
    """Create, bind and connect one socket; its OSErrors are appended to `errors`."""
    try:
        try:
            sock = _open_socket(loop, addrinfo, laddr_infos)
        except _BindFailed as failed:
            errors.extend(failed.take())
            raise errors[-1] from None
        except OSError as exc:
            errors.append(exc)
            raise
        try:
            await _sock.connect(loop, sock, addrinfo[4])
        except OSError as exc:
            errors.append(exc)
            sock.close()
            raise
        except BaseException:
            sock.close()
            raise
        return sock
    finally:
        # The raised error's traceback holds this frame, and `errors` holds
        # the error: drop the list so that cycle does not form (as asyncio).
        errors = None  # type: ignore[assignment]


# ----------------------------------------------------------------------
# Several addresses: in turn, or raced (happy eyeballs, RFC 8305)
# ----------------------------------------------------------------------


def _interleave(infos: list[_AddrInfo], first_family_count: int) -> list[_AddrInfo]:
    """Alternate address families (first family first), so one broken family costs one delay.

    The first family keeps `first_family_count` addresses at the head before
    the alternation begins (RFC 8305's "First Address Family Count").
    """
    by_family: dict[int, list[_AddrInfo]] = {}
    for info in infos:
        by_family.setdefault(info[0], []).append(info)
    groups = list(by_family.values())
    head: list[_AddrInfo] = []
    if first_family_count > 1:
        head = groups[0][: first_family_count - 1]
        groups[0] = groups[0][first_family_count - 1 :]
    tail = [info for row in itertools.zip_longest(*groups) for info in row if info is not None]
    return head + tail


async def _connect_in_turn(
    loop: EventLoop,
    infos: list[_AddrInfo],
    laddr_infos: list[_AddrInfo] | None,
    exceptions: list[list[OSError]],
) -> socket.socket | None:
    """Try each address after the previous one failed; None if all failed."""
    try:
        for addrinfo in infos:
            errors: list[OSError] = []
            exceptions.append(errors)
            try:
                return await _connect_one(loop, addrinfo, laddr_infos, errors)
            except OSError:
                continue
        return None
    finally:
        # Each error's traceback holds this frame: not the lists holding them.
        errors = exceptions = None  # type: ignore[assignment]


class _Race:
    """A happy-eyeballs race over `infos`; ``run()`` returns the winning socket or None.

    Attempt *i+1* starts `delay` seconds after attempt *i* started, or at
    once when attempt *i* fails, whichever comes first (asyncio's staggered
    start).  Attempts are futures settled by writer callbacks, so the race
    needs no task per attempt and can close the losers synchronously.
    """

    def __init__(
        self,
        loop: EventLoop,
        infos: list[_AddrInfo],
        laddr_infos: list[_AddrInfo] | None,
        delay: float,
        exceptions: list[list[OSError]],
    ) -> None:
        self.loop = loop
        self.infos = infos
        self.laddr_infos = laddr_infos
        self.delay = delay
        self.exceptions = exceptions
        # Attempts in flight, oldest first: (index, socket, future).
        self.running: list[tuple[int, socket.socket, Any]] = []
        self.next_index = 0
        self.start_next = True  # the delay passed, or the latest attempt failed
        self.timer: Any = None
        self.wakeup: Any = None
        # A non-OSError from an attempt: asyncio's race swallows these; we
        # keep the first to raise if no OSError at all was recorded.
        self.other_error: BaseException | None = None

    def _wake(self, _fut: Any = None) -> None:
        wakeup = self.wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    def _delay_passed(self) -> None:
        self.timer = None
        self.start_next = True
        self._wake()

    def _start_attempts(self) -> None:
        """Start the next attempt; if it fails at once, the one after it, and so on."""
        while self.start_next and self.next_index < len(self.infos):
            self.start_next = False
            index = self.next_index
            self.next_index += 1
            addrinfo = self.infos[index]
            errors: list[OSError] = []
            self.exceptions.append(errors)
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
            try:
                sock = _open_socket(self.loop, addrinfo, self.laddr_infos)
            except _BindFailed as failed:
                errors.extend(failed.take())
                self.start_next = True
                continue
            except OSError as exc:
                errors.append(exc)
                self.start_next = True
                continue
            except Exception as exc:  # noqa: BLE001 - an attempt's failure; raised if nothing else
                self._record_other(exc)
                self.start_next = True
                continue
            try:
                fut = _sock.begin_connect(self.loop, sock, addrinfo[4])
            except BaseException:
                sock.close()  # not yet in self.running, so nobody else would
                raise
            fut.add_done_callback(self._wake)
            self.running.append((index, sock, fut))
            if self.next_index < len(self.infos):
                self.timer = self.loop.call_later(self.delay, self._delay_passed)

    def _record_other(self, exc: BaseException) -> None:
        if self.other_error is None:
            self.other_error = exc

    def _collect(self) -> socket.socket | None:
        """Settle finished attempts, oldest first; return the first that connected."""
        still_running = []
        winner = None
        for entry in self.running:
            index, sock, fut = entry
            if winner is not None or not fut.done():
                still_running.append(entry)
                continue
            exc = fut.exception()
            if exc is None:
                winner = sock
                continue
            sock.close()
            if isinstance(exc, OSError):
                self.exceptions[index].append(exc)
            else:
                self._record_other(exc)
            if index == self.next_index - 1:
                self.start_next = True  # the latest attempt failed: do not wait the delay
        self.running = still_running
        return winner

    async def run(self) -> socket.socket | None:
        loop = self.loop
        try:
            while True:
                self._start_attempts()
                winner = self._collect()
                if winner is not None:
                    return winner
                if self.start_next and self.next_index < len(self.infos):
                    continue  # an attempt failed while collecting: start the next now
                if not self.running:
                    return None
                self.wakeup = loop.create_future()
                await self.wakeup
                self.wakeup = None
        finally:
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
            for _, sock, fut in self.running:
                _abandon(loop, sock, fut)
            self.running = []


# ----------------------------------------------------------------------
# Errors, validation, transport
# ----------------------------------------------------------------------


def _raise_connect_errors(
    exceptions: list[list[OSError]], all_errors: bool, other: BaseException | None = None
) -> NoReturn:
    """Raise what every attempt failed with, in asyncio's shape."""
    flat = [exc for attempt in exceptions for exc in attempt]
    try:
        if not flat and other is not None:
            raise other
        if all_errors:
            raise ExceptionGroup("create_connection failed", flat)
        if len(flat) == 1:
            raise flat[0]
        model = str(flat[0])
        if all(str(exc) == model for exc in flat):
            raise flat[0]
        raise OSError("Multiple exceptions: {}".format(", ".join(str(exc) for exc in flat)))
    finally:
        # The raised exception's traceback holds this frame: drop the lists
        # so the other exceptions are not kept alive through it.
        flat = exceptions = None  # type: ignore[assignment]


async def make_stream_transport(
    loop: EventLoop, sock: socket.socket, protocol_factory: Callable[[], Any], owned: bool
) -> tuple[Any, Any]:
    """Wrap a connected socket; return once the protocol's connection_made has run.

    Until the transport exists, a socket we connected ourselves (`owned`) is
    ours to close on failure (a caller's is not); after that the transport
    owns it and closes it.
    """
    try:
        sock.setblocking(False)
        protocol = protocol_factory()
        waiter = loop.create_future()
        transport = StreamTransport(loop, sock, protocol, waiter, extra=None)
    except BaseException:
        if owned:
            sock.close()
        raise
    try:
        await waiter
    except BaseException:
        transport.close()
        raise
    return transport, protocol


# ----------------------------------------------------------------------
# The loop methods
# ----------------------------------------------------------------------


async def _create_connection(
    self: EventLoop,
    protocol_factory: Callable[[], Any],
    host: Any,
    port: Any,
    ssl: Any,
    family: int,
    proto: int,
    flags: int,
    sock: socket.socket | None,
    local_addr: Any,
    server_hostname: str | None,
    ssl_handshake_timeout: float | None,
    ssl_shutdown_timeout: float | None,
    happy_eyeballs_delay: float | None,
    interleave: int | None,
    all_errors: bool,
) -> tuple[Any, Any]:
    if server_hostname is not None and not ssl:
        raise ValueError("server_hostname is only meaningful with ssl")
    if server_hostname is None and ssl:
        # The host is what the certificate is checked against; pass
        # server_hostname='' to skip the check explicitly.
        if not host:
            raise ValueError("You must set server_hostname when using ssl without a host")
        server_hostname = host
    if ssl_handshake_timeout is not None and not ssl:
        raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
    if ssl_shutdown_timeout is not None and not ssl:
        raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
    if sock is not None:
        _sock.check_not_ssl(sock)
    if happy_eyeballs_delay is not None and interleave is None:
        interleave = 1  # racing is pointless unless families alternate

    if host is not None or port is not None:
        if sock is not None:
            raise ValueError("host/port and sock can not be specified at the same time")
    elif sock is None:
        raise ValueError("host and port was not specified and no sock specified")
    elif sock.type != socket.SOCK_STREAM:
        # AF_UNIX is allowed here too, as in asyncio (backwards compatibility).
        raise ValueError(f"A Stream Socket was expected, got {sock!r}")
    if ssl:
        # Checked before connecting (asyncio finds out after, leaking the socket).
        _tls.check_timeouts(ssl_handshake_timeout, ssl_shutdown_timeout)

    if sock is None:
        infos = await _dns.resolve(
            self, (host, port), family=family, type=socket.SOCK_STREAM, proto=proto, flags=flags
        )
        if not infos:
            raise OSError("getaddrinfo() returned empty list")
        laddr_infos = None
        if local_addr is not None:
            laddr_infos = await _dns.resolve(
                self, local_addr, family=family, type=socket.SOCK_STREAM, proto=proto, flags=flags
            )
            if not laddr_infos:
                raise OSError("getaddrinfo() returned empty list")
        if interleave:
            infos = _interleave(infos, interleave)

        exceptions: list[list[OSError]] = []
        other: BaseException | None = None
        if happy_eyeballs_delay is None:
            sock = await _connect_in_turn(self, infos, laddr_infos, exceptions)
        else:
            race = _Race(self, infos, laddr_infos, happy_eyeballs_delay, exceptions)
            sock = await race.run()
            other = race.other_error
            del race  # it holds the errors: keep them out of this frame's locals
        if sock is None:
            try:
                _raise_connect_errors(exceptions, all_errors, other)
            finally:
                exceptions = None  # type: ignore[assignment]
                other = None
        owned = True
    else:
        owned = False

    if ssl:
        transport, protocol = await _tls.open_tls(
            self, sock, protocol_factory, ssl, server_hostname, owned=owned,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
        )  # fmt: skip
    else:
        transport, protocol = await make_stream_transport(self, sock, protocol_factory, owned)
    if self._debug:
        logger.debug(
            "%r connected to %s:%r: (%r, %r)",
            transport.get_extra_info("socket"),
            host,
            port,
            transport,
            protocol,
        )
    return transport, protocol


if sys.version_info >= (3, 12):

    async def create_connection(
        self: EventLoop,
        protocol_factory: Callable[[], Any],
        host: str | None = None,
        port: int | str | None = None,
        *,
        ssl: Any = None,
        family: int = 0,
        proto: int = 0,
        flags: int = 0,
        sock: socket.socket | None = None,
        local_addr: tuple[Any, ...] | None = None,
        server_hostname: str | None = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
        happy_eyeballs_delay: float | None = None,
        interleave: int | None = None,
        all_errors: bool = False,
    ) -> tuple[Any, Any]:
        """Connect to a TCP server; return (transport, protocol) once connection_made ran.

        With several addresses, each is tried in turn or, given
        `happy_eyeballs_delay`, raced with staggered starts.
        """
        return await _create_connection(
            self, protocol_factory, host, port, ssl, family, proto, flags, sock, local_addr,
            server_hostname, ssl_handshake_timeout, ssl_shutdown_timeout,
            happy_eyeballs_delay, interleave, all_errors,
        )  # fmt: skip

else:

    async def create_connection(  # type: ignore[misc]
        self: EventLoop,
        protocol_factory: Callable[[], Any],
        host: str | None = None,
        port: int | str | None = None,
        *,
        ssl: Any = None,
        family: int = 0,
        proto: int = 0,
        flags: int = 0,
        sock: socket.socket | None = None,
        local_addr: tuple[Any, ...] | None = None,
        server_hostname: str | None = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
        happy_eyeballs_delay: float | None = None,
        interleave: int | None = None,
    ) -> tuple[Any, Any]:
        """Connect to a TCP server; return (transport, protocol) once connection_made ran.

        (3.11 signature: ``all_errors`` arrived in 3.12, as in asyncio.)
        """
        return await _create_connection(
            self, protocol_factory, host, port, ssl, family, proto, flags, sock, local_addr,
            server_hostname, ssl_handshake_timeout, ssl_shutdown_timeout,
            happy_eyeballs_delay, interleave, False,
        )  # fmt: skip


async def create_unix_connection(
    self: EventLoop,
    protocol_factory: Callable[[], Any],
    path: str | bytes | os.PathLike[Any] | None = None,
    *,
    ssl: Any = None,
    sock: socket.socket | None = None,
    server_hostname: str | None = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
) -> tuple[Any, Any]:
    """Connect to a Unix stream socket at `path` (or wrap `sock`); return (transport, protocol)."""
    assert server_hostname is None or isinstance(server_hostname, str)
    if ssl:
        if server_hostname is None:
            raise ValueError("you have to pass server_hostname when using ssl")
    else:
        if server_hostname is not None:
            raise ValueError("server_hostname is only meaningful with ssl")
        if ssl_handshake_timeout is not None:
            raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
        if ssl_shutdown_timeout is not None:
            raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")

    if path is not None:
        if sock is not None:
            raise ValueError("path and sock can not be specified at the same time")
        path = os.fspath(path)
        if ssl:
            _tls.check_timeouts(ssl_handshake_timeout, ssl_shutdown_timeout)
        sock = self._socket_factory(socket.AF_UNIX, socket.SOCK_STREAM, 0)
        try:
            sock.setblocking(False)
            await _sock.connect(self, sock, path)
        except BaseException:
            sock.close()
            raise
        owned = True
    else:
        if sock is None:
            raise ValueError("no path and sock were specified")
        if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
            raise ValueError(f"A UNIX Domain Stream Socket was expected, got {sock!r}")
        if ssl:
            _tls.check_timeouts(ssl_handshake_timeout, ssl_shutdown_timeout)
        sock.setblocking(False)
        owned = False

    if ssl:
        return await _tls.open_tls(
            self, sock, protocol_factory, ssl, server_hostname, owned=owned,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
        )  # fmt: skip
    return await make_stream_transport(self, sock, protocol_factory, owned)


__all__ = ["create_connection", "create_unix_connection"]
