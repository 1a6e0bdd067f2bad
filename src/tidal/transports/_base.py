"""What the transports share: the cold paths, written once.

Stream, datagram and pipe transports report errors, check write-buffer
limits and pause/resume their protocol's writing the same way (asyncio's
messages, asyncio's choice of what goes to the exception handler).  These are
plain functions taking the transport, not a base class: the transports derive
from different asyncio classes and name their fd differently (``_sock_fd``,
``_fileno``), and a function call costs the same as a method call.  Only
cold code lives here (setup, errors, closing, limits, the flow-control
transitions); the per-read and per-write code stays in each transport.  The
TLS transport's limits and the servers' SO_REUSEPORT use the same helpers.
Not compiled (setup.py says why): none of it runs per event.

Every function reads the transport's ``_loop`` and ``_protocol``; the
flow-control ones also set ``_protocol_paused``.
"""

from __future__ import annotations

import logging
import os
import socket
from asyncio import trsock
from typing import Any

logger = logging.getLogger("asyncio")  # asyncio's logger: users filter on it


def set_result_unless_cancelled(fut: Any, result: Any) -> None:
    if not fut.cancelled():
        fut.set_result(result)


# socket_extra()'s `peername` when the caller does not know it: ask the socket.
PEERNAME_UNKNOWN: Any = object()


def socket_extra(
    sock: socket.socket, extra: dict[str, Any] | None, peername: Any = PEERNAME_UNKNOWN
) -> dict[str, Any]:
    """get_extra_info() of a socket transport: socket, sockname, peername (unless given).

    `peername`, when known (accept() returned it), is used instead of asking
    the socket; an entry already in `extra` wins over both, as in asyncio.
    """
    info: dict[str, Any] = {} if extra is None else extra
    info["socket"] = trsock.TransportSocket(sock)
    try:
        info["sockname"] = sock.getsockname()
    except OSError:
        info["sockname"] = None
    if "peername" not in info:
        if peername is PEERNAME_UNKNOWN:
            try:
                peername = sock.getpeername()
            except OSError:
                peername = None
        info["peername"] = peername
    return info


def unix_paths(loop: Any) -> Any:
    """Where the loop's Unix socket files live: the file system (``os``), or,
    in a simulation, the calling host's own (``tidal.sim._unix``).  The
    stat/remove of a stale socket file and a server's cleanup of its own go
    through it, so a simulated host never touches a real file."""
    return getattr(loop, "unix_paths", os)


def set_reuseport(sock: socket.socket) -> None:
    """SO_REUSEPORT for reuse_port=True, with asyncio's ValueErrors where it is missing."""
    if not hasattr(socket, "SO_REUSEPORT"):
        raise ValueError("reuse_port not supported by socket module")
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    except OSError:
        raise ValueError(
            "reuse_port not supported by socket module, SO_REUSEPORT defined but not implemented."
        ) from None


def call_handler(transport: Any, exc: BaseException, message: str) -> None:
    """Hand `exc` to the loop's exception handler, with the transport and its protocol."""
    transport._loop.call_exception_handler(
        {
            "message": message,
            "exception": exc,
            "transport": transport,
            "protocol": transport._protocol,
        }
    )


def report_fatal_error(transport: Any, exc: BaseException, message: str) -> None:
    """Report what made `transport` fail, as asyncio does (the caller then closes it).

    An OSError is the peer's or the network's business, not a bug: logged only
    in debug mode.  Anything else goes to the loop's exception handler.
    """
    if isinstance(exc, OSError):
        if transport._loop.get_debug():
            logger.debug("%r: %s", transport, message, exc_info=exc)
    else:
        call_handler(transport, exc, message)


def checked_write_buffer_limits(
    high: int | None, low: int | None, default_high: int
) -> tuple[int, int]:
    """set_write_buffer_limits()'s arguments resolved and checked: (high, low)."""
    if high is None:
        high = default_high if low is None else 4 * low
    if low is None:
        low = high // 4
    if not high >= low >= 0:
        raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
    return high, low


def pause_protocol(transport: Any) -> None:
    """Call the protocol's pause_writing(); an exception goes to the handler."""
    _set_protocol_paused(transport, True)


def resume_protocol(transport: Any) -> None:
    """Call the protocol's resume_writing(); an exception goes to the handler."""
    _set_protocol_paused(transport, False)


def _set_protocol_paused(transport: Any, paused: bool) -> None:
    transport._protocol_paused = paused
    tell_writing_paused(
        transport._loop, transport._protocol, paused, transport, transport._protocol
    )


def tell_writing_paused(
    loop: Any, protocol: Any, paused: bool, transport: Any, reported_protocol: Any
) -> None:
    """Call `protocol`'s pause_writing() or resume_writing(); an exception goes to
    the handler, reported with `transport` and `reported_protocol` (asyncio's TLS
    layer names itself there, not the application's protocol)."""
    name = "pause_writing" if paused else "resume_writing"
    try:
        getattr(protocol, name)()
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        loop.call_exception_handler(
            {
                "message": f"protocol.{name}() failed",
                "exception": exc,
                "transport": transport,
                "protocol": reported_protocol,
            }
        )


def force_close(transport: Any, fd: int, exc: BaseException | None) -> None:
    """abort() of a socket transport: drop the queue, stop polling, connection_lost next turn."""
    if transport._conn_lost:
        return
    loop = transport._loop
    if transport._buffer:
        transport._buffer.clear()
        transport._buffer_size = 0
        loop._remove_writer(fd)
    if not transport._closing:
        transport._closing = True
        loop._remove_reader(fd)
    transport._conn_lost += 1
    loop.call_soon(transport._call_connection_lost, exc)


# ----------------------------------------------------------------------
# Life cycle: start, repr, reading on and off, close
# ----------------------------------------------------------------------
# (The stream transport keeps its own pause_reading/resume_reading: a
# StreamReader pauses and resumes it per large message, and compiled, its
# copies read C struct fields instead of making an interpreted call.)


def start_connection(
    transport: Any, fd: int, protocol: Any, start: Any, waiter: Any, track: bool = True
) -> None:
    """The end of a transport's __init__: connection_made, then `start` (reading or
    watching), then the waiter, each on the next turn, in that order (asyncio's).

    `track`: note the transport in the loop's _transports under `fd` (a
    stream transport is its fd's reader entry instead)."""
    loop = transport._loop
    if track:
        loop._transports[fd] = transport
    loop.call_soon(protocol.connection_made, transport)
    if start is not None:
        loop.call_soon(start)
    if waiter is not None:
        loop.call_soon(set_result_unless_cancelled, waiter, None)


async def wait_connection_made(transport: Any, waiter: Any) -> None:
    """Await `waiter` (set once connection_made has run); if that fails or is
    cancelled, close the transport and raise."""
    try:
        await waiter
    except BaseException:
        transport.close()
        raise


def repr_info(transport: Any, closed: bool, fd: int) -> list[str]:
    """The first words of a transport's repr: class, closed/closing, fd (asyncio's)."""
    info = [transport.__class__.__name__]
    if closed:
        info.append("closed")
    elif transport._closing:
        info.append("closing")
    info.append(f"fd={fd}")
    return info


def pause_reading(transport: Any, fd: int) -> None:
    """pause_reading() of a transport that reads `fd`: no reader until resume_reading()."""
    if transport._closing or transport._paused:
        return
    transport._paused = True
    transport._loop._remove_reader(fd)
    if transport._loop.get_debug():
        logger.debug("%r pauses reading", transport)


def resume_reading(transport: Any) -> None:
    """resume_reading(): the transport's _start_reading() registers the reader again."""
    if transport._closing or not transport._paused:
        return
    transport._paused = False
    transport._start_reading()
    if transport._loop.get_debug():
        logger.debug("%r resumes reading", transport)


def close_socket_transport(transport: Any, fd: int, queued: int) -> None:
    """close() of a socket transport: stop reading; connection_lost(None) on the
    next turn, or once the `queued` bytes still to send have gone."""
    if transport._closing:
        return
    transport._closing = True
    loop = transport._loop
    loop._remove_reader(fd)
    if not queued:
        transport._conn_lost += 1
        loop._remove_writer(fd)
        loop.call_soon(transport._call_connection_lost, None)
