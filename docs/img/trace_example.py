"""The program behind trace.png: an aiohttp server and six clients fetching four pages each.

    TIDAL_TRACE=trace.json python docs/img/trace_example.py
    python -m tidal trace --png docs/img/trace.png --width 1400 trace.json

(tests/thirdparty/test_trace_e2e.py runs it traced and checks the trace.)
"""

import asyncio

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

import tidal


async def lookup(n: str) -> str:
    await asyncio.sleep(0.002)  # a database, say
    return f"page {n}"


async def page(request: web.Request) -> web.Response:
    return web.Response(text=await lookup(request.match_info["n"]))


async def client(session: aiohttp.ClientSession, base: str, i: int) -> None:
    for j in range(4):
        async with session.get(f"{base}{i * 10 + j}") as resp:
            assert await resp.text() == f"page {i * 10 + j}"


async def main() -> None:
    app = web.Application()
    app.router.add_get("/{n}", page)
    async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as session:
        base = str(server.make_url("/"))
        await asyncio.gather(*(asyncio.create_task(client(session, base, i), name=f"client-{i}") for i in range(6)))


if __name__ == "__main__":
    tidal.run(main())
