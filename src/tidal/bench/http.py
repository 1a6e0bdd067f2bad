"""Worker: a small HTTP/1.1 server on the loop under test (httptools parses).

``python -m tidal.bench.http --loop NAME``: every request gets the same small
200 response; connections are kept alive unless the client says otherwise.
It is the shape of a real server's hot path (a C parser called from
data_received, one write per response) without a framework on top.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

import httptools

from . import _worker

BODY = b"Hello, world!\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (
    len(BODY),
    BODY,
)
BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class HttpProtocol(asyncio.Protocol):
    def __init__(self, transports: set[asyncio.Transport]) -> None:
        self.transports = transports
        self.parser = httptools.HttpRequestParser(self)

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.transports.add(transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.write(BAD_REQUEST)
            self.transport.close()

    # httptools calls these as it parses.
    def on_message_complete(self) -> None:
        self.transport.write(RESPONSE)
        if not self.parser.should_keep_alive():
            self.transport.close()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.transports.discard(self.transport)


async def start() -> tuple[int, Callable[[], Any]]:
    loop = asyncio.get_running_loop()
    transports: set[asyncio.Transport] = set()
    server = await loop.create_server(
        lambda: HttpProtocol(transports), _worker.HOST, 0, backlog=_worker.BACKLOG
    )

    async def close() -> None:
        server.close()
        for transport in list(transports):
            transport.abort()
        await server.wait_closed()

    return server.sockets[0].getsockname()[1], close


def main(argv: list[str] | None = None) -> int:
    p = _worker.parser(__doc__)
    args = p.parse_args(argv)
    _worker.start_tracing(p, args)
    return _worker.serve(args, start)


if __name__ == "__main__":
    sys.exit(main())
