"""tidal.sim.Simulation: several hosts' asyncio code over a simulated network.

The protocol programs here are plain asyncio (streams, servers, datagram
endpoints).  Where a behaviour exists on a real network too (a refused
connection, half-close, flow control, an echo), the same program also runs
on asyncio's own loop over real sockets on 127.0.0.1, and both must give
the same answer; the faults (partitions, crashes, clock skew, lossy links)
exist only in the simulation.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import os
import random
import socket
import subprocess
import sys
import textwrap
import time
from typing import Any, Awaitable, Callable

import pytest

from tidal import sim

# ----------------------------------------------------------------------
# Programs that run the same on a real network and in the simulation.
# Each takes the address its peer listens on (or its own, for a server).


async def echo_server(host: str, port: int, ready: Callable[[int], None]) -> str:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            writer.write(line.upper())
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, host, port)
    ready(server.sockets[0].getsockname()[1])
    async with server:
        await asyncio.sleep(5)
    return "served"


async def echo_client(host: str, port: int, lines: int) -> list[str]:
    reader, writer = await asyncio.open_connection(host, port)
    got = []
    for i in range(lines):
        writer.write(f"line {i}\n".encode())
        got.append((await reader.readline()).decode().strip())
    writer.close()
    await writer.wait_closed()
    return got


async def half_close_server(host: str, port: int, ready: Callable[[int], None]) -> bytes:
    done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read()  # until the client's EOF
        writer.write(b"got %d bytes" % len(data))
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        done.set_result(data)

    server = await asyncio.start_server(handle, host, port)
    ready(server.sockets[0].getsockname()[1])
    async with server:
        return await done


async def half_close_client(host: str, port: int) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"x" * 100_000)
    writer.write_eof()
    reply = await reader.read()
    writer.close()
    await writer.wait_closed()
    return reply


async def flow_control_server(host: str, port: int, ready: Callable[[int], None]) -> int:
    done: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Read nothing for a while: the client must be paused meanwhile.
        await asyncio.sleep(2)
        total = 0
        while chunk := await reader.read(65536):
            total += len(chunk)
        writer.close()
        done.set_result(total)

    server = await asyncio.start_server(handle, host, port)
    ready(server.sockets[0].getsockname()[1])
    async with server:
        return await done


async def flow_control_client(host: str, port: int) -> tuple[bool, int]:
    reader, writer = await asyncio.open_connection(host, port)
    block = b"y" * 65536
    sent = 0
    paused = False
    loop = asyncio.get_running_loop()
    start = loop.time()
    while sent < 8 * 1024 * 1024:
        writer.write(block)
        sent += len(block)
        await writer.drain()
        if loop.time() - start > 1:
            paused = True  # drain waited for the reader: flow control
    writer.close()
    await writer.wait_closed()
    return paused, sent


async def refused_client(host: str, port: int) -> str:
    try:
        await asyncio.open_connection(host, port)
    except ConnectionRefusedError as exc:
        return f"refused {exc.errno}"
    return "connected"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def on_real_network(
    server: Callable[..., Awaitable[Any]] | None, client: Callable[..., Awaitable[Any]], *args: Any
) -> tuple[Any, Any]:
    """Server and client as two tasks of asyncio's own loop, over real sockets."""

    async def main() -> tuple[Any, Any]:
        if server is None:
            return None, await client("127.0.0.1", _free_port(), *args)
        port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        server_task = asyncio.create_task(server("127.0.0.1", 0, port.set_result))
        client_result = await client("127.0.0.1", await port, *args)
        return await server_task, client_result

    return asyncio.run(main())


def in_simulation(
    server: Callable[..., Awaitable[Any]] | None,
    client: Callable[..., Awaitable[Any]],
    *args: Any,
    seed: int = 1,
) -> tuple[Any, Any]:
    s = sim.Simulation(seed=seed)
    if server is not None:
        s.host("server", server, "0.0.0.0", 7000, lambda port: None)

    async def client_main() -> Any:
        await asyncio.sleep(0.01)  # the server listens first
        return await client("server" if server is not None else "127.1.0.9", 7000, *args)

    s.host("client", client_main)
    res = s.run(until=600)
    return res.results.get("server"), res.results["client"]


PROGRAMS = {
    "echo": (echo_server, echo_client, 5),
    "half-close": (half_close_server, half_close_client),
    "flow-control": (flow_control_server, flow_control_client),
    "refused": (None, refused_client),
}


@pytest.mark.parametrize("program", list(PROGRAMS))
def test_same_answers_as_a_real_network(program: str) -> None:
    server, client, *args = PROGRAMS[program]
    real = on_real_network(server, client, *args)
    simulated = in_simulation(server, client, *args)
    if program == "echo":
        # The real server still sleeps out its 5 s: only the client matters.
        real, simulated = real[1], simulated[1]
    assert simulated == real
    if program == "flow-control":
        assert real[1] == (True, 8 * 1024 * 1024)


# ----------------------------------------------------------------------
# The simulation's own behaviour


def test_hosts_addresses_names_and_fds() -> None:
    seen: dict[str, Any] = {}

    async def server() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen["peer"] = writer.get_extra_info("peername")
            writer.close()

        srv = await asyncio.start_server(handle, None, 80)
        seen["listening"] = [s.getsockname() for s in srv.sockets]
        seen["server fd"] = srv.sockets[0].fileno()
        async with srv:
            await asyncio.sleep(1)

    async def client() -> None:
        loop = asyncio.get_running_loop()
        seen["resolved"] = (await loop.getaddrinfo("n0", 80, type=socket.SOCK_STREAM))[0][4]
        seen["name"] = await loop.getnameinfo((s.address("n0"), 80))
        reader, writer = await asyncio.open_connection("n0", 80)
        seen["client sockname"] = writer.get_extra_info("sockname")
        await reader.read()
        writer.close()
        try:
            await loop.getaddrinfo("nowhere.example", 80)
        except socket.gaierror:
            seen["unknown"] = "gaierror"

    s = sim.Simulation(seed=3)
    assert s.host("n0", server) == "127.1.0.1"
    s.host("n1", client)
    assert s.address("n1") == "127.1.0.2"
    res = s.run()
    assert res.results == {"n0": None, "n1": None}
    assert seen["listening"] == [("127.1.0.1", 80)]
    assert seen["resolved"] == ("127.1.0.1", 80)
    assert seen["name"] == ("n0", "80")
    assert seen["client sockname"] == seen["peer"] == ("127.1.0.2", 49152)
    assert seen["unknown"] == "gaierror"
    assert seen["server fd"] >= 1 << 30


def _lines_over_time(
    partition: Callable[[sim.Simulation], None], until: float = 300
) -> sim.SimResult:
    """n1 sends a numbered line every second for 20 s; n0 records when each arrives."""

    async def receiver() -> list[tuple[int, float]]:
        got = []
        done = asyncio.Event()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while line := await reader.readline():
                    got.append((int(line), round(asyncio.get_running_loop().time(), 3)))
            except ConnectionResetError:
                got.append((-1, round(asyncio.get_running_loop().time(), 3)))
            writer.close()
            done.set()

        async with await asyncio.start_server(handle, None, 9):
            await done.wait()
        return got

    async def sender() -> str:
        await asyncio.sleep(0.1)
        reader, writer = await asyncio.open_connection("n0", 9)
        try:
            for i in range(20):
                writer.write(b"%d\n" % i)
                await writer.drain()
                await asyncio.sleep(1)
            writer.write_eof()
            await reader.read()  # the receiver closes when it has read everything
            writer.close()
        except OSError as exc:
            return type(exc).__name__
        return "sent"

    s = sim.Simulation(seed=5, latency=(0.01, 0.01))
    s.host("n0", receiver)
    s.host("n1", sender)
    partition(s)
    return s.run(until=until)


def test_a_partitioned_stream_stalls_then_resumes_in_order() -> None:
    def cut(s: sim.Simulation) -> None:
        s.at(5.05, s.partition, {"n0"}, {"n1"})
        s.at(12.05, s.heal)

    res = _lines_over_time(cut)
    got = res.results["n0"]
    assert [n for n, _ in got] == list(range(20))  # nothing lost, in order
    times = dict(got)
    # Connected at 0.12 s (a round trip of 10 ms each way), then a line a second.
    assert times[4] == 4.13
    # Lines 5..11 were sent during the partition and arrive together after the heal.
    assert {times[n] for n in range(5, 12)} == {12.06}
    assert times[12] == 12.13
    assert res.results["n1"] == "sent"


def test_a_long_partition_times_the_connection_out() -> None:
    def cut(s: sim.Simulation) -> None:
        s.at(5.05, s.partition, {"n0"}, {"n1"})
        s.at(200, s.heal)

    res = _lines_over_time(cut)
    # The sender's data stalls; tcp_timeout (60 s) after the first stalled
    # segment, its socket fails.
    assert res.results["n1"] == "TimeoutError"
    # The receiver saw lines 0..4, then the reset once the link healed.
    assert res.results["n0"] == [
        (0, 0.13),
        (1, 1.13),
        (2, 2.13),
        (3, 3.13),
        (4, 4.13),
        (-1, 200.01),
    ]


def test_one_way_partition_with_udp() -> None:
    async def node(peer: str) -> list[str]:
        loop = asyncio.get_running_loop()
        got: list[str] = []

        class Proto(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                got.append(data.decode())

        transport, _ = await loop.create_datagram_endpoint(Proto, local_addr=("0.0.0.0", 53))
        for i in range(3):
            transport.sendto(f"{i}".encode(), (peer, 53))
            await asyncio.sleep(1)
        transport.close()
        return got

    s = sim.Simulation(seed=1)
    s.host("a", node, "b")
    s.host("b", node, "a")
    s.partition({"a"}, {"b"}, one_way=True)  # a -> b is cut, b -> a works
    res = s.run()
    assert res.results == {"a": ["0", "1", "2"], "b": []}


def _udp_burst(**faults: Any) -> list[int]:
    async def receiver() -> list[int]:
        got: list[int] = []

        class Proto(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                got.append(int(data))

        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            Proto, local_addr=(None, 5000)
        )
        await asyncio.sleep(5)
        transport.close()
        return got

    async def sender() -> None:
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=("rx", 5000)
        )
        for i in range(200):
            transport.sendto(b"%d" % i)
        transport.close()

    s = sim.Simulation(seed=11, **faults)
    s.host("rx", receiver)
    s.host("tx", sender)
    return s.run().results["rx"]  # type: ignore[no-any-return]


def test_udp_faults() -> None:
    assert sorted(_udp_burst()) == list(range(200))  # jitter reorders
    assert _udp_burst(latency=(0.001, 0.001)) == list(range(200))
    # Random latency alone reorders; `reorder` even with a fixed latency.
    assert sorted(_udp_burst(latency=(0.001, 0.001), reorder=0.3)) == list(range(200))
    assert _udp_burst(latency=(0.001, 0.001), reorder=0.3) != list(range(200))
    dropped = _udp_burst(drop=0.25)
    assert 100 < len(dropped) < 190 and len(set(dropped)) == len(dropped)
    duplicated = _udp_burst(duplicate=0.5)
    assert 250 < len(duplicated) < 350 and set(duplicated) == set(range(200))
    assert _udp_burst(drop=1.0) == []


def test_crash_resets_connections_and_restart_runs_main_again() -> None:
    boots: list[float] = []
    cleanups: list[str] = []

    async def server() -> str:
        boots.append(asyncio.get_running_loop().time())

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while line := await reader.readline():
                writer.write(line)
                await writer.drain()
            writer.close()  # (3.12's Server.wait_closed waits for its connections)

        try:
            async with await asyncio.start_server(handle, None, 1234):
                await asyncio.sleep(30)
        finally:
            cleanups.append(f"cleanup at {asyncio.get_running_loop().time()}")
        return f"boot {len(boots)} done"

    async def client() -> list[str]:
        events = []
        for attempt in range(3):
            await asyncio.sleep(3)
            try:
                reader, writer = await asyncio.open_connection("srv", 1234)
                for _ in range(5):
                    writer.write(b"ping\n")
                    assert await reader.readline() == b"ping\n"
                    await asyncio.sleep(1)
                writer.close()
                events.append(f"pinged at {round(asyncio.get_running_loop().time())}")
            except OSError as exc:
                events.append(f"{type(exc).__name__} at {round(asyncio.get_running_loop().time())}")
        return events

    s = sim.Simulation(seed=2, latency=(0.001, 0.001))
    s.host("srv", server)
    s.host("cli", client)
    s.at(5, s.crash, "srv")
    s.at(8.5, s.restart, "srv")
    res = s.run()
    assert boots == [0.0, 8.5]
    assert cleanups == ["cleanup at 5.0", "cleanup at 38.5"]  # the crash cancelled the first boot
    assert res.results["srv"] == "boot 2 done"
    # Reset at the crash; refused while down; served again after the restart.
    assert res.results["cli"] == [
        "ConnectionResetError at 5",
        "ConnectionRefusedError at 8",
        "pinged at 16",
    ]


def test_a_crashed_host_without_restart() -> None:
    async def forever() -> None:
        await asyncio.sleep(1000)

    async def quick() -> int:
        await asyncio.sleep(1)
        return 1

    s = sim.Simulation(seed=0)
    s.host("a", forever)
    s.host("b", quick)
    s.at(2, s.crash, "a")
    res = s.run()
    assert res.time == 2.0
    assert isinstance(res.results["a"], sim.HostCrashed) and res.results["b"] == 1
    # A crash after main returned cancels what the host still runs, and
    # keeps main's result.
    background: list[str] = []

    async def returns_early() -> str:
        async def chatter() -> None:
            try:
                await asyncio.sleep(100)
            except asyncio.CancelledError:
                background.append(f"cancelled at {asyncio.get_running_loop().time()}")
                raise

        asyncio.get_running_loop().create_task(chatter())
        return "returned"

    s = sim.Simulation(seed=0)
    s.host("a", returns_early)
    s.at(3, s.crash, "a")
    res = s.run()
    assert res.results == {"a": "returned"} and background == ["cancelled at 3.0"]


def test_faults_called_from_host_code() -> None:
    async def chaos() -> None:
        await asyncio.sleep(3)
        s.partition("victim")  # from everyone else
        await asyncio.sleep(3)
        s.heal()

    async def victim() -> list[str]:
        got = []

        class Proto(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                got.append(data.decode())

        t, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            Proto, local_addr=(None, 1)
        )
        await asyncio.sleep(10)
        t.close()
        return got

    async def pinger() -> None:
        t, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=("victim", 1)
        )
        for i in range(9):
            await asyncio.sleep(1)
            t.sendto(str(i).encode())
        t.close()

    s = sim.Simulation(seed=0, latency=(0.1, 0.1))
    s.host("chaos", chaos)
    s.host("victim", victim)
    s.host("pinger", pinger)
    res = s.run()
    # Sent at 1..9 s, arriving 0.1 s later: those arriving in [3, 6) are lost.
    assert res.results["victim"] == ["0", "1", "5", "6", "7", "8"]


def test_per_host_clocks() -> None:
    async def observe() -> tuple[float, float, float, float]:
        loop = asyncio.get_running_loop()
        start, wall = loop.time(), time.time()
        await asyncio.sleep(10)  # ten seconds of this host's clock
        async with asyncio.timeout(5):
            await asyncio.sleep(1)
        return (
            round(start, 6),
            round(loop.time(), 6),
            round(wall - 1_704_067_200, 6),
            round(time.monotonic(), 6),
        )

    async def true_time() -> float:
        await asyncio.sleep(20)
        return asyncio.get_running_loop().time()

    s = sim.Simulation(seed=0)
    s.host("skewed", observe)
    s.host("fast", observe)
    s.host("plain", observe)
    s.host("ref", true_time)
    s.clock("skewed", offset=100.0)
    s.clock("fast", drift=0.25)
    res = s.run()
    assert res.results["plain"] == (0.0, 11.0, 0.0, 11.0)
    assert res.results["skewed"] == (100.0, 111.0, 100.0, 111.0)
    # 11 s of a clock that runs 25% fast pass in 8.8 s of true time.
    assert res.results["fast"] == (0.0, 11.0, 0.0, 11.0)
    assert res.results["ref"] == 20.0


def test_clock_step_during_a_run() -> None:
    async def watch() -> list[float]:
        loop = asyncio.get_running_loop()
        seen = []
        for _ in range(4):
            seen.append(round(loop.time(), 3))
            await asyncio.sleep(1)
        return seen

    s = sim.Simulation(seed=0)
    s.host("h", watch)
    s.at(1.5, s.clock, "h", None, None, 30.0)
    assert s.run().results["h"] == [0.0, 1.0, 32.0, 33.0]


def test_per_host_random_is_seeded_per_host() -> None:
    async def draw() -> list[float]:
        return [random.random() for _ in range(3)]

    def run(seed: int) -> dict[str, Any]:
        s = sim.Simulation(seed=seed)
        s.host("a", draw)
        s.host("b", draw)
        return s.run().results

    first, again, other = run(1), run(1), run(2)
    assert first == again and first != other
    assert first["a"] != first["b"]


def test_a_host_main_called_at_boot_is_inside_the_simulation() -> None:
    # A host's main that is a plain function (returning the coroutine) runs
    # its body when the host boots: that is the program too, and sees the
    # simulation's time and its host's generator, as its tasks do.
    def main() -> Awaitable[tuple[float, float, float]]:
        booted, drawn = time.time(), random.random()

        async def body() -> tuple[float, float, float]:
            return booted, drawn, random.random()

        return body()

    def run(seed: int) -> tuple[float, float, float]:
        s = sim.Simulation(seed=seed)
        s.host("a", main)
        result = s.run().results["a"]
        assert isinstance(result, tuple)
        return result

    first, again = run(1), run(1)
    assert first == again and first[0] == 1_704_067_200.0
    assert abs(time.time() - 1_704_067_200) > 3600  # (restored after the run)


def test_random_functions_replaced_between_runs_are_the_ones_called() -> None:
    # Outside every host, random's functions are the process's own, as
    # they are when each run of the loop starts.
    async def draw() -> float:
        return random.random()

    loop = sim.new_event_loop(seed=1)
    saved = random.random
    try:
        loop.run_until_complete(draw())
        random.random = lambda: 0.25
        assert loop.run_until_complete(draw()) == 0.25
    finally:
        random.random = saved
        loop.close()
    assert random.random is saved


def test_until_stops_unfinished_hosts() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    s = sim.Simulation(seed=0)
    s.host("h", forever)
    res = s.run(until=42.5)
    assert res.time == 42.5
    assert isinstance(res.results["h"], sim.StillRunning)


def test_deadlock_in_a_simulation() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    s = sim.Simulation(seed=0)
    s.host("h", forever)
    with pytest.raises(sim.DeadlockError):
        s.run()


def test_sockets_outside_hosts_and_other_families_are_refused() -> None:
    async def v6_and_unix() -> list[str]:
        out = []
        try:  # IPv6 is simulated (tests/test_sim_ipv6.py): nobody listens here
            await asyncio.open_connection("::1", 80)
        except OSError as exc:
            out.append(errno.errorcode[exc.errno])
        try:  # Unix stream sockets are simulated (tests/test_sim_unix.py), datagrams not
            await asyncio.get_running_loop().create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr="/tmp/d.sock", family=socket.AF_UNIX
            )
        except RuntimeError as exc:
            out.append(str(exc))
        return out

    s = sim.Simulation(seed=0)
    s.host("h", v6_and_unix)
    assert s.run().results["h"] == [
        "ECONNREFUSED",
        f"the simulated network has Unix stream sockets only (socket type {socket.SOCK_DGRAM!r})",
    ]

    async def real_socket() -> str:
        # (socket.socketpair() made by a host is simulated: tests/test_sim_unix.py)
        r, w = os.pipe()
        try:
            asyncio.get_running_loop().add_reader(r, print)
        except RuntimeError as exc:
            return str(exc)
        finally:
            os.close(r)
            os.close(w)
        return "registered"

    s = sim.Simulation(seed=0)
    s.host("h", real_socket)
    assert s.run().results["h"].startswith("real I/O inside a simulation: fd ")

    s = sim.Simulation(seed=0)
    with pytest.raises(RuntimeError, match="outside a simulated host"):
        s._loop._socket_factory(socket.AF_INET, socket.SOCK_STREAM, 0)
    s.run()


SCENARIO = textwrap.dedent(
    """
    import asyncio, random, sys, uuid
    from tidal import sim

    async def server():
        async def handle(reader, writer):
            while line := await reader.readline():
                writer.write(line.upper() + str(uuid.uuid4()).encode() + b"\\n")
                await writer.drain()
            writer.close()
        async with await asyncio.start_server(handle, None, 1):
            await asyncio.sleep(30)

    async def client(n):
        await asyncio.sleep(random.random())
        reader, writer = await asyncio.open_connection("s", 1)
        out = []
        for i in range(n):
            writer.write(b"%d %f\\n" % (i, random.random()))
            await writer.drain()
            out.append(await reader.readline())
            await asyncio.sleep(random.random())
        writer.close()
        return b"".join(out).decode()

    async def udp():
        t, _ = await asyncio.get_running_loop().create_datagram_endpoint(asyncio.DatagramProtocol, remote_addr=("s", 2))
        for i in range(50):
            t.sendto(b"x" * i)
            await asyncio.sleep(0.01)
        t.close()

    s = sim.Simulation(seed=int(sys.argv[1]), latency=(0.001, 0.02), drop=0.1, duplicate=0.1, reorder=0.1)
    s.host("s", server)
    for i in range(4):
        s.host(f"c{i}", client, 5 + i)
    s.host("u", udp)
    s.at(3, s.partition, {"c1"}, {"s"})
    s.at(9, s.heal)
    s.at(4, s.crash, "c2")
    s.clock("c3", offset=5, drift=1e-3)
    res = s.run(until=60)
    print(res.time, res.trace_hash, res.events)
    print(sorted(res.results.items()))
    """
)


def _run_scenario(tmp_path: Any, seed: int, hashseed: str, interpreted: bool | None = None) -> str:
    """SCENARIO's output in a fresh process; interpreted=None: the mode of this one."""
    script = tmp_path / "scenario.py"
    script.write_text(SCENARIO)
    env = {"PYTHONHASHSEED": hashseed, "PATH": ""}
    env.update({k: v for k, v in os.environ.items() if k in ("PYTHONPATH", "TIDAL_NO_EXT")})
    if interpreted is not None:
        env.pop("TIDAL_NO_EXT", None)
        if interpreted:
            env["TIDAL_NO_EXT"] = "1"
    return subprocess.run(
        [sys.executable, str(script), str(seed)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env=env,
    ).stdout


def test_same_seed_same_run_across_processes(tmp_path: Any) -> None:
    first = _run_scenario(tmp_path, 4, "1")
    # Another process, another hash seed: the same run.
    assert first == _run_scenario(tmp_path, 4, "2")
    assert first != _run_scenario(tmp_path, 5, "1")
    assert "c2" in first and "HostCrashed" in first


def test_compiled_and_interpreted_runs_are_the_same(tmp_path: Any) -> None:
    # The trace hash covers every datagram and segment (records written as
    # C stores compiled, array items interpreted): the same bytes either way.
    # (Where tidal is not compiled, both runs are interpreted.)
    compiled = _run_scenario(tmp_path, 3, "1", interpreted=False)
    assert compiled == _run_scenario(tmp_path, 3, "1", interpreted=True)


def test_an_aiohttp_server_inside() -> None:
    web = pytest.importorskip("aiohttp.web")

    async def server() -> None:
        async def hello(request: Any) -> Any:
            await asyncio.sleep(0.5)  # virtual
            return web.json_response(
                {"hello": request.query["name"], "at": asyncio.get_running_loop().time()}
            )

        app = web.Application()
        app.router.add_get("/", hello)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, None, 8080).start()
        await asyncio.sleep(10)
        await runner.cleanup()

    async def client() -> tuple[str, bytes]:
        await asyncio.sleep(1)
        reader, writer = await asyncio.open_connection("web", 8080)
        writer.write(b"GET /?name=sim HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n")
        response = await reader.read()
        writer.close()
        head, _, body = response.partition(b"\r\n\r\n")
        return head.split(b"\r\n")[0].decode(), body

    s = sim.Simulation(seed=0, latency=(0.01, 0.01))
    s.host("web", server)
    s.host("browser", client)
    res = s.run()
    assert res.results["browser"] == ("HTTP/1.1 200 OK", b'{"hello": "sim", "at": 1.53}')


def _udp_scenario(leak: bool) -> Callable[[int], sim.Simulation]:
    runs = itertools.count()  # state outside the simulation, different in each run

    async def sender() -> None:
        t, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=("rx", 9)
        )
        for i in range(20):
            size = 100 + next(runs) if leak and i == 7 else 10 + random.randrange(90)
            t.sendto(b"x" * size)
            await asyncio.sleep(0.1)
        t.close()

    async def receiver() -> None:
        t, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=(None, 9)
        )
        await asyncio.sleep(3)
        t.close()

    def scenario(seed: int) -> sim.Simulation:
        s = sim.Simulation(seed=seed, drop=0.1)
        s.host("rx", receiver)
        s.host("tx", sender)
        return s

    return scenario


def test_check_determinism() -> None:
    res = sim.check_determinism(_udp_scenario(leak=False), seed=3)
    assert res.results == {"rx": None, "tx": None} and res.trace
    with pytest.raises(
        sim.NondeterminismError, match=r"seed 3: two runs diverge at event \d+"
    ) as caught:
        sim.check_determinism(_udp_scenario(leak=True), seed=3)
    assert "700000000 udp sent" in str(caught.value)


def _arrival_order(seed: int, explore: bool) -> list[str]:
    """Three hosts send a datagram each at 1 s over links of exactly 10 ms:
    the three arrive at the same virtual instant."""

    async def receiver() -> list[str]:
        got: list[str] = []

        class Proto(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                got.append(data.decode())

        t, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            Proto, local_addr=(None, 1)
        )
        await asyncio.sleep(2)
        t.close()
        return got

    async def sender(name: str) -> None:
        t, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=("rx", 1)
        )
        await asyncio.sleep(1)
        t.sendto(name.encode())
        t.close()

    s = sim.Simulation(seed=seed, latency=(0.01, 0.01), explore=explore)
    s.host("rx", receiver)
    for name in ("a", "b", "c"):
        s.host(name, sender, name)
    return s.run().results["rx"]  # type: ignore[no-any-return]


def test_schedule_exploration_orders_simultaneous_events_by_seed() -> None:
    plain = {tuple(_arrival_order(seed, explore=False)) for seed in range(12)}
    assert plain == {("a", "b", "c")}
    explored = {tuple(_arrival_order(seed, explore=True)) for seed in range(12)}
    assert len(explored) > 2 and all(sorted(order) == ["a", "b", "c"] for order in explored)
    assert _arrival_order(5, explore=True) == _arrival_order(5, explore=True)


def test_schedule_exploration_keeps_asyncio_order_promises() -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        order: list[str] = []
        for i in range(20):
            loop.call_soon(order.append, f"soon {i}")
        now = loop.time()
        for i in range(5):
            loop.call_at(now + 1 + i, order.append, f"at {i}")

        async def steps(name: str) -> None:
            for i in range(3):
                order.append(f"{name} {i}")
                await asyncio.sleep(0)

        await asyncio.gather(steps("x"), steps("y"))
        await asyncio.sleep(10)
        return order

    for seed in range(5):
        order = sim.run(main(), seed=seed, explore=True)
        assert [o for o in order if o.startswith("soon")] == [f"soon {i}" for i in range(20)]
        assert [o for o in order if o.startswith("at")] == [f"at {i}" for i in range(5)]
        assert [o for o in order if o.startswith("x")] == ["x 0", "x 1", "x 2"]
        assert order == sim.run(main(), seed=seed)  # nothing here is simultaneous timers


def test_the_result_records_the_hash_seed() -> None:
    async def nothing() -> None:
        pass

    s = sim.Simulation(seed=0)
    s.host("h", nothing)
    assert s.run().hash_seed == os.environ.get("PYTHONHASHSEED", "random")


def test_a_readable_socket_is_reported_until_read() -> None:
    # Level-triggered, as epoll: a reader that leaves a datagram unread is
    # called again at the next turn, and again, until it reads it; a
    # datagram behind it is reported after it, one read per turn.
    async def rx() -> list[Any]:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind(("0.0.0.0", 9000))
        seen: list[Any] = []
        done = loop.create_future()

        def readable() -> None:
            seen.append("called")
            if seen.count("called") % 3 == 0:
                seen.append(sock.recvfrom(100)[0])
                if len(seen) == 8:
                    loop.remove_reader(sock)
                    done.set_result(None)

        loop.add_reader(sock, readable)
        await done
        sock.close()
        return seen

    async def tx() -> None:
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=("rx", 9000)
        )
        await asyncio.sleep(0.1)
        transport.sendto(b"one")
        transport.sendto(b"two")
        await asyncio.sleep(1)
        transport.close()

    s = sim.Simulation(seed=1, latency=(0.01, 0.01))
    s.host("rx", rx)
    s.host("tx", tx)
    res = s.run(until=10)
    assert res.results["rx"] == ["called"] * 3 + [b"one"] + ["called"] * 3 + [b"two"]
