"""aiohttp, unchanged, on both loops: an ``aiohttp.web`` server and aiohttp's client.

Server and client run on the loop under test, over loopback TCP and a Unix
socket.  Every check is on content the other side actually produced (bodies,
counts, close codes), so a transport that drops, reorders or truncates data
fails here.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

BIG = 5 * 1024 * 1024 + 123  # ~5 MB, deliberately not a multiple of any buffer size
STREAM_CHUNKS = 64
WS_CLOSE_CODE = 4321


def _pattern(n: int) -> bytes:
    """Deterministic, non-repeating-at-buffer-size bytes (a shifted chunk would show)."""
    block = b"".join(i.to_bytes(4, "big") for i in range(1 << 14))  # 64 KiB of counters
    reps, rest = divmod(n, len(block))
    return block * reps + block[:rest]


class State:
    def __init__(self, file_path: Path) -> None:
        self.peers: list[tuple[str, int] | str] = []
        # The server-side transport of each request, kept alive so that two
        # connections are never confused (a closed connection's client port,
        # and a freed object's id, may both be reused).
        self.transports: list[object] = []
        self.transport_modules: set[str] = set()
        self.ws_closes: list[int | str | None] = []
        self.file_path = file_path
        self.endless_ended: asyncio.Future[str] | None = None


def make_app(state: State) -> web.Application:
    app = web.Application(client_max_size=BIG * 2)
    routes = web.RouteTableDef()

    @routes.get("/text")
    async def text(request: web.Request) -> web.Response:
        assert request.transport is not None
        state.peers.append(request.transport.get_extra_info("peername"))
        state.transports.append(request.transport)
        state.transport_modules.add(type(request.transport).__module__)
        return web.Response(text=f"hello {request.query.get('i', 'tidal')}")

    @routes.post("/echo")
    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(body=body, headers={"X-Sha256": hashlib.sha256(body).hexdigest()})

    @routes.get("/blob")
    async def blob(request: web.Request) -> web.Response:
        # A BytesIO body: aiohttp warns (ResourceWarning) on raw bytes over 1 MB.
        return web.Response(body=io.BytesIO(_pattern(int(request.query["n"]))))

    @routes.get("/file")
    async def file(request: web.Request) -> web.FileResponse:
        # FileResponse goes through loop.sendfile() when it can.
        return web.FileResponse(state.file_path)

    @routes.get("/stream")
    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(STREAM_CHUNKS):
            await resp.write(f"chunk {i:03d}\n".encode() * 100)
            if i % 8 == 0:
                await asyncio.sleep(0.001)  # let the client see separate chunks
        await resp.write_eof()
        return resp

    @routes.get("/endless")
    async def endless(request: web.Request) -> web.StreamResponse:
        # Writes until the client goes away; records how the handler ended.
        assert state.endless_ended is not None
        resp = web.StreamResponse()
        await resp.prepare(request)
        try:
            while True:
                await resp.write(b"x" * 16384)
                await asyncio.sleep(0)
        except (ConnectionError, asyncio.CancelledError) as exc:
            state.endless_ended.set_result(type(exc).__name__)
            raise

    @routes.get("/ws")
    async def ws(request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        async for msg in sock:
            if msg.type == aiohttp.WSMsgType.TEXT:
                if msg.data == "please close":
                    await sock.close(code=WS_CLOSE_CODE, message=b"as asked")
                    state.ws_closes.append("server closed")
                    return sock
                await sock.send_str("echo: " + msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await sock.send_bytes(msg.data[::-1])
        state.ws_closes.append(sock.close_code)
        return sock

    app.add_routes(routes)
    return app


@asynccontextmanager
async def serving(tmp_path: Path, *, unix: bool = False) -> AsyncIterator[tuple[State, str]]:
    """Start the app; yield (state, base URL or unix socket path)."""
    file_path = tmp_path / "payload.bin"
    file_path.write_bytes(_pattern(BIG))
    state = State(file_path)
    runner = web.AppRunner(make_app(state))
    await runner.setup()
    try:
        if unix:
            path = str(tmp_path / "aio.sock")
            await web.UnixSite(runner, path).start()
            assert runner.addresses == [path]
            yield state, path
        else:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            host, port = runner.addresses[0][:2]
            assert host == "127.0.0.1" and port > 0
            yield state, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def test_get_text_and_keepalive(loop, loop_name, arun, tmp_path):
    """Sequential requests reuse one connection; the server sees a single peer."""

    async def main():
        async with serving(tmp_path) as (state, base):
            conn = aiohttp.TCPConnector(limit=1)
            async with aiohttp.ClientSession(connector=conn) as session:
                for i in range(100):
                    async with session.get(f"{base}/text", params={"i": str(i)}) as resp:
                        assert resp.status == 200
                        assert resp.headers["Content-Type"].startswith("text/plain")
                        assert await resp.text() == f"hello {i}"
                async with session.get(f"{base}/missing") as resp:
                    assert resp.status == 404
            return state.peers, state.transport_modules

    peers, transport_modules = arun(main())
    # the server's connections really are the loop's own transports
    assert [m.split(".")[0] for m in transport_modules] == [loop_name]
    assert len(peers) == 100
    assert len(set(peers)) == 1, f"keep-alive broken: {len(set(peers))} connections"


def test_concurrent_requests(loop, arun, tmp_path):
    """200 requests at once through gather: every answer belongs to its request."""

    async def main():
        async with serving(tmp_path) as (state, base):
            async with aiohttp.ClientSession() as session:

                async def one(i: int) -> str:
                    async with session.get(f"{base}/text", params={"i": str(i)}) as resp:
                        assert resp.status == 200
                        return await resp.text()

                bodies = await asyncio.gather(*(one(i) for i in range(200)))
            return bodies, state.peers

    bodies, peers = arun(main())
    assert bodies == [f"hello {i}" for i in range(200)]
    assert len(peers) == 200
    # The connector's default limit is 100: connections were opened in parallel and reused.
    assert 1 < len(set(peers)) <= 100


def test_large_upload_and_download(loop, arun, tmp_path):
    payload = _pattern(BIG)
    digest = hashlib.sha256(payload).hexdigest()

    async def main():
        async with serving(tmp_path) as (_state, base):
            async with aiohttp.ClientSession() as session:
                async with session.post(f"{base}/echo", data=io.BytesIO(payload)) as resp:
                    assert resp.status == 200
                    assert resp.headers["X-Sha256"] == digest  # the server got it whole
                    echoed = await resp.read()
                async with session.get(f"{base}/blob", params={"n": str(BIG)}) as resp:
                    assert resp.status == 200
                    assert resp.content_length == BIG
                    downloaded = await resp.read()
                async with session.get(f"{base}/file") as resp:
                    assert resp.status == 200
                    from_file = await resp.read()
            return echoed, downloaded, from_file

    echoed, downloaded, from_file = arun(main())
    assert len(echoed) == BIG and echoed == payload
    assert len(downloaded) == BIG and downloaded == payload
    assert len(from_file) == BIG and from_file == payload


def test_streaming_response(loop, arun, tmp_path):
    async def main():
        async with (
            serving(tmp_path) as (_state, base),
            aiohttp.ClientSession() as session,
            session.get(f"{base}/stream") as resp,
        ):
            assert resp.status == 200
            assert resp.headers.get("Transfer-Encoding") == "chunked"
            return [chunk async for chunk in resp.content.iter_any()]

    parts = arun(main())
    body = b"".join(parts)
    assert body == b"".join(f"chunk {i:03d}\n".encode() * 100 for i in range(STREAM_CHUNKS))
    assert len(parts) > 1  # it really arrived in pieces


def test_websocket_echo_and_close(loop, arun, tmp_path):
    async def main():
        async with serving(tmp_path) as (state, base):
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(f"{base}/ws") as ws:
                    texts, blobs = [], []
                    for i in range(50):
                        await ws.send_str(f"msg {i}")
                        texts.append(await ws.receive_str(timeout=5))
                        data = os.urandom(1000 + i)
                        await ws.send_bytes(data)
                        blobs.append((data, await ws.receive_bytes(timeout=5)))
                    big = _pattern(1 << 20)
                    await ws.send_bytes(big)
                    big_back = await ws.receive_bytes(timeout=10)
                    await ws.send_str("please close")
                    closing = await ws.receive(timeout=5)
                    assert closing.type == aiohttp.WSMsgType.CLOSE
                    assert closing.data == WS_CLOSE_CODE
                    assert closing.extra == "as asked"
                    assert ws.closed and ws.close_code == WS_CLOSE_CODE
                # A second socket closed from the client side.
                async with session.ws_connect(f"{base}/ws") as ws2:
                    await ws2.send_str("one")
                    assert await ws2.receive_str(timeout=5) == "echo: one"
                    await ws2.close(code=aiohttp.WSCloseCode.GOING_AWAY)
                for _ in range(100):
                    if len(state.ws_closes) == 2:
                        break
                    await asyncio.sleep(0.01)
            return texts, blobs, big, big_back, state.ws_closes

    texts, blobs, big, big_back, ws_closes = arun(main())
    assert texts == [f"echo: msg {i}" for i in range(50)]
    for sent, got in blobs:
        assert got == sent[::-1]
    assert big_back == big[::-1]
    # The second entry is the code the server received from the client's close frame.
    assert ws_closes == ["server closed", aiohttp.WSCloseCode.GOING_AWAY]


def test_unix_site(loop, arun, tmp_path):
    payload = _pattern(BIG)

    async def main():
        async with serving(tmp_path, unix=True) as (_state, path):
            conn = aiohttp.UnixConnector(path=path)
            async with aiohttp.ClientSession(connector=conn) as session:
                texts = []
                for i in range(20):
                    async with session.get("http://localhost/text", params={"i": str(i)}) as resp:
                        assert resp.status == 200
                        texts.append(await resp.text())
                async with session.post("http://localhost/echo", data=io.BytesIO(payload)) as resp:
                    assert resp.status == 200
                    echoed = await resp.read()
                async with session.ws_connect("http://localhost/ws") as ws:
                    await ws.send_str("over unix")
                    ws_text = await ws.receive_str(timeout=5)
            return texts, echoed, ws_text

    texts, echoed, ws_text = arun(main())
    assert texts == [f"hello {i}" for i in range(20)]
    assert echoed == payload
    assert ws_text == "echo: over unix"


@pytest.mark.parametrize("n", [0, 1, 65536])
def test_small_bodies(loop, arun, tmp_path, n):
    """Edge sizes: empty, one byte, exactly one 64 KiB read buffer."""
    payload = _pattern(n)

    async def main():
        async with (
            serving(tmp_path) as (_state, base),
            aiohttp.ClientSession() as session,
            session.post(f"{base}/echo", data=io.BytesIO(payload)) as resp,
        ):
            assert resp.status == 200
            return await resp.read()

    assert arun(main()) == payload


def test_new_connection_per_request(loop, arun, tmp_path):
    """force_close: 300 requests, each on a fresh TCP connection opened and torn down."""

    async def main():
        async with serving(tmp_path) as (state, base):
            conn = aiohttp.TCPConnector(force_close=True, limit=20)
            async with aiohttp.ClientSession(connector=conn) as session:

                async def one(i: int) -> str:
                    async with session.get(f"{base}/text", params={"i": str(i)}) as resp:
                        return await resp.text()

                bodies = await asyncio.gather(*(one(i) for i in range(300)))
            return bodies, state.transports

    bodies, transports = arun(main())
    assert bodies == [f"hello {i}" for i in range(300)]
    # Each request came on a connection of its own.
    assert len({id(t) for t in transports}) == 300


def test_client_goes_away_mid_stream(loop, arun, tmp_path):
    """The client drops the connection during an endless response: the server's
    handler sees it (its write fails or it is cancelled), nothing else breaks."""

    async def main():
        async with serving(tmp_path) as (state, base):
            state.endless_ended = asyncio.get_running_loop().create_future()
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{base}/endless") as resp:
                    got = await resp.content.readexactly(200_000)
                    resp.close()  # drop the connection, don't drain it
                how = await asyncio.wait_for(state.endless_ended, 10)
                async with session.get(f"{base}/text") as resp:  # the server is still fine
                    after = await resp.text()
            return got, how, after

    got, how, after = arun(main())
    assert got == b"x" * 200_000
    assert how in ("ConnectionResetError", "CancelledError", "ClientConnectionResetError")
    assert after == "hello tidal"
