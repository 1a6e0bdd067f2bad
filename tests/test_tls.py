"""TLS (create_connection/create_server/start_tls with ``ssl=``), on asyncio's loop and on tidal's.

Certificates are made at test time with trustme (a throwaway CA, a server
certificate for ``localhost`` and ``127.0.0.1``).  Peers are real: both ends
on the loop under test; a blocking ``ssl`` socket in a thread; ``openssl
s_server`` / ``s_client`` subprocesses; aiohttp's https client against an
aiohttp.web server.  Every test runs on both loops, so what is asserted about
callbacks, their order, exceptions and messages is what asyncio does.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import io
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import pytest

trustme = pytest.importorskip("trustme")

TLS_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
OPENSSL = shutil.which("openssl")
# Default TLS write-buffer limits (asyncio's): (low, high).
DEFAULT_WRITE_LIMITS = (128 * 1024, 512 * 1024)


# ----------------------------------------------------------------------
# Certificates and contexts
# ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> Any:
    return trustme.CA()


@pytest.fixture(scope="module")
def cert(ca: Any) -> Any:
    return ca.issue_cert("localhost", "127.0.0.1")


@pytest.fixture(scope="module")
def pem_dir(ca: Any, cert: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """ca.pem and server.pem (key + chain) on disk, for openssl and SSL_CERT_FILE."""
    path = tmp_path_factory.mktemp("pem")
    ca.cert_pem.write_to_path(str(path / "ca.pem"))
    cert.private_key_and_cert_chain_pem.write_to_path(str(path / "server.pem"))
    return path


def server_ctx(cert: Any, version: str | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = TLS_VERSIONS[version]
    return ctx


def client_ctx(ca: Any, version: str | None = None) -> ssl.SSLContext:
    # Trusting the throwaway CA only: given cadata, create_default_context
    # does not load the system's CA store (about 50 ms of CPU per context).
    ctx = ssl.create_default_context(cadata=ca.cert_pem.bytes().decode("ascii"))
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = TLS_VERSIONS[version]
    return ctx


# ----------------------------------------------------------------------
# Protocols and helpers
# ----------------------------------------------------------------------


class Recorder(asyncio.Protocol):
    """Records callbacks in order ('data' once per run of data_received calls)."""

    def __init__(self, echo: bool = False) -> None:
        loop = asyncio.get_running_loop()
        self.events: list[Any] = []
        self.data = bytearray()
        self.transport: Any = None
        self.echo = echo
        self.made = loop.create_future()
        self.lost = loop.create_future()
        self.got_eof = loop.create_future()
        self.paused = 0
        self.resumed = 0
        self.resume_waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: Any) -> None:
        self.events.append("made")
        self.transport = transport
        self.made.set_result(None)

    def data_received(self, data: bytes) -> None:
        assert isinstance(data, bytes)
        if not self.events or self.events[-1] != "data":
            self.events.append("data")
        self.data += data
        if self.echo:
            self.transport.write(data)

    def eof_received(self) -> None:
        self.events.append("eof")
        self.got_eof.set_result(None)

    def pause_writing(self) -> None:
        self.paused += 1

    def resume_writing(self) -> None:
        self.resumed += 1
        if self.resume_waiter is not None and not self.resume_waiter.done():
            self.resume_waiter.set_result(None)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.events.append(("lost", None if exc is None else type(exc).__name__))
        self.lost.set_result(exc)


async def wait_for_data(proto: Recorder, n: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while len(proto.data) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"got {len(proto.data)} of {n} bytes")
        await asyncio.sleep(0.005)


async def tls_server(
    loop: asyncio.AbstractEventLoop,
    cert: Any,
    factory: Callable[[], Any],
    version: str | None = None,
    **kw: Any,
) -> tuple[Any, int]:
    srv = await loop.create_server(factory, "127.0.0.1", 0, ssl=server_ctx(cert, version), **kw)
    return srv, srv.sockets[0].getsockname()[1]


async def close_server(srv: Any) -> None:
    srv.close()
    await srv.wait_closed()


def listening_socket() -> socket.socket:
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(5)
    lsock.settimeout(15)
    return lsock


def in_thread(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> Any:
    """Run a blocking peer in a thread; await the result to get its return value or error."""
    return loop.run_in_executor(None, fn, *args)


def recv_until_eof(sock: Any) -> bytes:
    buf = bytearray()
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return bytes(buf)
        buf += chunk


# ----------------------------------------------------------------------
# Echo, extra info, versions
# ----------------------------------------------------------------------


@pytest.mark.parametrize("version", list(TLS_VERSIONS))
def test_echo_and_extra_info(loop: Any, arun: Any, ca: Any, cert: Any, version: str) -> None:
    async def main() -> None:
        server_protos: list[Recorder] = []

        def factory() -> Recorder:
            server_protos.append(Recorder(echo=True))
            return server_protos[-1]

        srv, port = await tls_server(loop, cert, factory)
        cctx = client_ctx(ca, version)
        tr, pr = await loop.create_connection(
            Recorder, "127.0.0.1", port, ssl=cctx, server_hostname="localhost"
        )
        assert pr.events == ["made"]  # connection_made before create_connection returns
        assert "ssl" in type(tr).__name__.lower()
        assert isinstance(tr, asyncio.Transport)
        sslobj = tr.get_extra_info("ssl_object")
        assert sslobj.version() == version
        assert tr.get_extra_info("sslcontext") is cctx
        assert tr.get_extra_info("cipher") == sslobj.cipher()
        assert tr.get_extra_info("cipher")[1] == version
        assert tr.get_extra_info("compression") is None
        peercert = tr.get_extra_info("peercert")
        assert peercert == sslobj.getpeercert()
        assert ("DNS", "localhost") in peercert["subjectAltName"]
        assert tr.get_extra_info("peername") == ("127.0.0.1", port)
        assert tr.get_extra_info("sockname")[0] == "127.0.0.1"
        assert tr.get_extra_info("socket").getpeername() == ("127.0.0.1", port)
        assert tr.get_extra_info("nonexistent", "dflt") == "dflt"
        assert tr.get_protocol() is pr
        assert tr.is_reading() and not tr.is_closing()
        assert not tr.can_write_eof()
        with pytest.raises(NotImplementedError):
            tr.write_eof()

        tr.write(b"hello ")
        tr.writelines([b"tls ", bytearray(b"wor"), memoryview(b"ld")])
        await wait_for_data(pr, 15)
        assert bytes(pr.data) == b"hello tls world"
        sp = server_protos[0]
        assert sp.transport.get_extra_info("ssl_object").version() == version
        assert sp.transport.get_extra_info("peercert") is None  # no client cert asked
        assert sp.transport.get_extra_info("peername") == tr.get_extra_info("sockname")

        tr.close()
        assert tr.is_closing()
        assert await pr.lost is None
        assert await sp.lost is None
        # close_notify both ways: each side saw eof_received (asyncio calls it
        # on the closing side too, when the peer's close_notify arrives).
        assert pr.events == ["made", "data", "eof", ("lost", None)]
        assert sp.events == ["made", "data", "eof", ("lost", None)]
        await close_server(srv)

    arun(main())


def test_many_concurrent_clients(loop: Any, arun: Any, ca: Any, cert: Any) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.readline()
        writer.write(data.upper())
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def one(port: int, i: int) -> bytes:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_ctx(ca), server_hostname="localhost"
        )
        writer.write(b"client %d\n" % i)
        line = await reader.readline()
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
        return line

    async def main() -> None:
        srv = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx(cert))
        port = srv.sockets[0].getsockname()[1]
        lines = await asyncio.gather(*(one(port, i) for i in range(40)))
        assert lines == [b"CLIENT %d\n" % i for i in range(40)]
        await close_server(srv)

    arun(main())


def test_unix_sockets(loop: Any, arun: Any, ca: Any, cert: Any) -> None:
    async def main() -> None:
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "tls.sock")
            sp: list[Recorder] = []
            srv = await loop.create_unix_server(
                lambda: sp.append(Recorder(echo=True)) or sp[-1], path, ssl=server_ctx(cert)
            )
            tr, pr = await loop.create_unix_connection(
                Recorder, path, ssl=client_ctx(ca), server_hostname="localhost"
            )
            assert tr.get_extra_info("ssl_object") is not None
            assert tr.get_extra_info("peername") == path
            tr.write(b"over unix")
            await wait_for_data(pr, 9)
            assert bytes(pr.data) == b"over unix"
            tr.close()
            await pr.lost
            await close_server(srv)

    arun(main())


def test_connect_accepted_socket(loop: Any, arun: Any, ca: Any, cert: Any) -> None:
    async def main() -> None:
        lsock = listening_socket()
        lsock.setblocking(False)
        client = loop.create_task(
            loop.create_connection(
                Recorder,
                *lsock.getsockname(),
                ssl=client_ctx(ca),
                server_hostname="localhost",
            )
        )
        conn, _ = await loop.sock_accept(lsock)
        tr, pr = await loop.connect_accepted_socket(
            lambda: Recorder(echo=True), conn, ssl=server_ctx(cert)
        )
        assert tr.get_extra_info("ssl_object").server_side
        ctr, cpr = await client
        ctr.write(b"accepted")
        await wait_for_data(cpr, 8)
        ctr.close()
        await cpr.lost
        await pr.lost
        lsock.close()

    arun(main())


def test_streams_and_writer_start_tls(loop: Any, arun: Any, ca: Any, cert: Any) -> None:
    """StreamWriter.start_tls on both ends, then data right after the handshake."""

    async def main() -> None:
        done = loop.create_future()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            assert await reader.readline() == b"STARTTLS\n"
            writer.write(b"GO\n")
            await writer.drain()
            await writer.start_tls(server_ctx(cert))
            assert writer.get_extra_info("ssl_object").server_side
            writer.write(b"secret from server\n")  # sent at once, after the handshake
            line = await reader.readline()
            writer.write(line.upper())
            await writer.drain()
            writer.close()
            await writer.wait_closed()
            done.set_result(None)

        srv = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert writer.get_extra_info("sslcontext") is None
        writer.write(b"STARTTLS\n")
        assert await reader.readline() == b"GO\n"
        await writer.start_tls(client_ctx(ca), server_hostname="localhost")
        assert writer.get_extra_info("sslcontext") is not None
        assert await reader.readline() == b"secret from server\n"
        writer.write(b"ping\n")
        assert await reader.readline() == b"PING\n"
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
        await done
        await close_server(srv)

    arun(main())


# ----------------------------------------------------------------------
# Arguments: asyncio's errors and messages
# ----------------------------------------------------------------------


def test_argument_errors(loop: Any, arun: Any, ca: Any, cert: Any) -> None:
    async def main() -> None:
        cctx = client_ctx(ca)
        with pytest.raises(ValueError, match="^server_hostname is only meaningful with ssl$"):
            await loop.create_connection(Recorder, "127.0.0.1", 1, server_hostname="x")
        with pytest.raises(ValueError, match="^ssl_handshake_timeout is only meaningful with ssl$"):
            await loop.create_connection(Recorder, "127.0.0.1", 1, ssl_handshake_timeout=1)
        with pytest.raises(ValueError, match="^ssl_shutdown_timeout is only meaningful with ssl$"):
            await loop.create_connection(Recorder, "127.0.0.1", 1, ssl_shutdown_timeout=1)
        a, b = socket.socketpair()
        with a, b:
            with pytest.raises(
                ValueError, match="^You must set server_hostname when using ssl without a host$"
            ):
                await loop.create_connection(Recorder, sock=a, ssl=cctx)
            # The timeouts must be positive (checked with a socket we own:
            # asyncio finds out after connecting).
            for bad in (0, -1):
                with pytest.raises(
                    ValueError,
                    match=f"^ssl_handshake_timeout should be a positive number, got {bad}$",
                ):
                    await loop.create_connection(
                        Recorder, sock=a, ssl=cctx, server_hostname="", ssl_handshake_timeout=bad
                    )
                with pytest.raises(
                    ValueError,
                    match=f"^ssl_shutdown_timeout should be a positive number, got {bad}$",
                ):
                    await loop.create_connection(
                        Recorder, sock=a, ssl=cctx, server_hostname="", ssl_shutdown_timeout=bad
                    )
            # A server needs a real context.
            with pytest.raises(ValueError, match="^Server side SSL needs a valid SSLContext$"):
                await loop.connect_accepted_socket(Recorder, b, ssl=True)
        with pytest.raises(ValueError, match="^you have to pass server_hostname when using ssl$"):
            await loop.create_unix_connection(Recorder, "/nonexistent", ssl=cctx)
        with pytest.raises(TypeError, match="^ssl argument must be an SSLContext or None$"):
            await loop.create_server(Recorder, "127.0.0.1", 0, ssl=True)
        with pytest.raises(ValueError, match="^ssl_handshake_timeout is only meaningful with ssl$"):
            await loop.create_server(Recorder, "127.0.0.1", 0, ssl_handshake_timeout=1)
        with pytest.raises(TypeError, match="SSLContext, got None"):
            await loop.start_tls(None, None, None)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="is not supported by start_tls"):
            await loop.start_tls(None, None, cctx)  # type: ignore[arg-type]

    arun(main())


def test_ssl_true_uses_default_context(
    loop: Any, arun: Any, cert: Any, pem_dir: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ssl=True: ssl.create_default_context() (here trusting our CA through SSL_CERT_FILE)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(pem_dir / "ca.pem"))

    async def main() -> None:
        srv, port = await tls_server(loop, cert, lambda: Recorder(echo=True))
        tr, pr = await loop.create_connection(Recorder, "127.0.0.1", port, ssl=True)
        ctx = tr.get_extra_info("sslcontext")
        assert isinstance(ctx, ssl.SSLContext) and ctx.check_hostname
        assert tr.get_extra_info("peercert") is not None  # verified against 127.0.0.1
        tr.close()
        await pr.lost
        # server_hostname='' turns the host name check off, nothing else.
        tr, pr = await loop.create_connection(
            Recorder, "127.0.0.1", port, ssl=True, server_hostname=""
        )
        assert not tr.get_extra_info("sslcontext").check_hostname
        tr.close()
        await pr.lost
        await close_server(srv)

    arun(main())


# ----------------------------------------------------------------------
# Handshake failures
# ----------------------------------------------------------------------


def test_certificate_verify_failed(loop: Any, arun: Any, loop_errors: list, cert: Any) -> None:
    async def main() -> None:
        server_protos: list[Recorder] = []
        srv, port = await tls_server(
            loop, cert, lambda: server_protos.append(Recorder()) or server_protos[-1]
        )
        made = []
        with pytest.raises(ssl.SSLCertVerificationError) as info:
            # The default context does not trust the throwaway CA.
            await loop.create_connection(
                lambda: made.append(1) or Recorder(),
                "127.0.0.1",
                port,
                ssl=ssl.create_default_context(),
            )
        exc = info.value
        assert exc.reason == "CERTIFICATE_VERIFY_FAILED"
        assert exc.verify_message == "unable to get local issuer certificate"
        assert str(exc).startswith(
            "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
            "unable to get local issuer certificate"
        )
        assert made == [1]  # the protocol was made, but never connected
        await asyncio.sleep(0.1)
        # The server's protocol never heard of it either.
        assert all(p.events == [] for p in server_protos)
        await close_server(srv)

    arun(main())
    assert loop_errors == []


def test_hostname_mismatch(loop: Any, arun: Any, ca: Any, cert: Any) -> None:
    async def main() -> None:
        srv, port = await tls_server(loop, cert, Recorder)
        with pytest.raises(ssl.SSLCertVerificationError) as info:
            await loop.create_connection(
                Recorder, "127.0.0.1", port, ssl=client_ctx(ca), server_hostname="example.com"
            )
        assert info.value.verify_message == (
            "Hostname mismatch, certificate is not valid for 'example.com'."
        )
        # The loop and the server carry on.
        tr, pr = await loop.create_connection(
            Recorder, "127.0.0.1", port, ssl=client_ctx(ca), server_hostname="localhost"
        )
        tr.close()
        await pr.lost
        await close_server(srv)

    arun(main())


def test_server_reports_failed_handshake_in_debug_mode(
    loop: Any, arun: Any, loop_errors: list, cert: Any
) -> None:
    loop.set_debug(True)

    async def main() -> None:
        srv, port = await tls_server(loop, cert, Recorder)
        with pytest.raises(ssl.SSLCertVerificationError):
            await loop.create_connection(
                Recorder, "127.0.0.1", port, ssl=ssl.create_default_context()
            )
        for _ in range(100):
            if loop_errors:
                break
            await asyncio.sleep(0.01)
        await close_server(srv)

    arun(main())
    assert [ctx["message"] for ctx in loop_errors] == [
        "Error on transport creation for incoming connection"
    ]
    assert isinstance(loop_errors[0]["exception"], ConnectionResetError)
    assert isinstance(loop_errors[0]["protocol"], Recorder)
    loop_errors.clear()


def test_peer_drops_mid_handshake(
    loop: Any, arun: Any, loop_errors: list, ca: Any, cert: Any
) -> None:
    """The server reads the ClientHello and hangs up: create_connection raises, nothing else."""

    def drop(lsock: socket.socket) -> None:
        conn, _ = lsock.accept()
        with conn:
            conn.recv(10)  # part of the ClientHello

    async def main() -> None:
        lsock = listening_socket()
        with lsock:
            peer = in_thread(loop, drop, lsock)
            made = []
            with pytest.raises(ConnectionResetError):
                await loop.create_connection(
                    lambda: made.append(1) or Recorder(),
                    *lsock.getsockname(),
                    ssl=client_ctx(ca),
                    server_hostname="localhost",
                )
            await peer
            assert made == [1]
        # The loop is fine: a real TLS connection works afterwards.
        srv, port = await tls_server(loop, cert, lambda: Recorder(echo=True))
        tr, pr = await loop.create_connection(
            Recorder, "127.0.0.1", port, ssl=client_ctx(ca), server_hostname="localhost"
        )
        tr.write(b"still fine")
        await wait_for_data(pr, 10)
        tr.close()
        await pr.lost
        await close_server(srv)

    arun(main())
    assert loop_errors == []


def test_client_drops_mid_handshake(
    loop: Any, arun: Any, loop_errors: list, ca: Any, cert: Any
) -> None:
    """Half a ClientHello then EOF: the server's protocol never hears of it and it serves on."""

    def half_hello(port: int) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        with sock:
            sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
            sock.shutdown(socket.SHUT_WR)
            assert recv_until_eof(sock) == b""

    async def main() -> None:
        protos: list[Recorder] = []
        srv, port = await tls_server(
            loop, cert, lambda: protos.append(Recorder(echo=True)) or protos[-1]
        )
        await in_thread(loop, half_hello, port)
        tr, pr = await loop.create_connection(
            Recorder, "127.0.0.1", port, ssl=client_ctx(ca), server_hostname="localhost"
        )
        tr.write(b"after")
        await wait_for_data(pr, 5)
        tr.close()
        await pr.lost
        await protos[1].lost
        assert protos[0].events == []
        await close_server(srv)

    arun(main())
    assert loop_errors == []


def test_handshake_timeout_silent_server(loop: Any, arun: Any, loop_errors: list, ca: Any) -> None:
    async def main() -> None:
        lsock = listening_socket()  # accepts in the kernel backlog, never answers
        with lsock:
            t0 = time.monotonic()
            with pytest.raises(ConnectionAbortedError) as info:
                await loop.create_connection(
                    Recorder,
                    *lsock.getsockname(),
                    ssl=client_ctx(ca),
                    server_hostname="localhost",
                    ssl_handshake_timeout=0.3,
                )
            assert 0.25 < time.monotonic() - t0 < 10
            assert str(info.value) == (
                "SSL handshake is taking longer than 0.3 seconds: aborting the connection"
            )

    arun(main())
    assert loop_errors == []


def test_handshake_timeout_silent_client(
    loop: Any, arun: Any, loop_errors: list, cert: Any
) -> None:
    def silent(port: int) -> float:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        with sock:
            t0 = time.monotonic()
            assert recv_until_eof(sock) == b""  # the server gave up and closed
            return time.monotonic() - t0

    async def main() -> None:
        protos: list[Recorder] = []
        srv, port = await tls_server(
            loop, cert, lambda: protos.append(Recorder()) or protos[-1], ssl_handshake_timeout=0.3
        )
        waited = await in_thread(loop, silent, port)
        assert 0.2 < waited < 10
        assert protos[0].events == []
        await close_server(srv)

    arun(main())
    assert loop_errors == []


def test_handshake_cancelled(loop: Any, arun: Any, loop_errors: list, ca: Any) -> None:
    """wait_for cancels a pending handshake: no error logged, the socket is closed."""

    def hold(lsock: socket.socket) -> bytes:
        conn, _ = lsock.accept()
        with conn:
            return recv_until_eof(conn)  # the ClientHello, then EOF when the client gives up

    async def main() -> None:
        lsock = listening_socket()
        with lsock:
            peer = in_thread(loop, hold, lsock)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(
                    loop.create_connection(
                        Recorder,
                        *lsock.getsockname(),
                        ssl=client_ctx(ca),
                        server_hostname="localhost",
                    ),
                    0.2,
                )
            hello = await peer
            assert hello[:1] == b"\x16"  # a TLS handshake record

    arun(main())
    assert loop_errors == []


# ----------------------------------------------------------------------
# Peers in a thread (blocking ssl sockets)
# ----------------------------------------------------------------------


def test_close_notify_sent_on_close(loop: Any, arun: Any, ca: Any, cert: Any) -> None:
    """A strict peer (suppress_ragged_eofs=False) sees a clean TLS close, not a ragged EOF."""

    def client(port: int) -> bytes:
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        with client_ctx(ca).wrap_socket(
            raw, server_hostname="localhost", suppress_ragged_eofs=False
        ) as sock:
            sock.sendall(b"bye")
            return recv_until_eof(sock)  # raises SSLEOFError without close_notify

    async def main() -> None:
        class SayAndClose(Recorder):
            def data_received(self, data: bytes) -> None:
                super().data_received(data)
                self.transport.write(b"goodbye")
                self.transport.close()

        protos: list[Recorder] = []
        srv, port = await tls_server(loop, cert, lambda: protos.append(SayAndClose()) or protos[-1])
        assert await in_thread(loop, client, port) == b"goodbye"
        assert await protos[0].lost is None
        await close_server(srv)

    arun(main())


@pytest.mark.parametrize("version", list(TLS_VERSIONS))
def test_close_notify_received_calls_eof_received(
    loop: Any, arun: Any, ca: Any, cert: Any, version: str
) -> None:
    def server(lsock: socket.socket) -> bytes:
        conn, _ = lsock.accept()
        with server_ctx(cert, version).wrap_socket(conn, server_side=True) as sock:
            sock.sendall(b"data then close_notify")
            got = sock.recv(100)
            sock.unwrap()  # sends close_notify, waits for the client's
            return got

    async def main() -> None:
        lsock = listening_socket()
        with lsock:
            peer = in_thread(loop, server, lsock)
            tr, pr = await loop.create_connection(
                Recorder, *lsock.getsockname(), ssl=client_ctx(ca), server_hostname="localhost"
            )
            await wait_for_data(pr, 22)
            tr.write(b"ack")
            assert await peer == b"ack"
            assert await pr.lost is None
            assert pr.events == ["made", "data", "eof", ("lost", None)]
            assert bytes(pr.data) == b"data then close_notify"
            assert tr.is_closing()

    arun(main())


def test_tcp_eof_without_close_notify(loop: Any, arun: Any, ca: Any, cert: Any) -> None:
    """The peer shuts TCP down without close_notify: eof_received, then connection_lost(None)."""

    def server(lsock: socket.socket) -> None:
        conn, _ = lsock.accept()
        sock = server_ctx(cert).wrap_socket(conn, server_side=True)
        sock.sendall(b"x")
        sock.shutdown(socket.SHUT_WR)  # shuts the TCP socket, no close_notify
        recv_until_eof(sock)
        sock.close()

    async def main() -> None:
        lsock = listening_socket()
        with lsock:
            peer = in_thread(loop, server, lsock)
            _, pr = await loop.create_connection(
                Recorder, *lsock.getsockname(), ssl=client_ctx(ca), server_hostname="localhost"
            )
            assert await pr.lost is None
            assert pr.events == ["made", "data", "eof", ("lost", None)]
            await peer

    arun(main())


def _recv_line(sock: socket.socket) -> bytes:
    """Read one line byte by byte: nothing after it is consumed."""
    line = bytearray()
    while not line.endswith(b"\n"):
        byte = sock.recv(1)
        if not byte:
            break
        line += byte
    return bytes(line)


@pytest.mark.parametrize("version", list(TLS_VERSIONS))
def test_start_tls_bytes_in_flight(loop: Any, arun: Any, ca: Any, cert: Any, version: str) -> None:
    """Plaintext, then TLS: the peer's data sent right behind its handshake is not lost,
    start_tls pauses the old reading at once, and the old protocol never sees a TLS record."""

    def server(lsock: socket.socket) -> bytes:
        conn, _ = lsock.accept()
        conn.settimeout(10)
        assert _recv_line(conn) == b"STARTTLS\n"
        conn.sendall(b"OK\n")
        with server_ctx(cert, version).wrap_socket(conn, server_side=True) as sock:
            # Right behind the handshake's last flight.
            sock.sendall(b"first words")
            got = sock.recv(100)
            sock.sendall(got[::-1])
            sock.unwrap()
            return got

    class Plain(Recorder):
        def data_received(self, data: bytes) -> None:
            assert not data.startswith(b"\x16")  # never a TLS record
            super().data_received(data)

    async def main() -> None:
        lsock = listening_socket()
        with lsock:
            peer = in_thread(loop, server, lsock)
            tr, pr = await loop.create_connection(Plain, *lsock.getsockname())
            tr.write(b"STARTTLS\n")
            await wait_for_data(pr, 3)
            assert bytes(pr.data) == b"OK\n"
            pr.data.clear()
            upgrade = loop.create_task(
                loop.start_tls(tr, pr, client_ctx(ca), server_hostname="localhost")
            )
            await asyncio.sleep(0)
            assert not tr.is_reading()  # paused by start_tls's first step
            new_tr = await upgrade
            assert new_tr is not tr and new_tr.get_protocol() is pr
            assert new_tr.get_extra_info("ssl_object").version() == version
            await wait_for_data(pr, 11)
            assert bytes(pr.data) == b"first words"
            new_tr.write(b"olleh")
            await wait_for_data(pr, 16)
            assert bytes(pr.data) == b"first wordshello"
            assert await peer == b"olleh"
            assert await pr.lost is None
            # start_tls never calls connection_made again.
            assert pr.events == ["made", "data", "eof", ("lost", None)]

    arun(main())


def test_start_tls_server_side(loop: Any, arun: Any, ca: Any, cert: Any) -> None:
    """The server upgrades from data_received; its old protocol sees only the plaintext."""

    def client(port: int) -> bytes:
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        raw.sendall(b"STARTTLS\n")
        assert _recv_line(raw) == b"OK\n"
        with client_ctx(ca).wrap_socket(raw, server_hostname="localhost") as sock:
            sock.sendall(b"over tls")
            return recv_until_eof(sock)

    async def main() -> None:
        upgraded = loop.create_future()

        class Server(Recorder):
            def data_received(self, data: bytes) -> None:
                assert not data.startswith(b"\x16")  # never a TLS record
                super().data_received(data)
                if bytes(self.data) == b"STARTTLS\n" and not upgraded.done():
                    self.transport.write(b"OK\n")
                    upgraded.set_result(
                        loop.create_task(
                            loop.start_tls(self.transport, self, server_ctx(cert), server_side=True)
                        )
                    )

        protos: list[Server] = []
        srv = await loop.create_server(
            lambda: protos.append(Server()) or protos[-1], "127.0.0.1", 0
        )
        port = srv.sockets[0].getsockname()[1]
        peer = in_thread(loop, client, port)
        new_tr = await (await upgraded)
        p = protos[0]
        await wait_for_data(p, 17)
        assert bytes(p.data) == b"STARTTLS\nover tls"
        new_tr.write(b"reply")
        new_tr.close()
        assert await peer == b"reply"
        await p.lost
        await close_server(srv)

    arun(main())


def test_shutdown_timeout(loop: Any, arun: Any, ca: Any, cert: Any) -> None:
    """The peer never answers close_notify: connection_lost(TimeoutError) after the timeout."""
    release = threading.Event()

    def server(lsock: socket.socket) -> None:
        conn, _ = lsock.accept()
        with server_ctx(cert).wrap_socket(conn, server_side=True) as sock:
            sock.sendall(b"hi")
            release.wait(10)  # neither reads nor closes meanwhile

    async def main() -> None:
        lsock = listening_socket()
        with lsock:
            peer = in_thread(loop, server, lsock)
            tr, pr = await loop.create_connection(
                Recorder,
                *lsock.getsockname(),
                ssl=client_ctx(ca),
                server_hostname="localhost",
                ssl_shutdown_timeout=0.3,
            )
            await wait_for_data(pr, 2)
            t0 = time.monotonic()
            tr.close()
            exc = await pr.lost
            release.set()
            assert 0.25 < time.monotonic() - t0 < 10
            assert type(exc) is TimeoutError and str(exc) == "SSL shutdown timed out"
            assert pr.events == ["made", "data", ("lost", "TimeoutError")]
            await peer

    arun(main())


# ----------------------------------------------------------------------
# Flow control, big transfers, buffered protocols
# ----------------------------------------------------------------------


def test_write_flow_control_through_tls(loop: Any, arun: Any, ca: Any, cert: Any) -> None:
    """A peer that does not read: the app is paused; once it reads, resumed; nothing lost."""
    start_reading = threading.Event()

    def server(lsock: socket.socket) -> str:
        conn, _ = lsock.accept()
        with server_ctx(cert).wrap_socket(conn, server_side=True) as sock:
            sock.sendall(b"ready")
            start_reading.wait(20)
            h = hashlib.sha256()
            while True:
                chunk = sock.recv(262144)
                if not chunk:
                    return h.hexdigest()
                h.update(chunk)

    async def main() -> None:
        lsock = listening_socket()
        with lsock:
            peer = in_thread(loop, server, lsock)
            tr, pr = await loop.create_connection(
                Recorder, *lsock.getsockname(), ssl=client_ctx(ca), server_hostname="localhost"
            )
            assert tr.get_write_buffer_limits() == DEFAULT_WRITE_LIMITS
            assert tr.get_write_buffer_size() == 0
            with pytest.raises(ValueError, match=r"high \(1\) must be >= low \(2\) must be >= 0"):
                tr.set_write_buffer_limits(high=1, low=2)
            tr.set_write_buffer_limits(high=256 * 1024)
            assert tr.get_write_buffer_limits() == (64 * 1024, 256 * 1024)
            await wait_for_data(pr, 5)
            h = hashlib.sha256()
            chunk = os.urandom(64 * 1024)
            written = 0
            while not pr.paused:
                tr.write(chunk)
                h.update(chunk)
                written += len(chunk)
                assert written < 512 * 1024 * 1024, "never paused"
                await asyncio.sleep(0)
            assert tr.get_write_buffer_size() >= 256 * 1024
            pr.resume_waiter = loop.create_future()
            start_reading.set()
            await pr.resume_waiter
            assert tr.get_write_buffer_size() <= 64 * 1024
            tr.close()
            assert await peer == h.hexdigest()
            await pr.lost
            assert pr.paused == pr.resumed == 1

    arun(main())


def test_ten_megabytes_each_way_slow_reader(loop: Any, arun: Any, ca: Any, cert: Any) -> None:
    size = 10 * 1024 * 1024
    chunk = 256 * 1024
    high = 512 * 1024

    async def pump(writer: asyncio.StreamWriter, data: bytes, sizes: list[int]) -> None:
        for i in range(0, len(data), chunk):
            writer.write(data[i : i + chunk])
            sizes.append(writer.transport.get_write_buffer_size())
            await writer.drain()

    async def slow_read(reader: asyncio.StreamReader, n: int) -> str:
        h = hashlib.sha256()
        got = 0
        next_nap = 0
        while got < n:
            data = await reader.read(65536)
            assert data, f"EOF after {got} bytes"
            h.update(data)
            got += len(data)
            if got >= next_nap:  # a slow consumer: stop for a moment every MiB
                next_nap += 1024 * 1024
                await asyncio.sleep(0.01)
        return h.hexdigest()

    async def main() -> None:
        up = os.urandom(size)
        down = os.urandom(size)
        server_sizes: list[int] = []
        result: asyncio.Future[str] = loop.create_future()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            got, _ = await asyncio.gather(slow_read(reader, size), pump(writer, down, server_sizes))
            result.set_result(got)
            writer.close()
            await writer.wait_closed()

        srv = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx(cert))
        port = srv.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_ctx(ca), server_hostname="localhost"
        )
        client_sizes: list[int] = []
        got_down, _ = await asyncio.gather(slow_read(reader, size), pump(writer, up, client_sizes))
        assert got_down == hashlib.sha256(down).hexdigest()
        assert await result == hashlib.sha256(up).hexdigest()
        # Back-pressure happened, and the TLS buffer stayed bounded.
        for sizes in (client_sizes, server_sizes):
            assert max(sizes) > 0
            assert max(sizes) <= high + chunk + 64 * 1024  # + TLS record overhead
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
        await close_server(srv)

    arun(main(), timeout=120)


@pytest.mark.parametrize("kind", ["memoryview", "bytearray"])
def test_buffered_protocol(
    loop: Any, arun: Any, loop_name: str, ca: Any, cert: Any, kind: str, request: Any
) -> None:
    if loop_name == "asyncio" and kind == "bytearray":
        # asyncio fills buf[offset:] for the second record in one get_buffer:
        # for a bytearray that slice is a copy, and the bytes are lost.
        request.applymarker(pytest.mark.xfail(strict=True, reason="asyncio loses data here"))
    payload = os.urandom(1024 * 1024 + 17)

    class Buffered(asyncio.BufferedProtocol):
        def __init__(self) -> None:
            self.buf: Any = bytearray(1000)  # smaller than a TLS record
            if kind == "memoryview":
                self.buf = memoryview(self.buf)
            self.data = bytearray()
            self.sizes: set[int] = set()
            self.lost = asyncio.get_running_loop().create_future()

        def get_buffer(self, sizehint: int) -> bytearray:
            return self.buf

        def buffer_updated(self, nbytes: int) -> None:
            self.sizes.add(nbytes)
            self.data += self.buf[:nbytes]

        def eof_received(self) -> None:
            pass

        def connection_lost(self, exc: BaseException | None) -> None:
            self.lost.set_result(exc)

    class Sender(Recorder):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            transport.write(payload)
            transport.close()

    async def main() -> None:
        srv, port = await tls_server(loop, cert, Sender)
        tr, pr = await loop.create_connection(
            Buffered, "127.0.0.1", port, ssl=client_ctx(ca), server_hostname="localhost"
        )
        assert await pr.lost is None
        tr.close()
        await close_server(srv)
        got = bytes(pr.data)
        # Not `assert got == payload`: this fails on asyncio by design (strict
        # xfail) and pytest's diff of two large byte strings takes minutes.
        if got != payload:
            pytest.fail(f"received {len(got)} bytes, not the {len(payload)} sent (or different)")
        assert max(pr.sizes) <= 1000

    arun(main())


def test_pause_resume_reading(loop: Any, arun: Any, ca: Any, cert: Any) -> None:
    async def main() -> None:
        protos: list[Recorder] = []
        srv, port = await tls_server(loop, cert, lambda: protos.append(Recorder()) or protos[-1])
        tr, pr = await loop.create_connection(
            Recorder, "127.0.0.1", port, ssl=client_ctx(ca), server_hostname="localhost"
        )
        await protos[0].made
        server_tr = protos[0].transport
        tr.pause_reading()
        assert not tr.is_reading()
        server_tr.write(b"a" * 100_000)
        await asyncio.sleep(0.2)
        assert len(pr.data) == 0
        tr.resume_reading()
        assert tr.is_reading()
        await wait_for_data(pr, 100_000)
        # Paused while the peer closes: eof and connection_lost wait for resume.
        tr.pause_reading()
        server_tr.write(b"b" * 1000)
        server_tr.close()  # close_notify: answered only once the client reads again
        await asyncio.sleep(0.2)
        assert pr.events == ["made", "data"] and len(pr.data) == 100_000
        assert not protos[0].lost.done()
        tr.resume_reading()
        assert await pr.lost is None
        assert await protos[0].lost is None
        assert pr.events == ["made", "data", "eof", ("lost", None)]
        assert bytes(pr.data) == b"a" * 100_000 + b"b" * 1000
        await close_server(srv)

    arun(main())


def test_abort_and_write_after_close(loop: Any, arun: Any, ca: Any, cert: Any) -> None:
    async def main() -> None:
        protos: list[Recorder] = []
        srv, port = await tls_server(
            loop, cert, lambda: protos.append(Recorder(echo=True)) or protos[-1]
        )
        tr, pr = await loop.create_connection(
            Recorder, "127.0.0.1", port, ssl=client_ctx(ca), server_hostname="localhost"
        )
        tr.write(b"ping")  # a round trip: nothing is left unread when we abort
        await wait_for_data(pr, 4)
        tr.abort()
        assert tr.is_closing()
        tr.write(b"dropped")  # no error: the data goes nowhere
        assert await pr.lost is None
        assert pr.events == ["made", "data", ("lost", None)]
        # The server sees TCP EOF without close_notify.
        assert await protos[0].lost is None
        assert protos[0].events == ["made", "data", "eof", ("lost", None)]
        with pytest.raises(TypeError, match="data: expecting a bytes-like instance, got str"):
            tr.write("text")  # type: ignore[arg-type]
        await close_server(srv)

    arun(main())


def test_unclosed_transport_warns(loop: Any, ca: Any, cert: Any) -> None:
    def server(lsock: socket.socket) -> None:
        conn, _ = lsock.accept()
        with server_ctx(cert).wrap_socket(conn, server_side=True) as sock:
            sock.recv(10)  # returns at EOF (ragged) once the client's socket goes

    lsock = listening_socket()
    with lsock:
        in_thread(loop, server, lsock)  # ends when the socket is collected
        tr, pr = loop.run_until_complete(
            loop.create_connection(
                asyncio.Protocol,
                *lsock.getsockname(),
                ssl=client_ctx(ca),
                server_hostname="localhost",
            )
        )
        assert not tr.is_closing()
        del tr, pr
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loop.call_soon(loop.stop)
            loop.run_forever()
            loop.close()
            gc.collect()
            gc.collect()
        # The socket may be finalized first and warn for itself, too.
        messages = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
        assert any(m.startswith("unclosed transport") for m in messages), messages


# ----------------------------------------------------------------------
# openssl and aiohttp as peers
# ----------------------------------------------------------------------


def _s_server(pem_dir: Any, *args: str) -> tuple[subprocess.Popen[bytes], int]:
    proc = subprocess.Popen(
        [OPENSSL, "s_server", "-accept", "127.0.0.1:0", "-cert", str(pem_dir / "server.pem"),
         "-naccept", "1", *args],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    seen = []
    for _ in range(10):  # "Using default temp DH parameters", then "ACCEPT host:port"
        line = proc.stdout.readline().decode()
        seen.append(line)
        m = re.match(r"ACCEPT 127\.0\.0\.1:(\d+)", line)
        if m:
            return proc, int(m.group(1))
    proc.kill()
    _reap(proc)
    pytest.fail(f"unexpected s_server output: {seen!r}")


def _reap(proc: subprocess.Popen[bytes]) -> None:
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


@pytest.mark.skipif(OPENSSL is None, reason="no openssl binary")
@pytest.mark.parametrize("version", list(TLS_VERSIONS))
def test_openssl_s_server_rev(loop: Any, arun: Any, ca: Any, pem_dir: Any, version: str) -> None:
    """s_server -rev answers each line reversed."""
    proc, port = _s_server(pem_dir, "-rev", "-tls1_2" if version == "TLSv1.2" else "-tls1_3")
    try:

        async def main() -> None:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client_ctx(ca), server_hostname="localhost"
            )
            assert writer.get_extra_info("ssl_object").version() == version
            for word in (b"tidal", b"asyncio"):
                writer.write(word + b"\n")
                line = await reader.readline()
                assert line.rstrip(b"\r\n") == word[::-1]
            writer.close()
            await writer.wait_closed()

        arun(main())
    finally:
        _reap(proc)


@pytest.mark.skipif(OPENSSL is None, reason="no openssl binary")
def test_openssl_s_server_www_close_notify(loop: Any, arun: Any, ca: Any, pem_dir: Any) -> None:
    """s_server -www answers a GET and closes with close_notify: the client reads to EOF."""
    proc, port = _s_server(pem_dir, "-www")
    try:

        async def main() -> None:
            tr, pr = await loop.create_connection(
                Recorder, "127.0.0.1", port, ssl=client_ctx(ca), server_hostname="localhost"
            )
            tr.write(b"GET / HTTP/1.0\r\n\r\n")
            assert await pr.lost is None
            assert bytes(pr.data).startswith(b"HTTP/1.0 200 ok")
            assert pr.events == ["made", "data", "eof", ("lost", None)]

        arun(main())
    finally:
        _reap(proc)


@pytest.mark.skipif(OPENSSL is None, reason="no openssl binary")
@pytest.mark.parametrize("version", list(TLS_VERSIONS))
def test_openssl_s_client(loop: Any, arun: Any, cert: Any, pem_dir: Any, version: str) -> None:
    def s_client(port: int) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
             "-CAfile", str(pem_dir / "ca.pem"), "-verify_return_error", "-quiet",
             "-tls1_2" if version == "TLSv1.2" else "-tls1_3"],
            input=b"hello openssl\n", capture_output=True, timeout=30, check=False,
        )  # fmt: skip

    async def main() -> None:
        versions = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            versions.append(writer.get_extra_info("ssl_object").version())
            line = await reader.readline()
            writer.write(line.upper())
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        srv = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx(cert))
        port = srv.sockets[0].getsockname()[1]
        done = await in_thread(loop, s_client, port)
        assert done.returncode == 0, done.stderr
        assert done.stdout == b"HELLO OPENSSL\n"
        assert versions == [version]
        await close_server(srv)

    arun(main())


def test_aiohttp_https(loop: Any, arun: Any, loop_name: str, ca: Any, cert: Any) -> None:
    aiohttp = pytest.importorskip("aiohttp")
    from aiohttp import web

    async def main() -> None:
        transports = []

        async def hello(request: web.Request) -> web.Response:
            transports.append(type(request.transport).__name__)
            body = await request.read()
            return web.Response(text=f"hello {request.match_info['name']} {len(body)}")

        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/hello/{name}", hello)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx(cert))
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with aiohttp.ClientSession() as session:
                for i in range(3):
                    async with session.get(
                        f"https://127.0.0.1:{port}/hello/{i}", ssl=client_ctx(ca)
                    ) as resp:
                        assert resp.status == 200
                        assert await resp.text() == f"hello {i} 0"
                big = os.urandom(3 * 1024 * 1024)
                async with session.post(
                    f"https://127.0.0.1:{port}/hello/big", data=io.BytesIO(big), ssl=client_ctx(ca)
                ) as resp:
                    assert await resp.text() == f"hello big {len(big)}"
        finally:
            await runner.cleanup()
        if loop_name == "tidal":
            assert set(transports) == {"SSLTransport"}

    arun(main())


def test_sendfile_over_tls(loop: Any, arun: Any, ca: Any, cert: Any, tmp_path: Any) -> None:
    """loop.sendfile on a TLS transport takes the read-and-write fallback."""
    payload = os.urandom(3 * 1024 * 1024 + 5)
    path = tmp_path / "payload.bin"
    path.write_bytes(payload)

    async def main() -> None:
        protos: list[Recorder] = []
        srv, port = await tls_server(loop, cert, lambda: protos.append(Recorder()) or protos[-1])
        tr, pr = await loop.create_connection(
            Recorder, "127.0.0.1", port, ssl=client_ctx(ca), server_hostname="localhost"
        )
        with open(path, "rb") as f:  # noqa: ASYNC230 - a local file, opened once
            sent = await loop.sendfile(tr, f, offset=5, count=2 * 1024 * 1024)
            assert sent == 2 * 1024 * 1024
            assert f.tell() == 5 + sent
            with pytest.raises(RuntimeError, match="fallback is disabled and native sendfile"):
                await loop.sendfile(tr, f, fallback=False)
        await wait_for_data(protos[0], sent)
        assert bytes(protos[0].data) == payload[5 : 5 + sent]
        tr.write(b"still usable")
        await wait_for_data(protos[0], sent + 12)
        tr.close()
        await pr.lost
        await close_server(srv)

    arun(main())


def test_read_buffer_limits(loop: Any, arun: Any, ca: Any, cert: Any) -> None:
    async def main() -> None:
        protos: list[Recorder] = []
        srv, port = await tls_server(loop, cert, lambda: protos.append(Recorder()) or protos[-1])
        tr, pr = await loop.create_connection(
            Recorder, "127.0.0.1", port, ssl=client_ctx(ca), server_hostname="localhost"
        )
        assert tr.get_read_buffer_limits() == (64 * 1024, 256 * 1024)
        tr.set_read_buffer_limits(high=32 * 1024)
        assert tr.get_read_buffer_limits() == (8 * 1024, 32 * 1024)
        with pytest.raises(ValueError, match=r"high \(1\) must be >= low \(2\) must be >= 0"):
            tr.set_read_buffer_limits(high=1, low=2)
        await protos[0].made
        tr.pause_reading()
        protos[0].transport.write(b"z" * 1024 * 1024)
        await asyncio.sleep(0.2)
        # Paused: ciphertext waits in the BIO, bounded (the socket stopped
        # being read past the high-water mark).
        assert 0 < tr.get_read_buffer_size() < 1024 * 1024
        assert len(pr.data) == 0
        tr.resume_reading()
        await wait_for_data(pr, 1024 * 1024)
        assert tr.get_read_buffer_size() == 0
        tr.close()
        await pr.lost
        await close_server(srv)

    arun(main())


def test_start_tls_behind_queued_plaintext(loop: Any, arun: Any, ca: Any, cert: Any) -> None:
    """start_tls right after a big plaintext write: the handshake follows the queued bytes."""
    plain = os.urandom(16 * 1024 * 1024)

    def server(lsock: socket.socket) -> tuple[bytes, bytes]:
        conn, _ = lsock.accept()
        conn.settimeout(10)
        time.sleep(0.2)  # let the client's queue fill up first
        buf = bytearray()
        while len(buf) < len(plain):
            chunk = conn.recv(min(262144, len(plain) - len(buf)))
            assert chunk, "EOF inside the plaintext"
            buf += chunk
        with server_ctx(cert).wrap_socket(conn, server_side=True) as sock:
            got = sock.recv(100)
            sock.sendall(b"tls ok")
            sock.unwrap()
        return bytes(buf), got

    async def main() -> None:
        lsock = listening_socket()
        with lsock:
            peer = in_thread(loop, server, lsock)
            tr, pr = await loop.create_connection(Recorder, *lsock.getsockname())
            # Queued but not paused: asyncio's TLS layer asserts if the socket
            # it inherits resumes a pause it never saw.
            tr.set_write_buffer_limits(high=64 * 1024 * 1024)
            tr.write(plain)
            assert tr.get_write_buffer_size() > 0  # still queued when TLS starts
            new_tr = await loop.start_tls(tr, pr, client_ctx(ca), server_hostname="localhost")
            new_tr.write(b"secret")
            await wait_for_data(pr, 6)
            assert bytes(pr.data) == b"tls ok"
            got_plain, got_secret = await peer
            assert got_plain == plain and got_secret == b"secret"
            assert await pr.lost is None

    arun(main())


def test_start_tls_while_writing_is_paused(
    loop: Any, arun: Any, loop_name: str, loop_errors: list, ca: Any, cert: Any, request: Any
) -> None:
    """start_tls while the socket's queue is over its high-water mark: the TLS layer waits."""
    if loop_name == "asyncio":
        request.applymarker(
            pytest.mark.xfail(strict=True, reason="asyncio: 'protocol.resume_writing() failed'")
        )
    plain = os.urandom(16 * 1024 * 1024)

    def server(lsock: socket.socket) -> bytes:
        conn, _ = lsock.accept()
        conn.settimeout(10)
        buf = bytearray()
        while len(buf) < len(plain):
            chunk = conn.recv(min(262144, len(plain) - len(buf)))
            assert chunk, "EOF inside the plaintext"
            buf += chunk
        assert buf == plain
        with server_ctx(cert).wrap_socket(conn, server_side=True) as sock:
            got = sock.recv(100)
            sock.sendall(b"tls ok")
            sock.unwrap()
        return got

    async def main() -> None:
        lsock = listening_socket()
        with lsock:
            peer = in_thread(loop, server, lsock)
            tr, pr = await loop.create_connection(Recorder, *lsock.getsockname())
            tr.write(plain)
            assert pr.paused == 1
            new_tr = await loop.start_tls(tr, pr, client_ctx(ca), server_hostname="localhost")
            new_tr.write(b"secret")
            await wait_for_data(pr, 6)
            assert await peer == b"secret"
            assert await pr.lost is None

    try:
        arun(main())
    finally:
        errors = [ctx["message"] for ctx in loop_errors]
        loop_errors.clear()
    assert errors == []
