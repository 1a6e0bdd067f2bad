"""Worker: a TCP echo server on the loop under test, in one of four styles.

``python -m tidal.bench.echo --loop NAME --kind KIND``, where KIND is

  protocol  asyncio.Protocol: data_received -> transport.write
  buffered  asyncio.BufferedProtocol: the transport reads into our buffer
  streams   asyncio.start_server: await reader.read(); writer.write(); await drain()
  sock      loop.sock_accept / sock_recv / sock_sendall on plain sockets, a task each

The same four servers as every event-loop benchmark since uvloop's, so the
numbers read alike.  None of them looks at the bytes: the load generator
checks that what comes back is what it sent.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Callable
from typing import Any

from . import _worker

KINDS = ("protocol", "buffered", "streams", "sock")

# Bytes asked for per read in the streams and sock servers (the protocols get
# what the transport reads).  Under glibc's mmap threshold, so a read that
# allocates its result does not cost an mmap/munmap pair.
READ_SIZE = 64 * 1024


class EchoProtocol(asyncio.Protocol):
    def __init__(self, transports: set[asyncio.Transport]) -> None:
        self.transports = transports

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.transports.add(transport)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.transports.discard(self.transport)


class EchoBufferedProtocol(asyncio.BufferedProtocol):
    def __init__(self, transports: set[asyncio.Transport]) -> None:
        self.transports = transports
        self.buffer = bytearray(READ_SIZE)

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.transports.add(transport)

    def get_buffer(self, sizehint: int) -> bytearray:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        # A bytearray slice is a copy: the transport may keep what it cannot
        # send yet, and our buffer is refilled by the next read.
        self.transport.write(self.buffer[:nbytes])

    def connection_lost(self, exc: BaseException | None) -> None:
        self.transports.discard(self.transport)


async def start_protocol_server(
    make: Callable[[set[asyncio.Transport]], asyncio.BaseProtocol],
) -> tuple[int, Callable[[], Any]]:
    loop = asyncio.get_running_loop()
    transports: set[asyncio.Transport] = set()
    server = await loop.create_server(
        lambda: make(transports), _worker.HOST, 0, backlog=_worker.BACKLOG
    )

    async def close() -> None:
        server.close()
        for transport in list(transports):
            transport.abort()
        await server.wait_closed()

    return server.sockets[0].getsockname()[1], close


async def start_streams_server() -> tuple[int, Callable[[], Any]]:
    handlers: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers[task] = writer
        try:
            while data := await reader.read(READ_SIZE):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass  # the load generator ends with a reset
        finally:
            writer.close()
            try:
                # Retrieves the reset from the protocol's closed-future too;
                # left unretrieved it is logged when a GC cycle frees it.
                await writer.wait_closed()
            except ConnectionError:
                pass
            handlers.pop(task, None)

    server = await asyncio.start_server(handle, _worker.HOST, 0, backlog=_worker.BACKLOG)

    async def close() -> None:
        server.close()
        # Abort what is still open, so each handler ends by itself: cancelling
        # one trips asyncio's own done-callback (task.exception() on a
        # cancelled task) into the exception handler, on 3.11.
        for writer in list(handlers.values()):
            writer.transport.abort()
        if handlers:
            _done, pending = await asyncio.wait(list(handlers), timeout=5)
            for task in pending:
                task.cancel()
        await server.wait_closed()

    return server.sockets[0].getsockname()[1], close


async def start_sock_server() -> tuple[int, Callable[[], Any]]:
    loop = asyncio.get_running_loop()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((_worker.HOST, 0))
    listener.listen(_worker.BACKLOG)
    listener.setblocking(False)
    tasks: set[asyncio.Task[None]] = set()

    async def client(conn: socket.socket) -> None:
        try:
            while data := await loop.sock_recv(conn, READ_SIZE):
                await loop.sock_sendall(conn, data)
        except ConnectionError:
            pass
        finally:
            conn.close()

    async def accept() -> None:
        while True:
            conn, _ = await loop.sock_accept(listener)
            conn.setblocking(False)
            # Transports set TCP_NODELAY themselves; a plain socket does not.
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = loop.create_task(client(conn))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    acceptor = loop.create_task(accept())

    async def close() -> None:
        acceptor.cancel()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(acceptor, *tasks, return_exceptions=True)
        listener.close()

    return listener.getsockname()[1], close


async def start(kind: str) -> tuple[int, Callable[[], Any]]:
    if kind == "protocol":
        return await start_protocol_server(EchoProtocol)
    if kind == "buffered":
        return await start_protocol_server(EchoBufferedProtocol)
    if kind == "streams":
        return await start_streams_server()
    if kind == "sock":
        return await start_sock_server()
    raise ValueError(kind)


def main(argv: list[str] | None = None) -> int:
    p = _worker.parser(__doc__)
    p.add_argument("--kind", choices=KINDS, default="protocol")
    args = p.parse_args(argv)
    _worker.start_tracing(p, args)
    return _worker.serve(args, lambda: start(args.kind))


if __name__ == "__main__":
    sys.exit(main())
