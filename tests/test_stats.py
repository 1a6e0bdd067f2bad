"""loop.stats() (tidal only: asyncio's loop has nothing like it to compare with)."""

from __future__ import annotations

import asyncio
import socket
import sys
import time

import pytest

import tidal
from tidal._stats import LagHistogram


@pytest.fixture
def tloop():
    loop = tidal.new_event_loop()
    yield loop
    loop.close()


def test_turns_are_counted_without_collecting(tloop) -> None:
    before = tloop.stats()
    assert before["collecting"] is False and before["turns"] == 0
    for _ in range(5):
        tloop.run_until_complete(asyncio.sleep(0))
    after = tloop.stats()
    assert after["turns"] >= 5
    assert "lag" not in after  # nothing measured while not collecting
    assert tloop._instruments is None  # and nothing on the hot path


def test_callbacks_task_steps_and_io_events(tloop) -> None:
    tloop.collect_stats()
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)  # its send runs as a loop callback
    got = []

    async def main() -> None:
        for _ in range(3):
            tloop.call_soon(got.append, 1)
        await asyncio.sleep(0)  # one step, then another
        tloop.call_later(0.01, b.send, b"x")
        data = await tloop.sock_recv(a, 1)  # waits: an I/O event wakes it
        got.append(data)

    try:
        tloop.run_until_complete(main())
    finally:
        a.close()
        b.close()
    stats = tloop.stats()
    assert stats["collecting"] is True
    assert stats["task_steps"] >= 3
    assert stats["callbacks"] >= 3  # the three call_soon, the reader, the done callback
    assert stats["io_events"] >= 1
    assert stats["io_waits"] >= 1
    assert 0.0 <= stats["utilisation"] <= 1.0
    assert stats["lag"]["count"] == stats["callbacks"] + stats["task_steps"]


def test_utilisation_tells_busy_from_waiting(tloop) -> None:
    tloop.collect_stats()
    tloop.run_until_complete(asyncio.sleep(0.3))
    idle = tloop.stats()["utilisation"]
    tloop.collect_stats()  # again: from zero

    async def busy() -> None:
        for _ in range(6):
            time.sleep(0.05)  # the loop runs, it does not wait
            await asyncio.sleep(0)

    tloop.run_until_complete(busy())
    stats = tloop.stats()
    assert idle < 0.5, idle
    assert stats["utilisation"] > 0.8, stats
    assert stats["busy_seconds"] >= 0.25


@pytest.mark.usefixtures("blocking_on_purpose")
def test_lag_measures_the_wait_behind_a_slow_callback(tloop) -> None:
    tloop.collect_stats()

    async def main() -> None:
        tloop.call_soon(time.sleep, 0.1)  # holds up what is queued behind it
        tloop.call_soon(lambda: None)
        await asyncio.sleep(0)

    tloop.run_until_complete(main())
    lag = tloop.stats()["lag"]
    assert lag["max"] >= 0.09, lag
    assert lag["p50"] <= lag["p90"] <= lag["p99"] <= lag["max"]


def test_a_timer_lag_counts_from_its_due_time(tloop) -> None:
    tloop.collect_stats()

    async def main() -> None:
        fired = tloop.create_future()
        tloop.call_later(0.01, fired.set_result, None)
        time.sleep(0.12)  # the timer is due long before the loop gets to it
        await fired

    tloop.run_until_complete(main())
    assert tloop.stats()["lag"]["max"] >= 0.1


def test_transports_open_by_kind(tloop, tmp_path) -> None:
    accepted: list[asyncio.StreamWriter] = []

    def keep(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    async def main() -> dict[str, int]:
        server = await asyncio.start_server(keep, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _, w1 = await asyncio.open_connection("127.0.0.1", port)
        path = str(tmp_path / "s")
        userver = await asyncio.start_unix_server(keep, path)
        _, w2 = await asyncio.open_unix_connection(path)
        udp, _ = await tloop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
        await asyncio.sleep(0.05)
        counts = tloop.stats()["transports"]
        for w in (w1, w2, *accepted):
            w.close()
            await w.wait_closed()
        udp.close()
        server.close()
        userver.close()
        await server.wait_closed()
        await userver.wait_closed()
        return counts

    counts = tloop.run_until_complete(main())
    # The client's side and the server's accepted side of each connection.
    assert counts.get("tcp") == 2, counts
    assert counts.get("unix") == 2, counts
    assert counts.get("udp") == 1, counts


def test_collect_stats_false_takes_the_instrument_off(tloop) -> None:
    tloop.collect_stats()
    assert tloop._instruments is not None
    tloop.collect_stats(False)
    assert tloop._instruments is None
    assert tloop.stats()["collecting"] is False


def test_tidal_stats_environment(monkeypatch: pytest.MonkeyPatch, tloop) -> None:
    monkeypatch.setenv("TIDAL_STATS", "1")
    tloop.run_until_complete(asyncio.sleep(0))
    assert tloop.stats()["collecting"] is True


def test_lag_histogram_percentiles() -> None:
    h = LagHistogram()
    assert h.percentile(50) == 0.0
    for i in range(1, 101):
        h.add(i / 1000)  # 1 ms .. 100 ms
    assert h.max == 0.1
    # Bucket bounds: within 19% above the exact percentile, never above the max.
    for p, exact in ((50, 0.050), (90, 0.090), (99, 0.099)):
        assert exact <= h.percentile(p) <= exact * 1.19 + 1e-9, (p, h.percentile(p))
    h.add(1e9)  # beyond the last bucket: kept in it
    assert h.max == 1e9 and h.percentile(100) == 1e9


# -- bytes read and written ---------------------------------------------------
#
# Both ends of each exchange run on the loop under test, so every byte one
# end writes, the other reads: the loop's totals are twice the traffic.

PAYLOAD = bytes(range(256)) * 1000  # 256,000 bytes: several reads, and writes the kernel splits


async def _echo_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(await reader.readexactly(len(PAYLOAD)))
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def _stream_round_trip(connect, server) -> None:
    reader, writer = await connect()
    writer.write(PAYLOAD[:1000])
    writer.writelines([PAYLOAD[1000:5000], PAYLOAD[5000:]])  # writelines counts too
    assert await reader.readexactly(len(PAYLOAD)) == PAYLOAD
    assert await reader.read() == b""
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()


def test_bytes_over_tcp_and_unix_streams(tloop, tmp_path) -> None:
    async def main() -> None:
        server = await asyncio.start_server(_echo_once, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        await _stream_round_trip(lambda: asyncio.open_connection("127.0.0.1", port), server)
        path = str(tmp_path / "s")
        server = await asyncio.start_unix_server(_echo_once, path)
        await _stream_round_trip(lambda: asyncio.open_unix_connection(path), server)

    assert tloop.stats()["bytes_read"] == tloop.stats()["bytes_written"] == 0
    tloop.run_until_complete(main())
    stats = tloop.stats()
    # Each of the two connections: the payload there and back.
    assert stats["bytes_read"] == stats["bytes_written"] == 2 * 2 * len(PAYLOAD), stats


class _BufferedEcho(asyncio.BufferedProtocol):
    """Echoes into a small buffer of its own (the transport's buffered read path)."""

    def __init__(self) -> None:
        self.buf = bytearray(4096)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def get_buffer(self, sizehint: int) -> bytearray:
        return self.buf

    def buffer_updated(self, nbytes: int) -> None:
        self.transport.write(bytes(self.buf[:nbytes]))  # type: ignore[attr-defined]


def test_bytes_through_a_buffered_protocol(tloop) -> None:
    async def main() -> None:
        server = await tloop.create_server(_BufferedEcho, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(PAYLOAD)
        assert await reader.readexactly(len(PAYLOAD)) == PAYLOAD
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()

    tloop.run_until_complete(main())
    stats = tloop.stats()
    assert stats["bytes_read"] == stats["bytes_written"] == 2 * len(PAYLOAD), stats


def test_bytes_over_tls_count_the_wire(tloop) -> None:
    trustme = pytest.importorskip("trustme")
    import ssl

    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)

    async def main() -> None:
        server = await asyncio.start_server(_echo_once, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        connect = lambda: asyncio.open_connection("127.0.0.1", port, ssl=client_ctx)  # noqa: E731
        await _stream_round_trip(connect, server)

    tloop.run_until_complete(main())
    stats = tloop.stats()
    # Ciphertext: the payload both ways, plus the handshake and record headers.
    assert stats["bytes_read"] == stats["bytes_written"], stats
    assert 2 * len(PAYLOAD) < stats["bytes_read"] < 2 * len(PAYLOAD) * 1.1, stats


def test_bytes_over_udp(tloop) -> None:
    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: object) -> None:
            self.transport.sendto(data, addr)  # type: ignore[attr-defined]

    class Client(asyncio.DatagramProtocol):
        def __init__(self) -> None:
            self.got: asyncio.Queue[bytes] = asyncio.Queue()

        def datagram_received(self, data: bytes, addr: object) -> None:
            self.got.put_nowait(data)

    async def main() -> None:
        server, _ = await tloop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
        client, proto = await tloop.create_datagram_endpoint(
            Client, remote_addr=server.get_extra_info("sockname")
        )
        for size in (1, 100, 1200):
            client.sendto(b"u" * size)
            assert await proto.got.get() == b"u" * size
        client.close()
        server.close()

    tloop.run_until_complete(main())
    stats = tloop.stats()
    assert stats["bytes_read"] == stats["bytes_written"] == 2 * 1301, stats


def test_bytes_through_a_child_s_pipes(tloop) -> None:
    async def main() -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await proc.communicate(PAYLOAD)
        assert out == PAYLOAD

    tloop.run_until_complete(main())
    stats = tloop.stats()
    # Written to the child's stdin, read from its stdout: one pipe each way.
    assert stats["bytes_read"] == stats["bytes_written"] == len(PAYLOAD), stats


def test_bytes_sent_by_sendfile_on_a_transport(tloop, tmp_path) -> None:
    path = tmp_path / "f"
    path.write_bytes(PAYLOAD)
    got = bytearray()

    async def main() -> None:
        done = tloop.create_future()

        class Sink(asyncio.Protocol):
            def data_received(self, data: bytes) -> None:
                got.extend(data)

            def connection_lost(self, exc: BaseException | None) -> None:
                done.set_result(None)

        server = await tloop.create_server(Sink, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport, _ = await tloop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        with open(path, "rb") as f:
            assert await tloop.sendfile(transport, f) == len(PAYLOAD)
        transport.close()
        await done
        server.close()
        await server.wait_closed()

    tloop.run_until_complete(main())
    assert bytes(got) == PAYLOAD
    stats = tloop.stats()
    assert stats["bytes_read"] == stats["bytes_written"] == len(PAYLOAD), stats
