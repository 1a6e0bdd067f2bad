"""IPv6 inside a simulation: hosts' mapped loopback addresses, "::" and "::1".

A host's IPv6 address is its IPv4 one mapped (``::ffff:127.1.0.1``: still
loopback, reachable by nothing beyond this machine); "::" and "::1" mean
what 0.0.0.0 and 127.0.0.1 do.  IPv4 and IPv6 sockets reach each other as
on a dual-stack host, and each reports addresses in its own family.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from tidal import sim


async def server() -> list[Any]:
    seen: list[Any] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(writer.get_extra_info("peername"))
        writer.write((await reader.readline()).upper())
        await writer.drain()
        writer.close()

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: Any) -> None:
            seen.append(addr)
            self.transport.sendto(data.upper(), addr)

    loop = asyncio.get_running_loop()
    udp, _ = await loop.create_datagram_endpoint(
        Echo, local_addr=("::", 9000), family=socket.AF_INET6
    )
    async with await asyncio.start_server(handle, "::", 7000):
        await asyncio.sleep(1)
        reader, writer = await asyncio.open_connection("::1", 7000)  # itself
        writer.write(b"self\n")
        seen.append(await reader.readline())
        writer.close()
        await asyncio.sleep(2)
    udp.close()
    return seen


async def client() -> list[Any]:
    await asyncio.sleep(0.1)
    loop = asyncio.get_running_loop()
    out: list[Any] = []
    [info] = await loop.getaddrinfo("web", 7000, family=socket.AF_INET6, type=socket.SOCK_STREAM)
    out.append(info[4])
    reader, writer = await asyncio.open_connection(info[4][0], 7000)
    writer.write(b"over v6\n")
    out += [await reader.readline(), writer.get_extra_info("sockname")]
    writer.close()
    reader, writer = await asyncio.open_connection("web", 7000)  # IPv4, to the "::" listener
    writer.write(b"over v4\n")
    out += [await reader.readline(), writer.get_extra_info("sockname")]
    writer.close()
    got: asyncio.Future[Any] = loop.create_future()

    class Reply(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            got.set_result((data, addr))

    udp, _ = await loop.create_datagram_endpoint(
        Reply, remote_addr=(info[4][0], 9000), family=socket.AF_INET6
    )
    udp.sendto(b"datagram")
    out.append(await got)
    udp.close()
    return out


def test_ipv6_loopback_addresses_in_a_simulation() -> None:
    s = sim.Simulation(seed=1)
    s.host("web", server)
    s.host("client", client)
    res = s.run()
    web, me = "::ffff:127.1.0.1", "::ffff:127.1.0.2"
    assert res.results["client"] == [
        (web, 7000, 0, 0),
        b"OVER V6\n",
        (me, 49152, 0, 0),
        b"OVER V4\n",
        ("127.1.0.2", 49153),
        (b"DATAGRAM", (web, 9000, 0, 0)),
    ]
    assert res.results["web"] == [
        (me, 49152, 0, 0),
        (me, 49153, 0, 0),  # an IPv4 peer, as an IPv6 socket sees it
        (me, 49154, 0, 0),
        (web, 49152, 0, 0),  # the server's own connection to ::1
        b"SELF\n",
    ]
