"""The network seam: every socket the loop opens comes from its socket
factory, every name from its resolver (tidal.abc).

Only tidal's loop has these (asyncio's has no such parameters); what the
program sees through them is asyncio's behaviour, checked by the rest of the
suite on both loops.  These tests give the loop a factory and a resolver
that record their calls and hand out real sockets and real answers.
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
from typing import Any

import tidal
import tidal.abc


class RecordingFactory:
    def __init__(self) -> None:
        self.made: list[tuple[int, int, int]] = []

    def __call__(self, family: int, type: int, proto: int) -> socket.socket:
        self.made.append((family, type, proto))
        return socket.socket(family, type, proto)


class NamesResolver:
    """Resolves names of its own to 127.0.0.1; records what it was asked."""

    def __init__(self) -> None:
        self.asked: list[Any] = []

    async def getaddrinfo(
        self, host: Any, port: Any, *, type: int = 0, proto: int = 0, flags: int = 0, **_: int
    ) -> list[tuple[Any, ...]]:
        self.asked.append(host)
        real = "127.0.0.1" if host in ("db.test", "web.test") else host
        return socket.getaddrinfo(real, port, socket.AF_INET, type, proto, flags)

    async def getnameinfo(self, sockaddr: tuple[Any, ...], flags: int = 0) -> tuple[str, str]:
        self.asked.append(sockaddr)
        return ("db.test", str(sockaddr[1]))


def _loop(factory: RecordingFactory, resolver: NamesResolver) -> tidal.EventLoop:
    return tidal.EventLoop(socket_factory=factory, resolver=resolver)


def test_streams_and_servers_use_the_factory_and_resolver() -> None:
    factory, resolver = RecordingFactory(), NamesResolver()

    async def main() -> bytes:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.readline())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "web.test", 0, family=socket.AF_INET)
        async with server:
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("db.test", port)
            writer.write(b"hello\n")
            line = await reader.readline()
            writer.close()
            await writer.wait_closed()
            assert await asyncio.get_running_loop().getnameinfo(("127.0.0.1", 80)) == (
                "db.test",
                "80",
            )
            return line

    loop = _loop(factory, resolver)
    try:
        assert loop.run_until_complete(main()) == b"hello\n"
    finally:
        loop.close()
    assert resolver.asked == ["web.test", "db.test", ("127.0.0.1", 80)]
    assert [made[:2] for made in factory.made] == [
        (socket.AF_INET, socket.SOCK_STREAM),  # the server's listening socket
        (socket.AF_INET, socket.SOCK_STREAM),  # the client's
    ]


def test_datagram_endpoints_use_the_factory() -> None:
    factory, resolver = RecordingFactory(), NamesResolver()

    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        got: asyncio.Future[bytes] = loop.create_future()

        class Receiver(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                got.set_result(data)

        server, _ = await loop.create_datagram_endpoint(Receiver, local_addr=("web.test", 0))
        port = server.get_extra_info("sockname")[1]
        client, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=("db.test", port)
        )
        client.sendto(b"datagram")
        try:
            return await got
        finally:
            client.close()
            server.close()

    loop = _loop(factory, resolver)
    try:
        assert loop.run_until_complete(main()) == b"datagram"
    finally:
        loop.close()
    assert resolver.asked == ["web.test", "db.test"]
    assert [made[:2] for made in factory.made] == [(socket.AF_INET, socket.SOCK_DGRAM)] * 2


def test_unix_sockets_use_the_factory() -> None:
    factory, resolver = RecordingFactory(), NamesResolver()

    async def main(path: str) -> bytes:
        async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"hi")
            writer.close()

        server = await asyncio.start_unix_server(greet, path)
        async with server:
            reader, writer = await asyncio.open_unix_connection(path)
            data = await reader.read()
            writer.close()
            await writer.wait_closed()
            return data

    loop = _loop(factory, resolver)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            assert loop.run_until_complete(main(os.path.join(tmp, "s"))) == b"hi"
        finally:
            loop.close()
    assert factory.made == [(socket.AF_UNIX, socket.SOCK_STREAM, 0)] * 2


def test_the_defaults_are_the_real_thing() -> None:
    loop = tidal.EventLoop()
    try:
        assert loop._socket_factory is socket.socket
        resolver: tidal.abc.Resolver = loop._resolver
        infos = loop.run_until_complete(
            resolver.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
        )
        assert ("127.0.0.1", 80) in [info[4] for info in infos]
    finally:
        loop.close()


def test_a_manual_clock_is_read_as_its_field() -> None:
    # The clock seam: a ManualClock's time is its `seconds`, which its owner
    # moves (a simulated clock does); the loop reads that field, as
    # loop.time(), for due times and for timeouts.
    from tidal._clock import ManualClock

    clock = ManualClock()
    loop = tidal.EventLoop(clock=clock)
    fired: list[float] = []
    try:
        clock.seconds = 100.0
        assert loop.time() == 100.0 == clock.now()
        loop.call_later(5, lambda: fired.append(loop.time()))
        loop.call_later(0, loop.stop)
        loop.run_forever()
        assert fired == []  # not due at 100.0
        clock.seconds = 105.0
        loop.call_soon(loop.stop)
        loop.run_forever()
        assert fired == [105.0]
    finally:
        loop.close()
