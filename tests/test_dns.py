"""getaddrinfo/getnameinfo on both loops, and tidal's numeric fast path.

Only loopback names and numeric addresses are looked up: no test needs a
network or a DNS server.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from helpers import HAS_IPV6, needs_ipv6

from tidal import _dns


# ----------------------------------------------------------------------
# The loop methods (both loops)
# ----------------------------------------------------------------------


def test_getaddrinfo_numeric(loop, arun):
    got = arun(loop.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM))
    assert got == socket.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)


def test_getaddrinfo_localhost(loop, arun):
    got = arun(loop.getaddrinfo("localhost", 8080, family=socket.AF_INET, type=socket.SOCK_STREAM))
    assert (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", 8080)) in got


def test_getaddrinfo_all_arguments(loop, arun):
    kw = {"family": socket.AF_INET, "type": socket.SOCK_DGRAM, "flags": socket.AI_PASSIVE}
    got = arun(loop.getaddrinfo(None, "53", **kw))
    assert got == socket.getaddrinfo(None, "53", **kw)


def test_getaddrinfo_error(loop, arun):
    with pytest.raises(socket.gaierror) as exc_info:
        arun(loop.getaddrinfo("not an address", 80, flags=socket.AI_NUMERICHOST))
    assert exc_info.value.errno == socket.EAI_NONAME


def test_getaddrinfo_is_a_coroutine_running_off_loop(loop, arun):
    """The lookup runs in the default executor: the loop keeps turning meanwhile."""
    ticks: list[int] = []

    async def main():
        fut = asyncio.ensure_future(loop.getaddrinfo("localhost", 0))
        while not fut.done():
            ticks.append(1)
            await asyncio.sleep(0)
        return await fut

    assert arun(main())
    assert ticks


def test_getnameinfo(loop, arun):
    flags = socket.NI_NUMERICHOST | socket.NI_NUMERICSERV
    assert arun(loop.getnameinfo(("127.0.0.1", 80), flags)) == ("127.0.0.1", "80")


def test_getnameinfo_default_flags(loop, arun):
    got = arun(loop.getnameinfo(("127.0.0.1", 0)))
    assert got == socket.getnameinfo(("127.0.0.1", 0), 0)


def test_getnameinfo_error(loop, arun):
    with pytest.raises(TypeError):
        arun(loop.getnameinfo("127.0.0.1"))


# ----------------------------------------------------------------------
# tidal's numeric fast path: same answers as getaddrinfo, without a thread
# ----------------------------------------------------------------------

NUMERIC_CASES: list[tuple[Any, Any, int, int]] = [
    ("127.0.0.1", 80, socket.AF_UNSPEC, socket.SOCK_STREAM),
    ("127.0.0.1", "80", socket.AF_INET, socket.SOCK_STREAM),
    ("127.0.0.1", None, socket.AF_UNSPEC, socket.SOCK_DGRAM),
    ("127.0.0.1", 0, socket.AF_UNSPEC, socket.SOCK_STREAM),
    (b"127.0.0.1", 8080, socket.AF_UNSPEC, socket.SOCK_STREAM),
    ("0.0.0.0", 1, socket.AF_INET, socket.SOCK_DGRAM),
]
if HAS_IPV6:
    NUMERIC_CASES += [
        ("::1", 443, socket.AF_UNSPEC, socket.SOCK_STREAM),
        ("::1", 443, socket.AF_INET6, socket.SOCK_DGRAM),
        ("::", 0, socket.AF_UNSPEC, socket.SOCK_STREAM),
    ]


@pytest.mark.parametrize("host,port,family,type_", NUMERIC_CASES)
def test_numeric_addrinfo_matches_getaddrinfo(host, port, family, type_):
    ours = _dns.numeric_addrinfo(host, port, family, type_, 0)
    theirs = socket.getaddrinfo(host, port, family, type_, 0, socket.AI_NUMERICHOST)
    assert ours == theirs[0]


@pytest.mark.parametrize(
    "host,port,family,type_,proto",
    [
        (None, 80, 0, socket.SOCK_STREAM, 0),  # no host: getaddrinfo's loopback rules
        ("localhost", 80, 0, socket.SOCK_STREAM, 0),  # a name
        ("127.0.0.1", "http", 0, socket.SOCK_STREAM, 0),  # a service name
        ("fe80::1%lo", 80, 0, socket.SOCK_STREAM, 0),  # a scoped address
        ("127.0.0.1", 80, 0, socket.SOCK_RAW, 0),  # neither stream nor datagram
        ("127.0.0.1", 80, 0, socket.SOCK_STREAM, 99),  # an unusual protocol
        ("127.0.0.1", 80, socket.AF_INET6, socket.SOCK_STREAM, 0),  # family mismatch
    ],
)
def test_numeric_addrinfo_defers(host, port, family, type_, proto):
    assert _dns.numeric_addrinfo(host, port, family, type_, proto) is None


def test_resolve_numeric_skips_executor(loop, arun):
    async def boom(*a: Any, **k: Any) -> Any:
        raise AssertionError("getaddrinfo called for a numeric host")

    loop.getaddrinfo = boom  # type: ignore[method-assign]
    got = arun(_dns.resolve(loop, ("127.0.0.1", 80)))
    assert got == [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", 80))]


@needs_ipv6
def test_resolve_ipv6_keeps_flowinfo_and_scope(loop, arun):
    got = arun(_dns.resolve(loop, ("::1", 80, 5, 0)))
    assert got == [(socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("::1", 80, 5, 0))]


def test_resolve_name_uses_loop_getaddrinfo(loop, arun):
    calls: list[Any] = []

    async def fake(host: Any, port: Any, **kw: Any) -> Any:
        calls.append((host, port, kw))
        return ["answer"]

    loop.getaddrinfo = fake  # type: ignore[method-assign]
    got = arun(_dns.resolve(loop, ("example.test", 80), family=2, proto=0, flags=4))
    assert got == ["answer"]
    assert calls == [
        ("example.test", 80, {"family": 2, "type": socket.SOCK_STREAM, "proto": 0, "flags": 4})
    ]
