"""An error a loop method raises is referenced by nothing but its caller.

No frame of the loop's may keep the exception in a cycle through its
traceback (exception -> traceback -> frame -> local -> exception): with the
cyclic collector off (as suites that count objects run), such a cycle keeps
every frame, socket and future of the failed attempt alive.  Each test runs
one error path through ``raised_without_cycles`` (conftest.py), on both loops.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from helpers import raised_without_cycles

# Where asyncio's own loop keeps the error in a cycle, only tidal is held to
# it (check=False on asyncio's loop):
# - the happy-eyeballs race over one address (staggered_race's frames);
# - create_datagram_endpoint's bind failure (its `exceptions` list);
# - a failed TLS handshake (sslproto's _on_handshake_complete frame);
# - sock_recv and sock_recv_into failing while they wait (their callbacks).


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that refuses connections: bound, not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def resolve_to(loop: Any, hosts: list[str]) -> None:
    """Make `loop` resolve every name to these numeric hosts, in order.

    Replaces getaddrinfo on this loop only (both loops resolve through
    ``self.getaddrinfo``); the connections made to the answers are real.
    """
    real = loop.getaddrinfo

    async def getaddrinfo(host: Any, port: Any, **kwargs: Any) -> list[Any]:
        infos = []
        for numeric in hosts:
            infos += await real(numeric, port, **kwargs)
        return infos

    loop.getaddrinfo = getaddrinfo


LOOPBACKS = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]


@pytest.mark.parametrize("delay", [None, 0.05], ids=["in-turn", "happy-eyeballs"])
def test_create_connection_one_address_refused(
    loop: Any, loop_name: str, refused_port: int, delay: Any
) -> None:
    exc = raised_without_cycles(
        loop,
        lambda: loop.create_connection(
            asyncio.Protocol, "127.0.0.1", refused_port, happy_eyeballs_delay=delay
        ),
        check=loop_name == "tidal" or delay is None,
    )
    assert isinstance(exc, ConnectionRefusedError)


@pytest.mark.parametrize("delay", [None, 0.05, 10.0], ids=["in-turn", "race", "race-slow"])
def test_create_connection_every_address_refused(loop: Any, refused_port: int, delay: Any) -> None:
    resolve_to(loop, LOOPBACKS)
    exc = raised_without_cycles(
        loop,
        lambda: loop.create_connection(
            asyncio.Protocol, "name", refused_port, happy_eyeballs_delay=delay
        ),
    )
    assert str(exc).startswith("Multiple exceptions: ")


@pytest.mark.skipif(sys.version_info < (3, 12), reason="all_errors is 3.12+")
@pytest.mark.parametrize("delay", [None, 0.05], ids=["in-turn", "happy-eyeballs"])
def test_create_connection_all_errors(loop: Any, refused_port: int, delay: Any) -> None:
    resolve_to(loop, LOOPBACKS)
    exc = raised_without_cycles(
        loop,
        lambda: loop.create_connection(
            asyncio.Protocol, "name", refused_port, happy_eyeballs_delay=delay, all_errors=True
        ),
        ExceptionGroup,
    )
    assert len(exc.exceptions) == len(LOOPBACKS)  # type: ignore[attr-defined]


def test_create_connection_bind_failed(loop: Any, refused_port: int) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        exc = raised_without_cycles(
            loop,
            lambda: loop.create_connection(
                asyncio.Protocol, "127.0.0.1", refused_port, local_addr=taken.getsockname()
            ),
        )
    assert "error while attempting to bind" in str(exc)


def test_create_connection_resolution_failed(loop: Any) -> None:
    raised_without_cycles(
        loop,
        lambda: loop.create_connection(asyncio.Protocol, "127.0.0.1", 80, family=12345),
        socket.gaierror,
    )


def test_getaddrinfo_failed(loop: Any) -> None:
    raised_without_cycles(
        loop, lambda: loop.getaddrinfo("127.0.0.1", 80, family=12345), socket.gaierror
    )


def test_sock_connect_refused(loop: Any, refused_port: int) -> None:
    with socket.socket() as sock:
        sock.setblocking(False)
        raised_without_cycles(
            loop,
            lambda: loop.sock_connect(sock, ("127.0.0.1", refused_port)),
            ConnectionRefusedError,
        )


def test_sock_connect_resolution_failed(loop: Any) -> None:
    with socket.socket() as sock:
        sock.setblocking(False)
        resolve_to(loop, [])
        raised_without_cycles(loop, lambda: loop.sock_connect(sock, ("name", 80)), IndexError)


def test_create_unix_connection_missing(loop: Any) -> None:
    with tempfile.TemporaryDirectory() as d:
        raised_without_cycles(
            loop,
            lambda: loop.create_unix_connection(asyncio.Protocol, os.path.join(d, "none")),
            FileNotFoundError,
        )


def test_create_server_address_in_use(loop: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        exc = raised_without_cycles(
            loop, lambda: loop.create_server(asyncio.Protocol, "127.0.0.1", port)
        )
    assert "error while attempting to bind" in str(exc)


def test_create_server_resolution_failed(loop: Any) -> None:
    raised_without_cycles(
        loop,
        lambda: loop.create_server(asyncio.Protocol, "127.0.0.1", 0, family=12345),
        socket.gaierror,
    )


def test_create_unix_server_bind_failed(loop: Any) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "missing", "s")
        raised_without_cycles(
            loop, lambda: loop.create_unix_server(asyncio.Protocol, path), FileNotFoundError
        )


def test_create_datagram_endpoint_address_in_use(loop: Any, loop_name: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        raised_without_cycles(
            loop,
            lambda: loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=taken.getsockname()
            ),
            check=loop_name == "tidal",
        )


def test_create_datagram_endpoint_resolution_failed(loop: Any) -> None:
    raised_without_cycles(
        loop,
        lambda: loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=("127.0.0.1", 9), family=12345
        ),
        (socket.gaierror, ValueError),
    )


class _Garbage(asyncio.Protocol):
    """A plain-TCP server that answers a TLS hello with text, then closes."""

    def connection_made(self, transport: Any) -> None:
        transport.write(b"HTTP/1.0 400 Bad Request\r\n\r\n")
        transport.close()


def test_start_tls_handshake_failed(loop: Any, loop_name: str) -> None:
    async def main() -> None:
        server = await loop.create_server(_Garbage, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport, protocol = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        try:
            await loop.start_tls(
                transport, protocol, ssl.create_default_context(), server_hostname="x"
            )
        finally:
            transport.close()
            server.close()
            await server.wait_closed()

    raised_without_cycles(loop, main, (ssl.SSLError, ConnectionError), check=loop_name == "tidal")


def test_create_connection_tls_handshake_failed(loop: Any, loop_name: str) -> None:
    async def main() -> None:
        server = await loop.create_server(_Garbage, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            await loop.create_connection(
                asyncio.Protocol, "127.0.0.1", port, ssl=ssl.create_default_context(),
                server_hostname="x",
            )  # fmt: skip
        finally:
            server.close()
            await server.wait_closed()

    raised_without_cycles(loop, main, (ssl.SSLError, ConnectionError), check=loop_name == "tidal")


def _reset_after(delay: float, sock: socket.socket) -> None:
    """Close `sock` with SO_LINGER 0: its peer's pending read fails with ECONNRESET."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    asyncio.get_running_loop().call_later(delay, sock.close)


@pytest.mark.parametrize("method", ["sock_recv", "sock_recv_into"])
def test_sock_recv_reset_while_waiting(loop: Any, loop_name: str, method: str) -> None:
    a, b = _tcp_pair()
    with a, b:
        a.setblocking(False)

        async def main() -> None:
            _reset_after(0.01, b)
            if method == "sock_recv":
                await loop.sock_recv(a, 10)
            else:
                await loop.sock_recv_into(a, bytearray(10))

        # asyncio's sock_recv callbacks keep the future in their frame.
        raised_without_cycles(loop, main, ConnectionResetError, check=loop_name == "tidal")


def _tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    return client, server
