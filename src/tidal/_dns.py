"""Name resolution: the loop's resolver (getaddrinfo/getnameinfo on the
default executor, unless the loop was given another: tidal.abc.Resolver).

``resolve`` is what the connection and server code call: when the host is
already a numeric address it answers at once, without a thread hop, because
most connections in practice go to an IP literal or to a name the
application resolved before.
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._loop import EventLoop

    # typeshed's name for what socket.getaddrinfo returns (and so what
    # AbstractEventLoop.getaddrinfo is declared to return).
    from socket import _GetAddrInfoResult

_AddrInfo = tuple[int, int, int, str, tuple[Any, ...]]


class ThreadResolver:
    """The default resolver (tidal.abc.Resolver): the socket module's
    functions, run in the running loop's default executor."""

    __slots__ = ()

    async def getaddrinfo(
        self,
        host: bytes | str | None,
        port: bytes | str | int | None,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> _GetAddrInfoResult:
        return await asyncio.get_running_loop().run_in_executor(
            None, socket.getaddrinfo, host, port, family, type, proto, flags
        )

    async def getnameinfo(self, sockaddr: tuple[Any, ...], flags: int = 0) -> tuple[str, str]:
        return await asyncio.get_running_loop().run_in_executor(
            None, socket.getnameinfo, sockaddr, flags
        )


async def getaddrinfo(
    self: EventLoop,
    host: bytes | str | None,
    port: bytes | str | int | None,
    *,
    family: int = 0,
    type: int = 0,
    proto: int = 0,
    flags: int = 0,
) -> _GetAddrInfoResult:
    """The loop's getaddrinfo: its resolver's answer."""
    return await self._resolver.getaddrinfo(  # type: ignore[no-any-return]
        host, port, family=family, type=type, proto=proto, flags=flags
    )


async def getnameinfo(
    self: EventLoop, sockaddr: tuple[Any, ...], flags: int = 0
) -> tuple[str, str]:
    """The loop's getnameinfo: its resolver's answer."""
    return await self._resolver.getnameinfo(sockaddr, flags)  # type: ignore[no-any-return]


def numeric_addrinfo(
    host: Any, port: Any, family: int, type: int, proto: int, flowinfo: int = 0, scopeid: int = 0
) -> _AddrInfo | None:
    """The getaddrinfo answer for a numeric host, or None if it needs a real lookup."""
    if host is None or proto not in (0, socket.IPPROTO_TCP, socket.IPPROTO_UDP):
        return None
    if type == socket.SOCK_STREAM:
        proto = socket.IPPROTO_TCP
    elif type == socket.SOCK_DGRAM:
        proto = socket.IPPROTO_UDP
    else:
        return None
    if port is None or port == b"" or port == "":
        port = 0
    else:
        try:
            port = int(port)
        except (TypeError, ValueError):
            return None  # a service name such as "http": getaddrinfo knows it
    if family == socket.AF_UNSPEC:
        families: list[int] = (
            [socket.AF_INET, socket.AF_INET6] if socket.has_ipv6 else [socket.AF_INET]
        )
    else:
        families = [family]
    if isinstance(host, bytes):
        host = host.decode("idna")
    if "%" in host:
        return None  # a scoped IPv6 address: let getaddrinfo parse the zone
    for af in families:
        try:
            socket.inet_pton(af, host)
        except (OSError, ValueError):
            continue
        if af == socket.AF_INET6:
            return af, type, proto, "", (host, port, flowinfo, scopeid)
        return af, type, proto, "", (host, port)
    return None


async def resolve(
    loop: EventLoop,
    address: tuple[Any, ...],
    *,
    family: int = 0,
    type: int = socket.SOCK_STREAM,
    proto: int = 0,
    flags: int = 0,
) -> list[_AddrInfo]:
    """Resolve (host, port[, ...]) for connecting or binding; numeric hosts skip the executor."""
    host, port = address[:2]
    info = numeric_addrinfo(host, port, family, type, proto, *address[2:])
    if info is not None:
        return [info]
    infos = await loop.getaddrinfo(host, port, family=family, type=type, proto=proto, flags=flags)
    # (A list of typeshed's precise tuples is not a list[_AddrInfo] to mypy:
    # lists are invariant.  A resolver may also return any sequence.)
    return list(infos)
