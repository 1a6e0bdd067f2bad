"""websockets (the current ``websockets.asyncio`` API), server and client on the loop under test.

Echo handler; many messages, 1 MB messages, fragmented messages, ping/pong,
close codes both ways, an oversized message refused with 1009, and flow
control (a client that stops reading makes the server's transport pause).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from websockets.asyncio.client import connect, unix_connect
from websockets.asyncio.server import ServerConnection, serve, unix_serve
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK
from websockets.frames import CloseCode

MB = 1_000_000


class Recorder:
    """What the server side saw: for each finished connection, the close frames it
    received and sent ((code, reason) or None); and any error in the handler."""

    def __init__(self) -> None:
        self.closed: list[tuple[tuple[int, str] | None, tuple[int, str] | None]] = []
        self.errors: list[BaseException] = []
        self.count = 0

    async def handler(self, ws: ServerConnection) -> None:
        try:
            async for msg in ws:
                if msg == "close me":
                    await ws.close(4000, "closed by server")
                elif msg == "flood":
                    for i in range(500):
                        await ws.send(f"flood {i} " + "x" * 1000)
                elif msg == "count":
                    await ws.send(str(self.count))
                else:
                    self.count += 1
                    await ws.send(msg)
        except ConnectionClosed:
            pass
        except BaseException as exc:  # websockets would only log it: make the test see it
            self.errors.append(exc)
            raise
        finally:
            rcvd, sent = ws.protocol.close_rcvd, ws.protocol.close_sent
            self.closed.append(
                (rcvd and (rcvd.code, rcvd.reason), sent and (sent.code, sent.reason))
            )


@pytest.fixture
def rec():
    recorder = Recorder()
    yield recorder
    assert recorder.errors == [], "the server's handler failed"


def uri_of(server) -> str:
    host, port = server.sockets[0].getsockname()[:2]
    assert host == "127.0.0.1"
    return f"ws://127.0.0.1:{port}"


def test_echo_many_messages(loop, loop_name, arun, rec):

    async def main():
        async with serve(rec.handler, "127.0.0.1", 0) as server:
            async with connect(uri_of(server)) as ws:
                transport_module = type(ws.transport).__module__
                # one at a time
                for i in range(200):
                    await ws.send(f"m{i}")
                    assert await ws.recv() == f"m{i}"
                # pipelined: 1000 sends, then 1000 receives, order kept
                for i in range(1000):
                    await ws.send(b"b%d" % i)
                got = [await ws.recv() for _ in range(1000)]
                await ws.send("count")
                count = await ws.recv()
            await asyncio.sleep(0)  # let the handler finish its finally
            return got, count, ws.close_code, transport_module

    got, count, close_code, transport_module = arun(main())
    assert transport_module.split(".")[0] == loop_name  # the loop's own transport
    assert got == [b"b%d" % i for i in range(1000)]
    assert count == "1200"
    assert close_code == CloseCode.NORMAL_CLOSURE


def test_large_and_fragmented_messages(loop, arun, rec):
    big_bin = os.urandom(MB)
    big_text = "é" * (MB // 2)  # 1 MB once encoded as UTF-8

    def fragments():
        for i in range(100):
            yield os.urandom(10_000) if i % 2 else bytes([i]) * 10_000

    async def main():
        async with serve(rec.handler, "127.0.0.1", 0, max_size=2 * MB) as server:
            async with connect(uri_of(server), max_size=2 * MB) as ws:
                await ws.send(big_bin)
                back_bin = await ws.recv()
                await ws.send(big_text)
                back_text = await ws.recv()
                frags = list(fragments())
                await ws.send(iter(frags))  # one message sent as 100 frames
                back_frag = await ws.recv()
            return back_bin, back_text, frags, back_frag

    back_bin, back_text, frags, back_frag = arun(main())
    assert back_bin == big_bin
    assert back_text == big_text
    assert back_frag == b"".join(frags)


def test_ping_pong(loop, arun, rec):

    async def main():
        async with serve(rec.handler, "127.0.0.1", 0, ping_interval=None) as server:
            async with connect(uri_of(server), ping_interval=None) as ws:
                latencies = []
                for i in range(20):
                    pong = await ws.ping(b"p%d" % i)
                    latencies.append(await asyncio.wait_for(pong, 5))
                # pings interleaved with data
                waiters = [await ws.ping() for _ in range(10)]
                await ws.send("after pings")
                echoed = await ws.recv()
                await asyncio.wait_for(asyncio.gather(*waiters), 5)
            return latencies, echoed

    latencies, echoed = arun(main())
    assert len(latencies) == 20 and all(0 <= x < 5 for x in latencies)
    assert echoed == "after pings"


def test_close_codes(loop, arun, rec):

    async def main():
        async with serve(rec.handler, "127.0.0.1", 0, max_size=1000) as server:
            uri = uri_of(server)
            # 1. server closes with an application code
            async with connect(uri) as ws:
                await ws.send("close me")
                with pytest.raises(ConnectionClosedError) as exc1:
                    await ws.recv()
            # 2. client closes with an application code
            async with connect(uri) as ws:
                await ws.send("hi")
                assert await ws.recv() == "hi"
                await ws.close(4001, "closed by client")
            # 3. client sends more than the server's max_size: 1009
            async with connect(uri) as ws:
                await ws.send(b"z" * 5000)
                with pytest.raises(ConnectionClosedError) as exc3:
                    await ws.recv()
            # 4. normal close
            async with connect(uri) as ws:
                await ws.send("bye")
                assert await ws.recv() == "bye"
            with pytest.raises(ConnectionClosedOK):
                await ws.send("too late")
            for _ in range(100):
                if len(rec.closed) == 4:
                    break
                await asyncio.sleep(0.01)
        return exc1.value, exc3.value, rec.closed

    exc1, exc3, server_closed = arun(main())
    assert (exc1.rcvd.code, exc1.rcvd.reason) == (4000, "closed by server")
    assert exc3.rcvd.code == CloseCode.MESSAGE_TOO_BIG
    by_server, by_client = (4000, "closed by server"), (4001, "closed by client")
    normal = (CloseCode.NORMAL_CLOSURE, "")
    assert len(server_closed) == 4
    assert server_closed[0] == (by_server, by_server)  # (received, sent): the client echoes
    assert server_closed[1] == (by_client, by_client)
    # failing the connection: the server sends 1009 and discards what follows (the echo)
    rcvd, (code, reason) = server_closed[2]
    assert rcvd is None and code == CloseCode.MESSAGE_TOO_BIG and "1000" in reason
    assert server_closed[3] == (normal, normal)


def test_flow_control(loop, arun, rec):
    """A client that stops reading: its transport pauses reading, the server's writes block,
    and everything still arrives, in order, once the client reads again."""

    async def main():
        async with serve(rec.handler, "127.0.0.1", 0, write_limit=4096) as server:
            async with connect(uri_of(server), max_queue=4) as ws:
                await ws.send("flood")
                await asyncio.sleep(0.2)  # the server fills every buffer, then waits
                paused = ws.transport.is_reading() is False
                got = [await ws.recv() for _ in range(500)]
                await ws.send("ok")
                last = await ws.recv()
            return paused, got, last

    paused, got, last = arun(main())
    assert paused, "the client's transport was not paused with a full queue"
    assert got == [f"flood {i} " + "x" * 1000 for i in range(500)]
    assert last == "ok"


def test_unix_socket(loop, arun, rec, tmp_path: Path):
    path = str(tmp_path / "ws.sock")

    async def main():
        async with unix_serve(rec.handler, path), unix_connect(path) as ws:
            out = []
            for i in range(100):
                await ws.send(f"u{i}")
                out.append(await ws.recv())
            await ws.send(b"\x00" * (MB // 2))
            big = await ws.recv()
        return out, big

    out, big = arun(main())
    assert out == [f"u{i}" for i in range(100)]
    assert big == b"\x00" * (MB // 2)


def test_server_close_with_open_connections(loop, arun, rec):
    """Closing the server closes every open connection with 1001 (going away)."""

    async def main():
        server = await serve(rec.handler, "127.0.0.1", 0)
        clients = [await connect(uri_of(server)) for _ in range(10)]
        for i, ws in enumerate(clients):
            await ws.send(f"c{i}")
            assert await ws.recv() == f"c{i}"
        server.close()
        await asyncio.wait_for(server.wait_closed(), 10)
        codes = []
        for ws in clients:
            with pytest.raises(ConnectionClosedOK):
                await ws.recv()
            codes.append(ws.close_code)
        return codes

    codes = arun(main())
    assert codes == [CloseCode.GOING_AWAY] * 10
    assert [sent for _rcvd, sent in rec.closed] == [(CloseCode.GOING_AWAY, "")] * 10
