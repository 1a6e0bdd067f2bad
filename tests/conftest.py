"""Shared fixtures: every behaviour runs on asyncio's loop and on tidal's.

``loop`` is parametrized over both; a test passes only if both loops do the
same thing.  Any call to the loop's exception handler fails the test at
teardown unless the test consumed it from ``loop_errors`` (tests that
expect an error assert on it and clear the list).
"""

from __future__ import annotations

import asyncio
import gc
import shutil
import socket
import tempfile
from collections.abc import Iterator
from typing import Any, Callable, Coroutine

import pytest

import tidal


def _ipv6_loopback_works() -> bool:
    """socket.has_ipv6 says the build supports it; binding ::1 says the host has it."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


HAS_IPV6 = _ipv6_loopback_works()
needs_ipv6 = pytest.mark.skipif(not HAS_IPV6, reason="no IPv6 loopback")
# (family, loopback address) for tests that run over both IP families.
INET_HOSTS = [
    pytest.param((socket.AF_INET, "127.0.0.1"), id="ipv4"),
    pytest.param((socket.AF_INET6, "::1"), id="ipv6", marks=needs_ipv6),
]


@pytest.fixture
def sockdir() -> Iterator[str]:
    """A short directory for Unix socket paths (sun_path is ~108 bytes)."""
    d = tempfile.mkdtemp(prefix="tsk")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def socks() -> Iterator[list[socket.socket]]:
    """Every socket a test registers here is closed at teardown."""
    made: list[socket.socket] = []
    yield made
    for s in made:
        s.close()


LOOP_FACTORIES: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "tidal": tidal.new_event_loop,
}


def pytest_collection_finish(session: pytest.Session) -> None:
    # Every test ends with gc.collect() (so a leaked transport's
    # ResourceWarning fails the test that leaked it).  A full collection walks
    # every object alive, and after collection that is all of pytest, aiohttp,
    # CPython's test_asyncio, ...: freezing them once leaves each collection
    # only what the tests themselves create.
    gc.collect()
    gc.freeze()


@pytest.fixture(params=list(LOOP_FACTORIES))
def loop_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def loop_factory(loop_name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    return LOOP_FACTORIES[loop_name]


@pytest.fixture
def loop_errors() -> list[dict[str, Any]]:
    """Contexts passed to the loop's exception handler during the test."""
    return []


@pytest.fixture
def loop(loop_factory: Callable[[], asyncio.AbstractEventLoop], loop_errors: list[dict[str, Any]]):
    lp = loop_factory()
    lp.set_exception_handler(lambda _loop, ctx: loop_errors.append(ctx))
    asyncio.set_event_loop(lp)
    try:
        yield lp
    finally:
        try:
            if not lp.is_closed():
                lp.run_until_complete(lp.shutdown_asyncgens())
                lp.run_until_complete(lp.shutdown_default_executor())
        finally:
            lp.close()
            asyncio.set_event_loop(None)
            gc.collect()
    if loop_errors:
        msgs = "\n".join(
            str(ctx.get("message")) + " " + repr(ctx.get("exception")) for ctx in loop_errors
        )
        pytest.fail(f"unexpected call(s) to the exception handler:\n{msgs}")


def run(
    loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], timeout: float = 30
) -> Any:
    """Run `coro` to completion on `loop`, failing (not hanging) after `timeout` s."""
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


@pytest.fixture
def arun(loop: asyncio.AbstractEventLoop) -> Callable[..., Any]:
    """``arun(coro)`` runs a coroutine on the test's loop with a timeout."""
    return lambda coro, timeout=30: run(loop, coro, timeout)


def raised_without_cycles(
    loop: asyncio.AbstractEventLoop,
    make_coro: Callable[[], Any],
    expected: type[BaseException] | tuple[type[BaseException], ...] = OSError,
    *,
    check: bool = True,
) -> BaseException:
    """Run ``make_coro()`` with the cyclic GC off; return the exception it raised.

    Asserts that nothing but the caller references that exception (no frame
    of the loop's kept it in a cycle through its traceback): with the
    collector off, ``gc.get_referrers(exc)`` is empty, which is what CPython's
    test_asyncio and aiohttp-style suites check.  The exception is caught in
    a coroutine and handed over in a list, not as a task's result (3.12's
    run_until_complete frame keeps the task), so the test adds nothing.
    ``check=False`` runs the path without the assertion: for the paths where
    asyncio's own loop makes such a cycle (tests pass it for asyncio's loop
    only, and say so).
    """

    caught: list[BaseException] = []

    async def catch() -> None:
        try:
            await make_coro()
        except expected as exc:
            caught.append(exc)
            return
        raise AssertionError("no exception was raised")

    gc.collect()
    gc.disable()
    try:
        run(loop, catch())
        exc = caught.pop()
        referrers: list[Any] = []
        # A reference that is not a cycle goes away: callbacks the run left
        # queued (a future's done-callbacks) run, an executor's worker drops
        # its work item.  A cycle stays, with the collector off.
        for _ in range(20 if check else 0):
            run(loop, asyncio.sleep(0.005))
            referrers = gc.get_referrers(exc)
            if not referrers:
                break
        if check:
            assert referrers == [], f"{exc!r} is referenced by {referrers!r}"
        return exc
    finally:
        gc.enable()
