"""create_connection / create_unix_connection, on asyncio's loop and on tidal's.

Servers are plain sockets: a listening socket completes the TCP handshake
without accept(), a bound socket that does not listen refuses, and a
listening socket whose backlog is full never answers (a loopback
"blackhole": the kernel drops the SYN and the connect hangs).  Only
loopback addresses are used.

Where the exact text of an error matters, ``_on_both`` runs the same
coroutine on both loops in one test and compares what they raised.
"""

from __future__ import annotations

import asyncio
import errno
import os
import pathlib
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from helpers import needs_ipv6

import tidal

needs_312 = pytest.mark.skipif(sys.version_info < (3, 12), reason="all_errors is 3.12+")


# ----------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------


class Proto(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: Any = None
        self.data = bytearray()
        self.made = 0
        self.lost: Any = "not lost"
        self.got_data = asyncio.Event()

    def connection_made(self, transport: Any) -> None:
        self.made += 1
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.data += data
        self.got_data.set()

    def connection_lost(self, exc: Any) -> None:
        self.lost = exc


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _listener(family: int = socket.AF_INET, host: str = "127.0.0.1") -> socket.socket:
    srv = socket.socket(family, socket.SOCK_STREAM)
    srv.bind((host, 0))
    srv.listen(16)
    return srv


def _refuser(family: int = socket.AF_INET, host: str = "127.0.0.1") -> socket.socket:
    """A bound socket that does not listen: connecting to its port is refused."""
    s = socket.socket(family, socket.SOCK_STREAM)
    s.bind((host, 0))
    return s


class Blackhole:
    """A listening socket with a full backlog: further connects hang (no reply to SYN)."""

    def __init__(self, family: int = socket.AF_INET, host: str = "127.0.0.1") -> None:
        self.srv = socket.socket(family, socket.SOCK_STREAM)
        self.srv.bind((host, 0))
        self.srv.listen(0)
        self.addr = self.srv.getsockname()
        self.fillers: list[socket.socket] = []
        # Fill the accept queue until a connect no longer completes.
        for _ in range(8):
            c = socket.socket(family, socket.SOCK_STREAM)
            c.settimeout(0.1)
            self.fillers.append(c)
            try:
                c.connect(self.addr)
            except TimeoutError:
                break
        else:  # pragma: no cover - kernel that never drops SYNs
            raise RuntimeError("could not fill the backlog")

    def close(self) -> None:
        for c in self.fillers:
            c.close()
        self.srv.close()


@pytest.fixture
def listener():
    srv = _listener()
    yield srv
    srv.close()


@pytest.fixture
def refuser():
    s = _refuser()
    yield s
    s.close()


@pytest.fixture
def blackhole():
    bh = Blackhole()
    yield bh
    bh.close()


def info(sock_or_addr: Any) -> tuple[Any, ...]:
    """An addrinfo tuple for a socket's address (or an address)."""
    addr = sock_or_addr.getsockname() if isinstance(sock_or_addr, socket.socket) else sock_or_addr
    family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
    return (family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", addr)


def fake_dns(loop: asyncio.AbstractEventLoop, infos: list[Any]) -> list[Any]:
    """Make `loop.getaddrinfo` answer `infos` for any name; return the list of queries."""
    queries: list[Any] = []

    async def getaddrinfo(host: Any, port: Any, **kw: Any) -> list[Any]:
        queries.append((host, port, kw))
        return list(infos)

    loop.getaddrinfo = getaddrinfo  # type: ignore[method-assign]
    return queries


LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "tidal": tidal.new_event_loop,
}


def _on_both(
    make: Callable[[asyncio.AbstractEventLoop], Coroutine[Any, Any, Any]],
) -> dict[str, Any]:
    """Run ``make(loop)`` on each loop; return name -> result or the exception raised."""
    out: dict[str, Any] = {}
    for name, factory in LOOPS.items():
        lp = factory()
        try:
            out[name] = lp.run_until_complete(asyncio.wait_for(make(lp), 10))
        except Exception as exc:  # noqa: BLE001 - the outcome under comparison
            out[name] = exc
        finally:
            lp.run_until_complete(lp.shutdown_default_executor())
            lp.close()
    return out


def same_error(results: dict[str, Any]) -> BaseException:
    a, t = results["asyncio"], results["tidal"]
    assert isinstance(a, BaseException), a
    assert type(t) is type(a), (a, t)
    assert str(t) == str(a)
    if isinstance(a, OSError):
        assert t.errno == a.errno
    return t


async def connect_and_close(loop: Any, *args: Any, **kw: Any) -> tuple[Any, Any]:
    transport, _ = await loop.create_connection(Proto, *args, **kw)
    peer = transport.get_extra_info("peername")
    local = transport.get_extra_info("sockname")
    transport.close()
    await asyncio.sleep(0)
    return peer, local


# ----------------------------------------------------------------------
# Connecting
# ----------------------------------------------------------------------


def test_connect_numeric(loop, arun, listener):
    addr = listener.getsockname()

    async def main():
        transport, proto = await loop.create_connection(Proto, *addr)
        assert isinstance(proto, Proto)
        assert proto.made == 1 and proto.transport is transport
        assert transport.get_extra_info("peername") == addr
        sock = transport.get_extra_info("socket")
        assert sock.family == socket.AF_INET and sock.type == socket.SOCK_STREAM
        conn, _ = listener.accept()
        with conn:
            conn.sendall(b"hello")
            await asyncio.wait_for(proto.got_data.wait(), 5)
            assert bytes(proto.data) == b"hello"
            transport.write(b"world")
            conn.settimeout(5)
            assert conn.recv(100) == b"world"
            transport.close()
            await asyncio.sleep(0.01)
            assert proto.lost is None

    arun(main())


def test_connect_port_as_string(loop, arun, listener):
    host, port = listener.getsockname()
    peer, _ = arun(connect_and_close(loop, host, str(port)))
    assert peer == (host, port)


def test_connect_localhost(loop, arun, listener):
    port = listener.getsockname()[1]
    peer, _ = arun(connect_and_close(loop, "localhost", port, family=socket.AF_INET))
    assert peer == ("127.0.0.1", port)


@needs_ipv6
def test_connect_ipv6(loop, arun):
    srv = _listener(socket.AF_INET6, "::1")
    try:
        port = srv.getsockname()[1]
        peer, _ = arun(connect_and_close(loop, "::1", port))
        assert peer[:2] == ("::1", port)
    finally:
        srv.close()


def test_numeric_host_skips_getaddrinfo(loop, arun, listener):
    async def boom(*a: Any, **k: Any) -> Any:
        raise AssertionError("getaddrinfo called for a numeric host")

    loop.getaddrinfo = boom  # type: ignore[method-assign]
    peer, _ = arun(connect_and_close(loop, *listener.getsockname()))
    assert peer == listener.getsockname()


def test_name_goes_through_getaddrinfo(loop, arun, listener):
    queries = fake_dns(loop, [info(listener)])
    peer, _ = arun(connect_and_close(loop, "server.test", 4242, proto=0, flags=0))
    assert peer == listener.getsockname()
    assert queries == [
        ("server.test", 4242, {"family": 0, "type": socket.SOCK_STREAM, "proto": 0, "flags": 0})
    ]


def test_connect_refused(loop, arun, refuser):
    addr = refuser.getsockname()
    with pytest.raises(ConnectionRefusedError) as info_:
        arun(loop.create_connection(Proto, *addr))
    assert info_.value.errno == errno.ECONNREFUSED


def test_connect_refused_same_error_on_both(refuser):
    addr = refuser.getsockname()
    exc = same_error(_on_both(lambda lp: lp.create_connection(Proto, *addr)))
    assert isinstance(exc, ConnectionRefusedError)


def test_getaddrinfo_empty(loop, arun):
    fake_dns(loop, [])
    with pytest.raises(OSError, match=r"^getaddrinfo\(\) returned empty list$"):
        arun(loop.create_connection(Proto, "nothing.test", 80))


def test_first_refuses_second_succeeds(loop, arun, refuser, listener):
    fake_dns(loop, [info(refuser), info(listener)])
    peer, _ = arun(connect_and_close(loop, "multi.test", 80))
    assert peer == listener.getsockname()


def test_all_refused_multiple_exceptions():
    r1, r2 = _refuser(), _refuser()
    try:
        infos = [info(r1), info(r2)]

        async def go(lp: Any) -> Any:
            fake_dns(lp, infos)
            return await lp.create_connection(Proto, "multi.test", 80)

        exc = same_error(_on_both(go))
        assert type(exc) is OSError
        a1, a2 = r1.getsockname(), r2.getsockname()
        assert str(exc) == (
            f"Multiple exceptions: [Errno 111] Connect call failed {a1}, "
            f"[Errno 111] Connect call failed {a2}"
        )
    finally:
        r1.close()
        r2.close()


def test_all_refused_same_message_raises_first(loop, arun, refuser):
    fake_dns(loop, [info(refuser), info(refuser)])
    with pytest.raises(ConnectionRefusedError) as exc_info:
        arun(loop.create_connection(Proto, "twice.test", 80))
    assert str(exc_info.value) == f"[Errno 111] Connect call failed {refuser.getsockname()}"


@needs_312
def test_all_errors_exception_group(loop, arun):
    r1, r2 = _refuser(), _refuser()
    try:
        fake_dns(loop, [info(r1), info(r2)])
        with pytest.raises(ExceptionGroup) as exc_info:
            arun(loop.create_connection(Proto, "multi.test", 80, all_errors=True))
        group = exc_info.value
        assert group.message == "create_connection failed"
        assert [type(e) for e in group.exceptions] == [ConnectionRefusedError] * 2
        assert [str(e) for e in group.exceptions] == [
            f"[Errno 111] Connect call failed {r1.getsockname()}",
            f"[Errno 111] Connect call failed {r2.getsockname()}",
        ]
    finally:
        r1.close()
        r2.close()


@needs_312
def test_all_errors_single_error_still_grouped(loop, arun, refuser):
    with pytest.raises(ExceptionGroup) as exc_info:
        arun(loop.create_connection(Proto, *refuser.getsockname(), all_errors=True))
    assert len(exc_info.value.exceptions) == 1
    assert isinstance(exc_info.value.exceptions[0], ConnectionRefusedError)


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.11 has no all_errors")
def test_all_errors_unknown_on_311(loop, arun, refuser):
    with pytest.raises(TypeError):
        arun(loop.create_connection(Proto, *refuser.getsockname(), all_errors=True))


# ----------------------------------------------------------------------
# Happy eyeballs and interleaving
# ----------------------------------------------------------------------


def test_happy_eyeballs_slow_first_address(loop, arun, blackhole, listener):
    fake_dns(loop, [info(blackhole.addr), info(listener)])
    before = open_fds()

    async def main():
        t0 = time.monotonic()
        peer, _ = await connect_and_close(loop, "slow.test", 80, happy_eyeballs_delay=0.05)
        elapsed = time.monotonic() - t0
        for _ in range(3):
            await asyncio.sleep(0)
        return peer, elapsed

    peer, elapsed = arun(main())
    assert peer == listener.getsockname()
    assert elapsed < 1.0  # well before the blackholed attempt could time out
    assert open_fds() == before  # the losing attempt's socket was closed


def test_happy_eyeballs_failure_starts_next_at_once(loop, arun, refuser, listener):
    fake_dns(loop, [info(refuser), info(listener)])

    async def main():
        t0 = time.monotonic()
        peer, _ = await connect_and_close(loop, "multi.test", 80, happy_eyeballs_delay=30)
        return peer, time.monotonic() - t0

    peer, elapsed = arun(main())
    assert peer == listener.getsockname()
    assert elapsed < 5


def test_happy_eyeballs_fast_first_address_never_starts_second(loop, arun, listener):
    second = _listener()
    try:
        fake_dns(loop, [info(listener), info(second)])
        peer, _ = arun(connect_and_close(loop, "fast.test", 80, happy_eyeballs_delay=5))
        assert peer == listener.getsockname()
        second.settimeout(0)
        with pytest.raises(BlockingIOError):
            second.accept()  # the second attempt was never made
    finally:
        second.close()


def test_happy_eyeballs_all_fail():
    r1, r2, r3 = _refuser(), _refuser(), _refuser()
    try:
        infos = [info(r1), info(r2), info(r3)]

        async def go(lp: Any) -> Any:
            fake_dns(lp, infos)
            return await lp.create_connection(Proto, "multi.test", 80, happy_eyeballs_delay=0.01)

        exc = same_error(_on_both(go))
        # Errors are listed in the order the attempts started.
        addrs = [s.getsockname() for s in (r1, r2, r3)]
        assert str(exc) == "Multiple exceptions: " + ", ".join(
            f"[Errno 111] Connect call failed {a}" for a in addrs
        )
    finally:
        for s in (r1, r2, r3):
            s.close()


def test_without_happy_eyeballs_attempts_are_sequential(loop, arun, blackhole, listener):
    """With no delay the blackholed first address blocks: the second is never tried."""
    fake_dns(loop, [info(blackhole.addr), info(listener)])
    before = open_fds()

    async def main():
        with pytest.raises((asyncio.TimeoutError, TimeoutError)):
            await asyncio.wait_for(loop.create_connection(Proto, "slow.test", 80), 0.3)
        for _ in range(3):
            await asyncio.sleep(0)

    arun(main())
    listener.settimeout(0)
    with pytest.raises(BlockingIOError):
        listener.accept()  # nobody connected to the second address
    assert open_fds() == before


@needs_ipv6
def test_interleave_order():
    v4a, v4b = _refuser(), _refuser()
    v6a, v6b = _refuser(socket.AF_INET6, "::1"), _refuser(socket.AF_INET6, "::1")
    socks = [v4a, v4b, v6a, v6b]
    try:
        infos = [info(s) for s in socks]

        def order(**kw: Any) -> list[Any]:
            async def go(lp: Any) -> Any:
                fake_dns(lp, infos)
                return await lp.create_connection(Proto, "multi.test", 80, **kw)

            exc = same_error(_on_both(go))
            text = str(exc)
            return sorted(socks, key=lambda s: text.index(str(s.getsockname())))

        assert order() == [v4a, v4b, v6a, v6b]
        assert order(interleave=1) == [v4a, v6a, v4b, v6b]
        assert order(interleave=2) == [v4a, v4b, v6a, v6b]
        assert order(happy_eyeballs_delay=0.01) == [v4a, v6a, v4b, v6b]  # interleave=1 implied
        assert order(happy_eyeballs_delay=0.01, interleave=0) == [v4a, v4b, v6a, v6b]
    finally:
        for s in socks:
            s.close()


# ----------------------------------------------------------------------
# Cancellation: no fd left open, no writer left registered
# ----------------------------------------------------------------------


@pytest.mark.parametrize("delay", [None, 0.05])
def test_cancel_mid_connect_closes_socket(loop, arun, delay):
    holes = [Blackhole(), Blackhole()]
    try:
        fake_dns(loop, [info(h.addr) for h in holes])
        before = open_fds()

        async def main():
            task = loop.create_task(
                loop.create_connection(Proto, "slow.test", 80, happy_eyeballs_delay=delay)
            )
            await asyncio.sleep(0.15)  # both attempts in flight when racing
            assert open_fds() == before + (1 if delay is None else 2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            for _ in range(3):
                await asyncio.sleep(0)
            assert open_fds() == before

        arun(main())
        if loop.__class__.__module__.startswith("tidal"):
            assert not loop._writers  # type: ignore[attr-defined]
    finally:
        for h in holes:
            h.close()


def test_timeout_mid_connect_closes_socket(loop, arun, blackhole):
    before = open_fds()

    async def main():
        with pytest.raises((asyncio.TimeoutError, TimeoutError)):
            async with asyncio.timeout(0.1):
                await loop.create_connection(Proto, *blackhole.addr)
        for _ in range(3):
            await asyncio.sleep(0)
        assert open_fds() == before

    arun(main())


# ----------------------------------------------------------------------
# local_addr
# ----------------------------------------------------------------------


def test_local_addr(loop, arun, listener):
    _, local = arun(connect_and_close(loop, *listener.getsockname(), local_addr=("127.0.0.1", 0)))
    assert local[0] == "127.0.0.1" and local[1] != 0


def test_local_addr_fixed_port(loop, arun, listener):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    _, local = arun(
        connect_and_close(loop, *listener.getsockname(), local_addr=("127.0.0.1", port))
    )
    assert local == ("127.0.0.1", port)


def test_local_addr_by_name(loop, arun, listener):
    _, local = arun(
        connect_and_close(
            loop, *listener.getsockname(), local_addr=("localhost", 0), family=socket.AF_INET
        )
    )
    assert local[0] == "127.0.0.1"


def test_local_addr_in_use(listener):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    laddr = taken.getsockname()
    try:
        exc = same_error(
            _on_both(
                lambda lp: lp.create_connection(Proto, *listener.getsockname(), local_addr=laddr)
            )
        )
        assert exc.errno == errno.EADDRINUSE
        reason = (
            "[errno 98] address already in use"
            if sys.version_info >= (3, 13)
            else "address already in use"
        )
        assert str(exc) == (
            f"[Errno 98] error while attempting to bind on address {laddr!r}: {reason}"
        )
    finally:
        taken.close()


@needs_ipv6
def test_local_addr_family_mismatch(listener):
    exc = same_error(
        _on_both(
            lambda lp: lp.create_connection(Proto, *listener.getsockname(), local_addr=("::1", 0))
        )
    )
    assert str(exc) == "no matching local address with family=<AddressFamily.AF_INET: 2> found"


@needs_ipv6
def test_local_addr_skips_other_family(loop, arun, listener):
    """Local addresses of another family are skipped, not tried."""
    # The remote is numeric (no lookup); the local name resolves to ::1 first.
    fake_dns(loop, [info(("::1", 0)), info(("127.0.0.1", 0))])
    _, local = arun(connect_and_close(loop, *listener.getsockname(), local_addr=("both.test", 0)))
    assert local[0] == "127.0.0.1"


# ----------------------------------------------------------------------
# sock=
# ----------------------------------------------------------------------


def test_sock_argument(loop, arun, listener):
    sock = socket.create_connection(listener.getsockname())

    async def main():
        transport, proto = await loop.create_connection(Proto, sock=sock)
        assert transport.get_extra_info("socket").fileno() == sock.fileno()
        assert sock.gettimeout() == 0  # made non-blocking
        assert proto.made == 1
        transport.close()
        await asyncio.sleep(0.01)

    arun(main())
    assert sock.fileno() == -1  # the transport owned it and closed it


def test_sock_unix_stream_is_accepted(loop, arun):
    a, b = socket.socketpair()
    try:

        async def main():
            transport, proto = await loop.create_connection(Proto, sock=a)
            b.sendall(b"x")
            await asyncio.wait_for(proto.got_data.wait(), 5)
            transport.close()
            await asyncio.sleep(0.01)

        arun(main())
    finally:
        a.close()
        b.close()


def test_sock_must_be_stream(loop, arun):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as dgram:
        with pytest.raises(ValueError) as exc_info:
            arun(loop.create_connection(Proto, sock=dgram))
        assert str(exc_info.value) == f"A Stream Socket was expected, got {dgram!r}"


# ----------------------------------------------------------------------
# Bad arguments: asyncio's exceptions and messages
# ----------------------------------------------------------------------


BAD_ARGS: list[tuple[dict[str, Any], type[BaseException], str]] = [
    ({"host": "127.0.0.1", "port": 1, "sock": "SOCK"}, ValueError,
     "host/port and sock can not be specified at the same time"),
    ({"port": 1, "sock": "SOCK"}, ValueError,
     "host/port and sock can not be specified at the same time"),
    ({}, ValueError, "host and port was not specified and no sock specified"),
    ({"host": "127.0.0.1", "port": 1, "server_hostname": "x"}, ValueError,
     "server_hostname is only meaningful with ssl"),
    ({"host": "127.0.0.1", "port": 1, "ssl_handshake_timeout": 1}, ValueError,
     "ssl_handshake_timeout is only meaningful with ssl"),
    ({"host": "127.0.0.1", "port": 1, "ssl_shutdown_timeout": 1}, ValueError,
     "ssl_shutdown_timeout is only meaningful with ssl"),
    ({"sock": "SOCK", "ssl": True}, ValueError,
     "You must set server_hostname when using ssl without a host"),
    ({"host": "", "port": 1, "ssl": True}, ValueError,
     "You must set server_hostname when using ssl without a host"),
]  # fmt: skip


@pytest.mark.parametrize("kwargs,exc_type,message", BAD_ARGS)
def test_bad_arguments(loop, arun, kwargs, exc_type, message):
    with socket.socket() as sock:
        kwargs = {k: (sock if v == "SOCK" else v) for k, v in kwargs.items()}
        with pytest.raises(exc_type) as exc_info:
            arun(loop.create_connection(Proto, **kwargs))
        assert str(exc_info.value) == message


def test_ssl_false_is_plain(loop, arun, listener):
    peer, _ = arun(connect_and_close(loop, *listener.getsockname(), ssl=False))
    assert peer == listener.getsockname()


def test_create_connection_signature_matches_asyncio():
    import inspect

    theirs = inspect.signature(asyncio.BaseEventLoop.create_connection)
    ours = inspect.signature(tidal.EventLoop.create_connection)
    assert list(ours.parameters) == list(theirs.parameters)
    for name, param in theirs.parameters.items():
        assert ours.parameters[name].kind == param.kind, name
        assert ours.parameters[name].default == param.default, name
    theirs = inspect.signature(asyncio.unix_events._UnixSelectorEventLoop.create_unix_connection)
    ours = inspect.signature(tidal.EventLoop.create_unix_connection)
    assert list(ours.parameters) == list(theirs.parameters)


# ----------------------------------------------------------------------
# Unix connections
# ----------------------------------------------------------------------


@pytest.fixture
def unix_listener():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "sock")
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(path)
        srv.listen(16)
        yield srv, path
        srv.close()


@pytest.mark.parametrize("kind", ["str", "bytes", "pathlike"])
def test_unix_connection(loop, arun, unix_listener, kind):
    srv, path = unix_listener
    target: Any = {"str": path, "bytes": os.fsencode(path), "pathlike": pathlib.Path(path)}[kind]

    async def main():
        transport, proto = await loop.create_unix_connection(Proto, target)
        assert proto.made == 1
        sock = transport.get_extra_info("socket")
        assert sock.family == socket.AF_UNIX
        conn, _ = srv.accept()
        with conn:
            conn.sendall(b"hi")
            await asyncio.wait_for(proto.got_data.wait(), 5)
            assert bytes(proto.data) == b"hi"
        transport.close()
        await asyncio.sleep(0.01)

    arun(main())


def test_unix_connection_missing_path():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "nothing-here")
        before = open_fds()
        exc = same_error(_on_both(lambda lp: lp.create_unix_connection(Proto, path)))
        assert isinstance(exc, FileNotFoundError)
        assert open_fds() == before


def test_unix_connection_refused():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)  # bound, not listening
        try:
            exc = same_error(_on_both(lambda lp: lp.create_unix_connection(Proto, path)))
            assert isinstance(exc, ConnectionRefusedError)
        finally:
            s.close()


def test_unix_connection_sock(loop, arun, unix_listener):
    _, path = unix_listener
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)

    async def main():
        transport, _ = await loop.create_unix_connection(Proto, sock=sock)
        assert sock.gettimeout() == 0
        assert transport.get_extra_info("socket").fileno() == sock.fileno()
        transport.close()
        await asyncio.sleep(0.01)

    arun(main())


UNIX_BAD_ARGS: list[tuple[dict[str, Any], type[BaseException], str | None]] = [
    ({"path": "/x", "sock": "SOCK"}, ValueError,
     "path and sock can not be specified at the same time"),
    ({}, ValueError, "no path and sock were specified"),
    ({"path": "/x", "server_hostname": "h"}, ValueError,
     "server_hostname is only meaningful with ssl"),
    ({"path": "/x", "ssl_handshake_timeout": 1}, ValueError,
     "ssl_handshake_timeout is only meaningful with ssl"),
    ({"path": "/x", "ssl_shutdown_timeout": 1}, ValueError,
     "ssl_shutdown_timeout is only meaningful with ssl"),
    ({"path": "/x", "ssl": True}, ValueError,
     "you have to pass server_hostname when using ssl"),
    ({"path": 42}, TypeError, None),
]  # fmt: skip


@pytest.mark.parametrize("kwargs,exc_type,message", UNIX_BAD_ARGS)
def test_unix_bad_arguments(loop, arun, kwargs, exc_type, message):
    with socket.socket(socket.AF_UNIX) as sock:
        kwargs = {k: (sock if v == "SOCK" else v) for k, v in kwargs.items()}
        with pytest.raises(exc_type) as exc_info:
            arun(loop.create_unix_connection(Proto, **kwargs))
        if message is not None:
            assert str(exc_info.value) == message


@pytest.mark.parametrize(
    "family,type_",
    [(socket.AF_INET, socket.SOCK_STREAM), (socket.AF_UNIX, socket.SOCK_DGRAM)],
)
def test_unix_sock_must_be_unix_stream(loop, arun, family, type_):
    with socket.socket(family, type_) as sock:
        with pytest.raises(ValueError) as exc_info:
            arun(loop.create_unix_connection(Proto, sock=sock))
        assert str(exc_info.value) == f"A UNIX Domain Stream Socket was expected, got {sock!r}"


# ----------------------------------------------------------------------
# Streams on top
# ----------------------------------------------------------------------


def test_open_connection_streams(loop, arun, listener):
    async def main():
        reader, writer = await asyncio.open_connection(*listener.getsockname())
        conn, _ = listener.accept()
        conn.settimeout(5)
        with conn:
            writer.write(b"ping\n")
            await writer.drain()
            assert conn.recv(100) == b"ping\n"
            conn.sendall(b"pong\n")
            assert await reader.readline() == b"pong\n"
            assert writer.get_extra_info("peername") == listener.getsockname()
            conn.shutdown(socket.SHUT_WR)
            assert await reader.read() == b""
            writer.close()
            await writer.wait_closed()

    arun(main())


def test_open_unix_connection_streams(loop, arun, unix_listener):
    srv, path = unix_listener

    async def main():
        reader, writer = await asyncio.open_unix_connection(path)
        conn, _ = srv.accept()
        conn.settimeout(5)
        with conn:
            writer.write(b"ping\n")
            await writer.drain()
            assert conn.recv(100) == b"ping\n"
            conn.sendall(b"pong\n")
            assert await reader.readline() == b"pong\n"
            writer.close()
            await writer.wait_closed()

    arun(main())


def test_open_connection_refused(loop, arun, refuser):
    with pytest.raises(ConnectionRefusedError):
        arun(asyncio.open_connection(*refuser.getsockname()))


@pytest.mark.parametrize("loop_name", ["tidal"], indirect=True)
def test_protocol_factory_error_closes_socket(loop, arun, listener):
    """tidal closes the socket it connected; asyncio leaves it to the garbage collector."""
    before = open_fds()

    def bad_factory() -> Any:
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        arun(loop.create_connection(bad_factory, *listener.getsockname()))
    assert open_fds() == before
