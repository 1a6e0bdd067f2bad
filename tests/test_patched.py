"""A method patched on asyncio's loop class is what the loop runs (_patched.py).

asyncio's loop is a subclass of asyncio.SelectorEventLoop and BaseEventLoop,
so a test that patches one of those (asyncssh's connect-timeout tests patch
``asyncio.BaseEventLoop.create_connection`` with a slow fake) changes what
every loop does; tidal's follows such a patch for its per-connection,
per-lookup and executor operations.  A wrapper around asyncio's original (it
calls that with the loop) leaves tidal's own method to run: asyncio's
original needs asyncio's loop.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any
from unittest import mock

import pytest

_SERVING_NAME = "tidal-patched-loop.invalid"


async def _echo_server(loop: asyncio.AbstractEventLoop) -> tuple[asyncio.AbstractServer, int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _echo_once(host: str, port: int) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"ping\n")
    line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return line


@pytest.mark.parametrize("patched_on", ["BaseEventLoop", "SelectorEventLoop"])
def test_a_function_patched_on_asyncios_loop_class_is_called(loop, arun, patched_on):
    """A plain function patched on asyncio's loop class is called as a method
    of the loop (asyncssh's slow-connect fake), until the patch is undone."""
    seen: list[tuple[Any, ...]] = []

    async def slow_connect(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append((self, args, kwargs))
        await asyncio.sleep(3600)

    async def main() -> None:
        server, port = await _echo_server(loop)
        with mock.patch.object(getattr(asyncio, patched_on), "create_connection", slow_connect):
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(
                    loop.create_connection(asyncio.Protocol, "127.0.0.1", port, ssl=None), 0.05
                )
        assert seen == [(loop, (asyncio.Protocol, "127.0.0.1", port), {"ssl": None})]
        assert asyncio.iscoroutinefunction(loop.create_connection)
        assert await _echo_once("127.0.0.1", port) == b"ping\n"
        server.close()
        await server.wait_closed()

    arun(main())


def test_a_mock_patched_on_asyncios_loop_class_answers_lookups(loop, arun):
    """A mock (no descriptor: called without the loop) patched as getaddrinfo
    answers the loop's getaddrinfo, and so resolves the names connections go
    to; an autospecced one is called with the loop."""

    async def main() -> None:
        server, port = await _echo_server(loop)
        answer = [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", port))]
        with mock.patch("asyncio.BaseEventLoop.getaddrinfo", return_value=answer) as fake:
            assert await loop.getaddrinfo(_SERVING_NAME, port) == answer
            assert fake.call_args == mock.call(_SERVING_NAME, port)
            assert await _echo_once(_SERVING_NAME, port) == b"ping\n"
            assert fake.call_args.args == (_SERVING_NAME, port)
        with mock.patch.object(asyncio.BaseEventLoop, "getaddrinfo", autospec=True) as fake:
            fake.return_value = answer
            assert await loop.getaddrinfo(_SERVING_NAME, 80) == answer
            assert fake.call_args == mock.call(loop, _SERVING_NAME, 80)
        server.close()
        await server.wait_closed()

    arun(main())


def test_run_in_executor_patched_on_asyncios_loop_class(loop, arun):
    """run_in_executor patched to run the function at once, on the loop's
    thread (a test's way to keep an executor out of it)."""

    def inline(self: Any, executor: Any, func: Any, *args: Any) -> asyncio.Future[Any]:
        future = self.create_future()
        future.set_result(func(*args))
        return future

    async def main() -> None:
        with mock.patch.object(asyncio.BaseEventLoop, "run_in_executor", inline):
            assert await loop.run_in_executor(None, threading.get_ident) == threading.get_ident()
        assert await loop.run_in_executor(None, threading.get_ident) != threading.get_ident()

    arun(main())


def test_a_wrapper_of_asyncios_method_leaves_the_loop_working(loop, arun):
    """A wrapper that calls asyncio's original with the loop (one that logs,
    say): on asyncio's loop it runs; tidal's loop, which asyncio's original
    cannot run on, runs its own method, as before.  Either way the
    connections and the server work."""
    original_connect = asyncio.BaseEventLoop.create_connection
    original_serve = asyncio.BaseEventLoop.create_server

    async def logged_connect(self: Any, *args: Any, **kwargs: Any) -> Any:
        return await original_connect(self, *args, **kwargs)

    def make_logged_serve(original: Any) -> Any:
        async def logged_serve(self: Any, *args: Any, **kwargs: Any) -> Any:
            return await original(self, *args, **kwargs)

        return logged_serve

    async def main() -> None:
        with mock.patch.object(asyncio.BaseEventLoop, "create_connection", logged_connect):
            with mock.patch.object(
                asyncio.BaseEventLoop, "create_server", make_logged_serve(original_serve)
            ):
                server, port = await _echo_server(loop)
                assert await _echo_once("127.0.0.1", port) == b"ping\n"
                server.close()
                await server.wait_closed()

    arun(main())
