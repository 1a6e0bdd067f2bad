"""Every transport and server tidal makes has asyncio's public names, behaving as asyncio's do.

Each test here makes the same real objects on asyncio's loop and on tidal's
(a TCP, Unix and TLS connection, a UDP endpoint, both ends of a pipe, a child
process and its pipes, a server) and compares them: the public names of
asyncio's object must all be on tidal's, each the same kind of thing (method
or value, same parameters), and the queries and the unsupported half answer
the same (values, or the exception's type).  A name asyncio adds in a later
Python fails here until tidal has it too.
"""

from __future__ import annotations

import asyncio
import inspect
from unittest import mock
from typing import Any, Callable

import pytest
from transport_kinds import KINDS, Recorder, open_kind, open_server

import tidal

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "tidal": tidal.new_event_loop,
}

# get_extra_info() names any transport may know (asyncio's documented set).
EXTRA_NAMES = (
    "peername",
    "socket",
    "sockname",
    "compression",
    "cipher",
    "peercert",
    "sslcontext",
    "ssl_object",
    "pipe",
    "subprocess",
)


def answer(call: Callable[[], Any]) -> Any:
    """What a call answers: ("ok", value) or ("raises", the exception's type name)."""
    try:
        return ("ok", call())
    except Exception as exc:
        return ("raises", type(exc).__name__)


def describe(obj: Any) -> dict[str, Any]:
    """Public name -> what it is: a method's parameters, or a value's type."""
    names: dict[str, Any] = {}
    for name in dir(obj):
        if name.startswith("_"):
            continue
        value = getattr(obj, name)
        if callable(value):
            try:
                params = tuple(
                    (p.name, p.kind, p.default)
                    for p in inspect.signature(value).parameters.values()
                )
            except (TypeError, ValueError):
                params = "no signature"
            names[name] = ("method", params)
        else:
            names[name] = ("value", type(value).__name__)
    return names


def behaviour(transport: Any, protocol: Any) -> dict[str, Any]:
    """The answers of a live transport's queries and of the half it does not support."""
    t = transport
    seen: dict[str, Any] = {}
    for name in (
        "is_closing",
        "is_reading",
        "can_write_eof",
        "get_write_buffer_size",
        "get_write_buffer_limits",
        "get_read_buffer_size",
        "get_read_buffer_limits",
        "get_returncode",
    ):
        seen[name] = answer(getattr(t, name)) if hasattr(t, name) else "absent"
    seen["get_pid"] = (
        answer(lambda: type(t.get_pid()).__name__) if hasattr(t, "get_pid") else "absent"
    )
    # (A child's pipe has the loop's own protocol, not the child's.)
    original = t.get_protocol()
    seen["get_protocol"] = original is protocol
    # (max_size: its value is the transport's read size, which tidal chose
    # otherwise for streams and pipes; its presence is checked by name.)
    seen["extra"] = {name: type(t.get_extra_info(name)).__name__ for name in EXTRA_NAMES}
    seen["extra_default"] = t.get_extra_info("no such name", "default")
    # The half a kind may not support, and the flow-control setters.
    seen["pause_reading"] = answer(t.pause_reading) if hasattr(t, "pause_reading") else "absent"
    seen["is_reading after pause"] = answer(t.is_reading) if hasattr(t, "is_reading") else "absent"
    seen["resume_reading"] = answer(t.resume_reading) if hasattr(t, "resume_reading") else "absent"
    seen["is_reading after resume"] = answer(t.is_reading) if hasattr(t, "is_reading") else "absent"
    if hasattr(t, "set_write_buffer_limits"):
        seen["set_write_buffer_limits"] = answer(lambda: t.set_write_buffer_limits(2000, 100))
        seen["limits after set"] = answer(t.get_write_buffer_limits)
        seen["set_write_buffer_limits(low>high)"] = answer(
            lambda: t.set_write_buffer_limits(high=1, low=2)
        )
    else:
        seen["set_write_buffer_limits"] = "absent"
    for name in ("write", "writelines", "write_eof", "sendto"):
        if hasattr(t, name) and name not in ("write", "writelines", "sendto"):
            continue
        seen[f"has {name}"] = hasattr(t, name)
    other = Recorder()
    seen["set_protocol"] = answer(lambda: t.set_protocol(other))
    seen["get_protocol after set"] = answer(lambda: t.get_protocol() is other)
    t.set_protocol(original)
    return seen


async def observe(kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
    async with open_kind(kind) as (transport, protocol, _peers):
        await asyncio.sleep(0)
        return describe(transport), behaviour(transport, protocol)


async def observe_server() -> tuple[dict[str, Any], dict[str, Any]]:
    async with open_server("tcp") as server:
        loop = asyncio.get_running_loop()
        seen = {
            "is_serving": server.is_serving(),
            "get_loop": server.get_loop() is loop,
            "sockets": [type(s).__name__ for s in server.sockets],
        }
        names = describe(server)
        server.close()
        seen["is_serving after close"] = server.is_serving()
        seen["sockets after close"] = len(server.sockets)
        return names, seen


def on_both(make: Callable[[], Any]) -> dict[str, Any]:
    """Run `make()` on a new loop of each kind: {loop name: its result}."""
    results = {}
    for name, factory in LOOPS.items():
        loop = factory()
        errors: list[Any] = []
        loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
        try:
            results[name] = loop.run_until_complete(asyncio.wait_for(make(), 30))
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()
        assert errors == [], (name, errors)
    return results


def compare_names(asyncio_names: dict[str, Any], tidal_names: dict[str, Any]) -> None:
    missing = sorted(set(asyncio_names) - set(tidal_names))
    assert missing == [], f"asyncio has, tidal lacks: {missing}"
    different = {
        name: (asyncio_names[name], tidal_names[name])
        for name in asyncio_names
        if asyncio_names[name] != tidal_names[name]
    }
    assert different == {}


@pytest.mark.parametrize("kind", KINDS)
def test_transport_names_and_behaviour(kind: str) -> None:
    results = on_both(lambda: observe(kind))
    (a_names, a_seen), (t_names, t_seen) = results["asyncio"], results["tidal"]
    compare_names(a_names, t_names)
    assert t_seen == a_seen


def test_server_names_and_behaviour() -> None:
    results = on_both(observe_server)
    (a_names, a_seen), (t_names, t_seen) = results["asyncio"], results["tidal"]
    compare_names(a_names, t_names)
    assert t_seen == a_seen


def test_stdin_pause_reading_raises_not_implemented(loop: Any, arun: Any) -> None:
    """The named case: a child's stdin transport is a full Transport whose read half raises."""

    async def main() -> None:
        async with open_kind("subprocess_stdin") as (transport, _protocol, _peers):
            assert isinstance(transport, asyncio.Transport)
            with pytest.raises(NotImplementedError):
                transport.pause_reading()
            with pytest.raises(NotImplementedError):
                transport.resume_reading()
            with pytest.raises(NotImplementedError):
                transport.is_reading()

    arun(main())


# Not "unix": tidal's Unix transport is the TCP one's class, and asyncio's
# 3.11 server leaves its accepted Unix transport for the GC to warn about.
@pytest.mark.parametrize("kind", [k for k in KINDS if k != "unix"])
def test_transport_method_can_be_patched_on_the_instance(kind: str, loop: Any, arun: Any) -> None:
    """asyncio's transports keep a __dict__: tests patch a method on one transport
    (mock.patch.object(transport, "write", ...), as aiohttp's own tests do)."""

    async def main() -> None:
        async with open_kind(kind) as (transport, _protocol, _peers):
            with mock.patch.object(transport, "get_extra_info", return_value="patched"):
                assert transport.get_extra_info("peername") == "patched"
            assert transport.get_extra_info("no such name") is None
            transport.user_attribute = 1
            assert transport.user_attribute == 1

    arun(main())
