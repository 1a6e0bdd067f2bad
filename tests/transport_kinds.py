"""One real transport of each kind, on whichever loop is running (for tests).

``open_kind(kind)`` makes it for real (a TCP, Unix or TLS connection to a
server on the same loop, a UDP endpoint, both ends of a pipe, a child
process) and yields ``(transport, protocol, peers)``; on exit it closes the
peers and waits until the transport's protocol has seen connection_lost
(aborting or closing the transport first if the test left it open).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import sys
import tempfile
from collections.abc import AsyncIterator
from typing import Any

# Every kind of transport a loop makes (SERVER is not a transport: see open_server).
KINDS = (
    "tcp",
    "unix",
    "udp",
    "tls",
    "read_pipe",
    "write_pipe",
    "subprocess",
    "subprocess_stdin",
    "subprocess_stdout",
)

# The kinds whose asyncio transport has no abort() (a read pipe, a child process).
NO_ABORT = {"read_pipe", "subprocess", "subprocess_stdout"}

_tls: dict[str, ssl.SSLContext] = {}


def tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) contexts over a throwaway CA (made once)."""
    if not _tls:
        import trustme

        ca = trustme.CA()
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(server)
        client = ssl.create_default_context()
        ca.configure_trust(client)
        _tls.update(server=server, client=client)
    return _tls["server"], _tls["client"]


class Recorder(asyncio.Protocol, asyncio.DatagramProtocol, asyncio.SubprocessProtocol):
    """Any kind's protocol: keeps its transport (a cycle, as most protocols make) and
    resolves `lost` on connection_lost."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.lost: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


class _Accepted(Recorder):
    """A server's end of a connection: aborted with its server (or at once)."""

    def __init__(self, accepted: list[Any], at_once: bool) -> None:
        super().__init__()
        self.accepted = accepted
        self.at_once = at_once

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        if self.at_once:
            transport.close()
        else:
            self.accepted.append(transport)


@contextlib.asynccontextmanager
async def open_server(
    kind: str = "tcp", close_at_once: bool = False
) -> AsyncIterator[asyncio.AbstractServer]:
    """A listening server of `kind` ("tcp", "unix" or "tls"); on exit it is closed
    and the connections it accepted are aborted (or each is closed at once)."""
    loop = asyncio.get_running_loop()
    accepted: list[Any] = []

    def factory() -> _Accepted:
        return _Accepted(accepted, close_at_once)

    with tempfile.TemporaryDirectory() as tmp:
        if kind == "unix":
            server = await loop.create_unix_server(factory, os.path.join(tmp, "sock"))
        else:
            tls = tls_contexts()[0] if kind == "tls" else None
            server = await loop.create_server(factory, "127.0.0.1", 0, ssl=tls)
        try:
            yield server
        finally:
            server.close()
            for transport in accepted:
                transport.abort()
            await server.wait_closed()


@contextlib.asynccontextmanager
async def open_kind(kind: str) -> AsyncIterator[tuple[Any, Recorder, list[Any]]]:
    loop = asyncio.get_running_loop()
    peers: list[Any] = []  # closed on exit
    server_kind = kind if kind in ("tcp", "unix", "tls") else None
    async with contextlib.AsyncExitStack() as stack:
        if server_kind is not None:
            server = await stack.enter_async_context(open_server(server_kind))
            address = server.sockets[0].getsockname()
            if kind == "unix":
                transport, proto = await loop.create_unix_connection(Recorder, address)
            else:
                tls = tls_contexts()[1] if kind == "tls" else None
                transport, proto = await loop.create_connection(Recorder, *address, ssl=tls)
        elif kind == "udp":
            transport, proto = await loop.create_datagram_endpoint(
                Recorder, local_addr=("127.0.0.1", 0)
            )
        elif kind in ("read_pipe", "write_pipe"):
            rfd, wfd = os.pipe()
            if kind == "read_pipe":
                peers.append(open(wfd, "wb", 0))
                transport, proto = await loop.connect_read_pipe(Recorder, open(rfd, "rb", 0))
            else:
                peers.append(open(rfd, "rb", 0))
                transport, proto = await loop.connect_write_pipe(Recorder, open(wfd, "wb", 0))
        else:
            import subprocess

            # A child that lives until its stdin closes.
            child, child_proto = await loop.subprocess_exec(
                Recorder,
                sys.executable,
                "-c",
                "import sys; sys.stdin.read()",
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            if kind == "subprocess":
                transport, proto = child, child_proto
            else:
                # A pipe transport of the child: its protocol is the loop's own.
                transport = child.get_pipe_transport(0 if kind == "subprocess_stdin" else 1)
                proto = child_proto
                peers.append(child)
        try:
            yield transport, proto, peers
        finally:
            if kind == "subprocess" or not transport.is_closing():
                if hasattr(transport, "abort") and kind != "subprocess":
                    transport.abort()
                else:
                    transport.close()
            for peer in peers:
                peer.close()
    # (Once the server is closed: asyncio's TLS transport, closed after its
    # __del__ ran, lets go of its connection, which then only ends when the
    # server's end is aborted.)
    await asyncio.wait_for(asyncio.shield(proto.lost), 10)
