"""The loop's seams as typing.Protocols: what an object must offer to plug in.

A simulation (``tidal.sim``) supplies its own of each; the defaults are the
real thing.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from socket import _GetAddrInfoResult


class SocketFactory(Protocol):
    """Makes every socket the loop opens for the program (connections,
    servers, datagram endpoints, Unix sockets): ``socket.socket`` by default.

    Called as ``factory(family, type, proto)``; the loop makes the result
    non-blocking itself.
    """

    def __call__(self, family: int, type: int, proto: int) -> socket.socket: ...


class Resolver(Protocol):
    """Answers the loop's ``getaddrinfo``/``getnameinfo``: by default, the
    socket module's functions on the default executor."""

    async def getaddrinfo(
        self,
        host: bytes | str | None,
        port: bytes | str | int | None,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> _GetAddrInfoResult: ...

    async def getnameinfo(self, sockaddr: tuple[Any, ...], flags: int = 0) -> tuple[str, str]: ...


__all__ = ["Resolver", "SocketFactory"]
