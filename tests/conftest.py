"""Shared fixtures: every behaviour runs on asyncio's loop and on tidal's.

``loop`` is parametrized over both; a test passes only if both loops do the
same thing.  Any call to the loop's exception handler fails the test at
teardown unless the test consumed it from ``loop_errors`` (tests that
expect an error assert on it and clear the list).

``blockbuster`` (autouse) runs every test with blockbuster active, as
anyio's suite does: a blocking call (``os.read`` on a blocking fd,
``time.sleep``, a blocking socket call, a thread join, ...) made on a thread
while an event loop runs there raises ``BlockingError``.  It watches calls
from every module, not only from tidal's (anyio passes its own package):
compiled, tidal's modules push no Python frame for blockbuster to find on
the stack, so such a filter would see only the interpreted build, and a
callback the compiled loop calls directly would have no frame of tidal's
at all.  Let through: what blockbuster lets asyncio's loop do, the same
calls made by tidal (`_LOOP_PARITY`), and calls a test's own coroutine
makes (its blocking peer sockets, its files): `_made_by_a_test_step`.
Conftest.py in tests/conformance turns it off, and says why.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from typing import Any, Callable

import pytest
from blockbuster import BlockBuster

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


@pytest.hookimpl(trylast=True)
def pytest_runtest_logfinish(nodeid: str, location: tuple[str, int | None, str]) -> None:
    # And again after every test: what outlives a test (pytest's reports, a
    # session fixture, CPython's test classes) would otherwise be walked by
    # every later collection, the run's thousands of gc.collect() calls
    # growing with it (measured: 222 s of CPU for the compiled run, 144 s with
    # this; CPython's test_task_del_collect took 2-3 s instead of 0.02).  The
    # test's own garbage is collected first, so none of it is frozen: a
    # leaked transport still warns here, and pytest reports it.
    gc.collect()
    gc.freeze()


_TESTS_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
# Code that runs on the loop's behalf: a blocking call made from here is the
# loop's, whoever's coroutine asked for it.
_LOOP_DIRS = tuple(
    os.path.dirname(os.path.abspath(module.__file__)) + os.sep for module in (tidal, asyncio)
)
_STEP_FLAGS = inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR | inspect.CO_GENERATOR

# Calls tidal makes on the loop thread because asyncio's loop makes the same
# ones there (blockbuster allows asyncio's): the zero-copy sendfile (the
# kernel reads the file into the socket), the stat/unlink of a stale Unix
# socket path before bind, and (3.13) of the server's own path at close.  (Compiled modules have no frames to name here:
# their calls are matched in the interpreted run.)
# A simulated host's os.stat/unlink/remove go through tidal.sim's patch
# (its own socket files are simulated): on any other path, the patch passes
# the program's own call on.
_HOST_OS_CALL = ("tidal/sim/_unix.py", {"host_os_call"})
_LOOP_PARITY = {
    "os.sendfile": [("tidal/_sendfile.py", {"pump"})],
    "os.stat": [
        # create_unix_server, and on 3.13 Server.close's cleanup of its path
        ("tidal/_server.py", {"create_unix_server", "_stop_serving"}),
        ("tidal/transports/_datagram.py", {"_remove_stale_unix_socket"}),
        ("asyncio/base_events.py", {"create_datagram_endpoint"}),
        # uvicorn's own, before it calls create_unix_server (tests/thirdparty)
        ("uvicorn/server.py", {"startup"}),
        _HOST_OS_CALL,
    ],
    "os.remove": [
        _HOST_OS_CALL,
        ("tidal/_server.py", {"create_unix_server"}),
        ("tidal/transports/_datagram.py", {"_remove_stale_unix_socket"}),
        ("asyncio/unix_events.py", {"create_unix_server"}),
        ("asyncio/base_events.py", {"create_datagram_endpoint"}),
    ],
    "os.unlink": [("tidal/_server.py", {"_stop_serving"}), _HOST_OS_CALL],
    "threading.Lock.acquire": [
        # The simulation's loop waits for each executor job (its result comes
        # at the virtual time of the call: docs/simulation.md), and joins the
        # executor's idle threads itself (a helper thread would wake it from
        # outside).
        ("tidal/sim/_loop.py", {"submit", "shutdown_default_executor"}),
    ],
}

# Test helpers that block on purpose and call nothing of the loop's, when
# the loop runs them as callbacks (a TLS context made in a protocol method,
# with trustme's temporary files): for every function blockbuster watches.
_TEST_HELPERS = [("tests/test_tls.py", {"server_ctx"})]


def _made_by_a_test_step() -> bool:
    """Whether the blocking call was made by a test's own coroutine (or generator)
    step, directly or through helpers that are neither tidal's nor asyncio's.

    The nearest frame of tidal or asyncio on the way out means the loop made
    the call: not allowed.  (Compiled, tidal's modules have no frames: the
    interpreted run, which ``make test`` also does, is where their calls are
    seen; the calls of the interpreted modules are seen in both.)
    """
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if code.co_filename.startswith(_LOOP_DIRS):
            return False
        if code.co_filename.startswith(_TESTS_DIR) and code.co_flags & _STEP_FLAGS:
            return True
        frame = frame.f_back
    return False


def _or_made_by_a_test_step(predicate: Callable[..., bool]) -> Callable[..., bool]:
    def can_block(*args: Any, **kwargs: Any) -> bool:
        return predicate(*args, **kwargs) or _made_by_a_test_step()

    return can_block


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    """Fail any blocking call the loop makes on its own thread."""
    bb = BlockBuster()
    for name, function in bb.functions.items():
        function.can_block_predicate = _or_made_by_a_test_step(function.can_block_predicate)
        for filename, functions in _LOOP_PARITY.get(name, []) + _TEST_HELPERS:
            function.can_block_in(filename, functions)
    bb.activate()
    try:
        yield bb
    finally:
        bb.deactivate()


@pytest.fixture
def blocking_on_purpose(blockbuster: BlockBuster) -> None:
    """For the few tests whose point is a callback that blocks (slow-callback
    warnings, a wake-up during a blocking callback, a blocking socket handed
    to the loop): blockbuster off for that test only."""
    blockbuster.deactivate()


def _loops_to_run() -> list[str]:
    """The loops ``loop`` runs on: both, or those TIDAL_TEST_LOOPS names.

    make test's interpreted run (TIDAL_NO_EXT=1) sets it to "tidal": on the
    same Python, asyncio's half of every test is the one the compiled run
    makes beside it (asyncio's loop runs no compiled tidal code), so running
    it twice would only spend CPU.  A name it does not know is an error, never
    a run with fewer tests."""
    wanted = os.environ.get("TIDAL_TEST_LOOPS", "").strip()
    if not wanted:
        return list(LOOP_FACTORIES)
    names = [name.strip() for name in wanted.split(",")]
    unknown = sorted(set(names) - set(LOOP_FACTORIES))
    if unknown or not names:
        raise pytest.UsageError(f"TIDAL_TEST_LOOPS={wanted!r}: loops are {list(LOOP_FACTORIES)}")
    return [name for name in LOOP_FACTORIES if name in names]


@pytest.fixture(params=_loops_to_run())
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
