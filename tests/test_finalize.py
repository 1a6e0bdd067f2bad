"""Transports the application never closed: finalization and close() commute.

A client library that never closes its connections, and keeps each
StreamWriter in a reference cycle (as some connection pools do), leaves the
garbage collector to finalize the transport and its writer in whatever order
it likes; the writer's ``__del__`` then closes a transport whose own
``__del__`` may already have run.  asyncio's loop stays silent (apart from
its ResourceWarnings); so must tidal's, for every kind of transport and in
either order.  Everything here runs on both loops: the warnings expected are
the ones asyncio's loop gives.
"""

from __future__ import annotations

import asyncio
import gc
import re
import warnings
from typing import Any

import pytest
from transport_kinds import KINDS, NO_ABORT, open_kind, open_server, tls_contexts

# What asyncio's loop warns about leaked connections, and nothing else.
LEAK_WARNING = re.compile(
    r"unclosed (transport |<StreamWriter |<socket\.socket |file )|loop is closed"
)


def recorded(record: list[warnings.WarningMessage]) -> list[str]:
    """The recorded warnings' messages; fails on any that asyncio would not give."""
    messages = [str(w.message) for w in record]
    for w, message in zip(record, messages):
        assert w.category is ResourceWarning and LEAK_WARNING.match(message), message
    return messages


# Which kinds' __del__ still warns once close() (or abort()) has been called
# but connection_lost has not run yet: asyncio's TLS and subprocess
# transports count as closed at once, the others once their socket or pipe is
# let go of.
WARNS_AFTER_CLOSE = {
    "tcp",
    "unix",
    "udp",
    "read_pipe",
    "write_pipe",
    "subprocess_stdin",
    "subprocess_stdout",
}


@pytest.mark.parametrize(
    "kind, order",
    [
        (kind, order)
        for kind in KINDS
        for order in ("del-close", "close-del", "del-abort", "abort-del")
        if kind not in NO_ABORT or "abort" not in order
    ],
)
def test_del_and_close_in_either_order(loop: Any, arun: Any, kind: str, order: str) -> None:
    """transport.__del__() then close()/abort(), and the reverse: no error, asyncio's warnings."""
    first, second = order.split("-")

    async def main() -> list[str]:
        async with open_kind(kind) as (transport, proto, _peers):
            with warnings.catch_warnings(record=True) as record:
                warnings.simplefilter("always")
                for step in (first, second):
                    getattr(transport, "__" + step + "__" if step == "del" else step)()
                for _ in range(5):
                    await asyncio.sleep(0)
            return recorded(record)

    messages = arun(main())
    expected = 1 if first == "del" or kind in WARNS_AFTER_CLOSE else 0
    assert len(messages) == expected, messages
    assert all(m.startswith("unclosed transport ") for m in messages)


@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_leaked_writers_in_cycles_at_eof(loop: Any, arun: Any, kind: str) -> None:
    """50 connections the peer closed, never closed here, each writer in a cycle:
    the collector finalizes writers and transports in its own order, silently."""
    count = 50

    async def main() -> list[str]:
        # (The collector off until the test collects: a collection of its own
        # in between would take some of the connections.)
        gc.disable()
        try:
            return await leak_and_collect()
        finally:
            gc.enable()

    async def leak_and_collect() -> list[str]:
        async with open_server(kind, close_at_once=True) as server:
            address = server.sockets[0].getsockname()
            for _ in range(count):
                if kind == "unix":
                    reader, writer = await asyncio.open_unix_connection(address)
                else:
                    reader, writer = await asyncio.open_connection(*address)
                # The server closes at once: EOF, and the transport stops
                # reading (the loop no longer holds it).
                assert await reader.read() == b""
                writer.pool = [writer]  # type: ignore[attr-defined]  # the cycle
            del reader, writer
            with warnings.catch_warnings(record=True) as record:
                warnings.simplefilter("always")
                gc.collect()
                # connection_lost of what the writers closed runs now.
                for _ in range(5):
                    await asyncio.sleep(0)
                gc.collect()
            return recorded(record)

    messages = arun(main())
    assert sum(m.startswith("unclosed <StreamWriter ") for m in messages) == count


@pytest.mark.parametrize("kind", ["tcp", "unix", "tls"])
def test_leaked_writers_in_cycles_after_loop_close(
    loop_factory: Any, loop_errors: list[Any], kind: str, tmp_path: Any
) -> None:
    """Open connections left in cycles when the loop closes, then collected: only
    asyncio's warnings (the writers see a closed loop and close nothing)."""
    count = 10
    lp = loop_factory()
    lp.set_exception_handler(lambda _loop, ctx: loop_errors.append(ctx))

    async def main() -> None:
        # (The server is left open too: closing it would make 3.12+ wait for
        # the connections, and 3.13's asyncio then fails in its own
        # Server._wakeup as the collector detaches them.)
        accepted: list[Any] = []
        all_accepted = asyncio.Event()

        def handle(_reader: Any, writer: Any) -> None:
            accepted.append(writer)
            if len(accepted) == count:
                all_accepted.set()

        if kind == "unix":
            server = await asyncio.start_unix_server(handle, str(tmp_path / "sock"))
        else:
            ssl = tls_contexts()[0] if kind == "tls" else None
            server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ssl)
        address = server.sockets[0].getsockname()
        for _ in range(count):
            if kind == "unix":
                _reader, writer = await asyncio.open_unix_connection(address)
            else:
                ssl = tls_contexts()[1] if kind == "tls" else None
                _reader, writer = await asyncio.open_connection(*address, ssl=ssl)
            writer.pool = [writer]  # type: ignore[attr-defined]
        await all_accepted.wait()  # (nothing of the server's left half done)

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        try:
            lp.run_until_complete(asyncio.wait_for(main(), 30))
        finally:
            lp.close()
            # The closed loop, and the warnings' sources (each warning holds
            # the object it is about), are let go of while warnings are
            # recorded: what they kept alive (3.13's asyncio: the server's
            # socket) is collected here, where its warning is expected too.
            del lp
        gc.collect()
        messages = recorded(record)
        record.clear()
        gc.collect()
    recorded(record)
    assert messages and loop_errors == []


@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_server_with_leaked_writers_in_cycles(
    loop: Any, arun: Any, kind: str, tmp_path: Any
) -> None:
    """A server whose handler keeps every writer in a cycle and never closes it:
    once the clients have gone and the collector has run, the server closes and
    wait_closed() returns, silently."""
    count = 20

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.pool = [writer]  # type: ignore[attr-defined]

    async def main() -> list[str]:
        if kind == "unix":
            path = str(tmp_path / "sock")
            server = await asyncio.start_unix_server(handle, path)
        else:
            server = await asyncio.start_server(handle, "127.0.0.1", 0)
        address = server.sockets[0].getsockname()
        gc.disable()  # (as above: the test says when to collect)
        try:
            for _ in range(count):
                if kind == "unix":
                    _reader, writer = await asyncio.open_unix_connection(address)
                else:
                    _reader, writer = await asyncio.open_connection(*address)
                writer.close()
                await writer.wait_closed()
            for _ in range(10):
                await asyncio.sleep(0)
            with warnings.catch_warnings(record=True) as record:
                warnings.simplefilter("always")
                gc.collect()
                for _ in range(5):
                    await asyncio.sleep(0)
                server.close()
                await asyncio.wait_for(server.wait_closed(), 10)
                gc.collect()
        finally:
            gc.enable()
        return recorded(record)

    messages = arun(main())
    assert sum(m.startswith("unclosed <StreamWriter ") for m in messages) == count
