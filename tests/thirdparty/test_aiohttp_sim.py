"""aiohttp's server AND client inside a simulation, unmodified.

aiohttp's client does not ask the loop for its sockets: aiohappyeyeballs
calls ``socket.socket()`` itself and hands the socket to
``loop.sock_connect`` and ``loop.create_connection(sock=...)``.  Inside a
running simulation, ``socket.socket()`` called from a host's code makes a
simulated socket of that host, so the client connects over the simulated
network like everything else.  Checked on what the other side produced:
JSON, a body's digest, the errors a refused connection and an unknown name
give, and the same run twice from one seed.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
from typing import Any

import pytest

from tidal import sim

aiohttp = pytest.importorskip("aiohttp")
web = pytest.importorskip("aiohttp.web")

BODY = bytes(range(256)) * 4096  # 1 MiB: four times the simulated TCP window


async def server() -> None:
    async def hello(request: Any) -> Any:
        await asyncio.sleep(0.5)  # virtual
        return web.json_response(
            {"hello": request.query["name"], "at": asyncio.get_running_loop().time()}
        )

    async def digest(request: Any) -> Any:
        body = await request.read()
        return web.Response(text=f"{len(body)} {hashlib.sha256(body).hexdigest()}")

    app = web.Application(client_max_size=2 * len(BODY))
    app.router.add_get("/", hello)
    app.router.add_post("/digest", digest)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, None, 8080).start()
    await asyncio.sleep(30)
    await runner.cleanup()


async def client() -> list[Any]:
    await asyncio.sleep(1)
    out: list[Any] = [isinstance(socket.socket(), socket.socket)]
    async with aiohttp.ClientSession() as session:
        async with session.get("http://web:8080/", params={"name": "sim"}) as r:
            out.append((r.status, await r.json()))
        async with session.post("http://web:8080/digest", data=BODY) as r:
            out.append(await r.text())
        for url in ("http://web:9999/", "http://nowhere:8080/"):
            try:
                await session.get(url)
            except aiohttp.ClientConnectorError as exc:
                out.append(type(exc.os_error).__name__)
    return out


def scenario(seed: int) -> sim.Simulation:
    s = sim.Simulation(seed=seed, latency=(0.01, 0.01))
    s.host("web", server)
    s.host("browser", client)
    return s


def test_an_aiohttp_client_talks_to_an_aiohttp_server_in_a_simulation() -> None:
    real = socket.socket
    res = sim.check_determinism(scenario, 3, until=20)
    assert socket.socket is real  # restored after the run
    assert res.results["browser"] == [
        True,  # a simulated socket is a socket.socket to the program
        (200, {"hello": "sim", "at": 1.53}),
        f"{len(BODY)} {hashlib.sha256(BODY).hexdigest()}",
        "ConnectionRefusedError",
        "gaierror",
    ]
