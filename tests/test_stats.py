"""loop.stats() (tidal only: asyncio's loop has nothing like it to compare with)."""

from __future__ import annotations

import asyncio
import socket
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
