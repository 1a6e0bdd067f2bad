"""uvicorn serving a raw ASGI app, httpx as the client, both on the loop under test.

``uvicorn.Server(...).serve()`` is awaited as a task on the running loop: with
``loop="none"`` uvicorn never creates or installs a loop of its own (the
setting only matters to ``Server.run()``, which we don't call), so the
server's ``loop.create_server`` and its protocol are tidal's when the test
runs on tidal.  httpx goes through httpcore and anyio's asyncio backend.
Both of uvicorn's HTTP implementations run: h11 (pure Python) and httptools.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
from typing import Any

import httpx
import pytest
import uvicorn

STREAM_CHUNKS = 50
BIG = 3 * 1024 * 1024 + 7
# Every request here is plain HTTP; without a context of its own, each httpx
# client would load the CA bundle into a new one (~50 ms of CPU each).
PLAIN_HTTP = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def _pattern(n: int) -> bytes:
    block = b"".join(i.to_bytes(4, "big") for i in range(1 << 14))
    reps, rest = divmod(n, len(block))
    return block * reps + block[:rest]


def make_app(events: list[str], progress: dict[str, int]):
    async def app(scope: dict[str, Any], receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    events.append("startup")
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    events.append("shutdown")
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        assert scope["type"] == "http"
        path, method = scope["path"], scope["method"]
        if path == "/" and method == "GET":
            body = f"hello from {type(asyncio.get_running_loop()).__module__}".encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/plain")],
                }
            )
            await send({"type": "http.response.body", "body": body})
        elif path == "/echo" and method == "POST":
            parts = []
            while True:
                msg = await receive()
                if msg["type"] == "http.disconnect":
                    events.append(f"disconnect after {sum(map(len, parts))} bytes")
                    return
                parts.append(msg.get("body", b""))
                progress["received"] = progress.get("received", 0) + len(parts[-1])
                if not msg.get("more_body"):
                    break
            body = b"".join(parts)
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"x-sha256", hashlib.sha256(body).hexdigest().encode()),
                        (b"x-parts", str(len(parts)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
        elif path == "/stream":
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/plain")],
                }
            )
            for i in range(STREAM_CHUNKS):
                await send(
                    {
                        "type": "http.response.body",
                        "body": f"line {i}\n".encode(),
                        "more_body": True,
                    }
                )
                if i % 10 == 0:
                    await asyncio.sleep(0.001)
            await send({"type": "http.response.body", "body": b""})
        else:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b"nope"})

    return app


async def start(
    http: str, events: list[str], progress: dict[str, int] | None = None, uds: str | None = None
) -> tuple[uvicorn.Server, asyncio.Task, str]:
    config = uvicorn.Config(
        make_app(events, {} if progress is None else progress),
        host="127.0.0.1",
        port=0,
        uds=uds,
        loop="none",
        lifespan="on",
        log_level="warning",
        http=http,
    )
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve())
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    if task.done():
        task.result()  # raise what went wrong
    assert server.started
    if uds is not None:
        assert server.servers[0].sockets[0].getsockname() == uds
        return server, task, "http://localhost"
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, task, f"http://127.0.0.1:{port}"


async def stop(server: uvicorn.Server, task: asyncio.Task) -> None:
    server.should_exit = True
    await asyncio.wait_for(task, 10)


@pytest.fixture(params=["h11", "httptools"])
def http_impl(request: pytest.FixtureRequest) -> str:
    return request.param


def test_uvicorn_httpx(loop, loop_name, arun, http_impl):
    events: list[str] = []
    payload = _pattern(BIG)

    async def main():
        server, task, base = await start(http_impl, events)
        assert events == ["startup"]
        proto = server.config.http_protocol_class.__name__
        async with httpx.AsyncClient(base_url=base, timeout=10, verify=PLAIN_HTTP) as client:
            # keep-alive: many sequential requests on one pooled connection
            for _ in range(50):
                r = await client.get("/")
                assert r.status_code == 200
            hello = r.text
            r404 = await client.get("/missing")
            # concurrent requests
            rs = await asyncio.gather(
                *(client.post("/echo", content=f"n={i}".encode()) for i in range(100))
            )
            echoes = [(r.status_code, r.content) for r in rs]
            # large upload, echoed back
            r = await client.post("/echo", content=payload)
            big = (r.status_code, r.headers["x-sha256"], int(r.headers["x-parts"]), r.content)
            # streaming response, read as it arrives
            async with client.stream("GET", "/stream") as s:
                assert s.status_code == 200
                streamed = [chunk async for chunk in s.aiter_raw()]
        await stop(server, task)
        return proto, hello, r404, echoes, big, streamed, server

    proto, hello, r404, echoes, big, streamed, server = arun(main())
    assert proto == {"h11": "H11Protocol", "httptools": "HttpToolsProtocol"}[http_impl]
    assert hello == f"hello from {type(loop).__module__}"
    # the app really ran on the loop under test
    assert hello.startswith("hello from tidal" if loop_name == "tidal" else "hello from asyncio")
    assert (r404.status_code, r404.content) == (404, b"nope")
    assert echoes == [(200, f"n={i}".encode()) for i in range(100)]
    status, digest, parts, body = big
    assert status == 200 and digest == hashlib.sha256(payload).hexdigest()
    assert parts > 1  # uvicorn handed the body over as it arrived
    assert body == payload
    assert b"".join(streamed) == b"".join(f"line {i}\n".encode() for i in range(STREAM_CHUNKS))
    # graceful shutdown ran the lifespan shutdown and closed the listener
    assert events == ["startup", "shutdown"]
    assert all(not s.is_serving() for s in server.servers)


def test_uvicorn_shutdown_with_open_connection(loop, arun, http_impl):
    """should_exit with a keep-alive connection still open ends cleanly and refuses new ones."""
    events: list[str] = []

    async def main():
        server, task, base = await start(http_impl, events)
        port = int(base.rsplit(":", 1)[1])
        async with httpx.AsyncClient(base_url=base, timeout=10, verify=PLAIN_HTTP) as client:
            r = await client.get("/")
            assert r.status_code == 200
            await stop(server, task)  # the client's pooled connection is still open
            with pytest.raises(httpx.TransportError):
                await client.get("/")
        return port

    port = arun(main())
    assert events == ["startup", "shutdown"]
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect(("127.0.0.1", port))


def test_uvicorn_client_disconnects_mid_upload(loop, arun, http_impl):
    """A raw client announces 10 MB, sends 1 MB and hangs up: the app is told
    (http.disconnect) and the server carries on."""
    events: list[str] = []

    async def main():
        progress: dict[str, int] = {}
        server, task, base = await start(http_impl, events, progress)
        port = int(base.rsplit(":", 1)[1])
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n" + b"a" * 1_000_000
        )
        await writer.drain()
        for _ in range(1000):  # until the app has read all we sent
            if progress.get("received") == 1_000_000:
                break
            await asyncio.sleep(0.01)
        writer.close()
        await writer.wait_closed()
        for _ in range(500):
            if len(events) == 2:
                break
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient(base_url=base, timeout=10, verify=PLAIN_HTTP) as client:
            r = await client.post("/echo", content=b"still here")
        await stop(server, task)
        return r

    r = arun(main())
    assert (r.status_code, r.content) == (200, b"still here")
    assert events == ["startup", "disconnect after 1000000 bytes", "shutdown"]


def test_uvicorn_unix_socket(loop, loop_name, arun, http_impl, tmp_path):
    """uvicorn on a Unix socket (create_unix_server), httpx connecting through it."""
    events: list[str] = []
    path = str(tmp_path / "uvicorn.sock")
    payload = _pattern(BIG)

    async def main():
        server, task, base = await start(http_impl, events, uds=path)
        transport = httpx.AsyncHTTPTransport(uds=path, verify=PLAIN_HTTP)
        async with httpx.AsyncClient(transport=transport, base_url=base, timeout=10) as client:
            hellos = [(await client.get("/")).text for _ in range(20)]
            rs = await asyncio.gather(
                *(client.post("/echo", content=f"u{i}".encode()) for i in range(50))
            )
            big = await client.post("/echo", content=payload)
        await stop(server, task)
        return hellos, [r.content for r in rs], big

    hellos, echoes, big = arun(main())
    assert hellos == [f"hello from {type(loop).__module__}"] * 20
    assert hellos[0].startswith(f"hello from {loop_name}")
    assert echoes == [f"u{i}".encode() for i in range(50)]
    assert (big.status_code, big.content) == (200, payload)
    assert events == ["startup", "shutdown"]
