"""TLS over the simulated TCP: a real ssl context over the simulated byte stream.

tidal's TLS transport runs over any stream transport (ssl.MemoryBIO), so
``ssl=`` on start_server/open_connection and ``start_tls`` work inside a
simulation unchanged.  The handshake's bytes come from OpenSSL's own random
generator, not from the seed: with RSA keys their sizes do not vary, so the
run replays (the same trace); ECDSA signatures vary in length by a byte or
two from one handshake to the next, and so would the trace.
"""

from __future__ import annotations

import asyncio
import ssl

import pytest

from tidal import sim

trustme = pytest.importorskip("trustme")


@pytest.fixture(scope="module")
def contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    ca = trustme.CA(key_type=trustme.KeyType.RSA)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("web", key_type=trustme.KeyType.RSA).configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


def test_tls_and_start_tls_over_simulated_tcp(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_ctx, client_ctx = contexts

    async def tls_server() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write((await reader.readline()).upper())
            await writer.drain()
            writer.close()

        async with await asyncio.start_server(handle, None, 443, ssl=server_ctx):
            await asyncio.sleep(5)

    async def starttls_server() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            assert await reader.readline() == b"STARTTLS\n"
            writer.write(b"go ahead\n")
            await writer.drain()
            await writer.start_tls(server_ctx)
            writer.write((await reader.readline()).upper())
            await writer.drain()
            writer.close()

        async with await asyncio.start_server(handle, None, 25):
            await asyncio.sleep(5)

    async def client() -> list[object]:
        await asyncio.sleep(0.1)
        reader, writer = await asyncio.open_connection("web", 443, ssl=client_ctx)
        writer.write(b"hello over tls\n")
        out: list[object] = [await reader.readline()]
        out.append(writer.get_extra_info("ssl_object").version())
        writer.close()
        reader, writer = await asyncio.open_connection("mail", 25)
        writer.write(b"STARTTLS\n")
        out.append(await reader.readline())
        await writer.start_tls(client_ctx, server_hostname="web")
        writer.write(b"now encrypted\n")
        out.append(await reader.readline())
        writer.close()
        try:  # a name the certificate does not carry
            await asyncio.open_connection("web", 443, ssl=client_ctx, server_hostname="other")
        except ssl.SSLCertVerificationError as exc:
            out.append(exc.verify_message)
        return out

    def scenario(seed: int) -> sim.Simulation:
        s = sim.Simulation(seed=seed)
        s.host("web", tls_server)
        s.host("mail", starttls_server)
        s.host("client", client)
        return s

    res = sim.check_determinism(scenario, 4)
    assert res.results["client"] == [
        b"HELLO OVER TLS\n",
        "TLSv1.3",
        b"go ahead\n",
        b"NOW ENCRYPTED\n",
        "Hostname mismatch, certificate is not valid for 'other'.",
    ]
