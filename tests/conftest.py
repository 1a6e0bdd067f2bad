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
from typing import Any, Callable

import pytest

import tidal
from helpers import run


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


@pytest.fixture
def arun(loop: asyncio.AbstractEventLoop) -> Callable[..., Any]:
    """``arun(coro)`` runs a coroutine on the test's loop with a timeout."""
    return lambda coro, timeout=30: run(loop, coro, timeout)
