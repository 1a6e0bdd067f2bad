"""Helpers the test modules import (``from helpers import ...``).

Not in conftest.py: ``tests/`` has two of those (this one and
``tests/conformance/``'s), and ``import conftest`` finds whichever pytest
imported first; a plain module has one name.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import os
import socket
import subprocess
import sys
from types import ModuleType
from typing import Any, Callable, Coroutine

import pytest


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


def run(
    loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], timeout: float = 30
) -> Any:
    """Run `coro` to completion on `loop`, failing (not hanging) after `timeout` s."""
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


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


# -- the distributed-systems course (examples/distributed) --------------------

COURSE_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "distributed"
)


def course_program(name: str) -> ModuleType:
    """A program of examples/distributed, imported as its own script would be
    (its directory on sys.path, so that ``import _launch`` works)."""
    if COURSE_DIR not in sys.path:
        sys.path.insert(0, COURSE_DIR)
    return importlib.import_module(name)


def _start_course(program: str, *args: str, hash_seed: str = "0") -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, os.path.join(COURSE_DIR, program + ".py"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONHASHSEED=hash_seed),
    )


def _course_outputs(*started: subprocess.Popen[str]) -> list[str]:
    """The stdout of each run started, once all have ended; fails on a
    non-zero exit or anything written to stderr (each run: 120 s at most)."""
    try:
        outputs = []
        for process in started:
            out, err = process.communicate(timeout=120)
            assert process.returncode == 0 and not err, f"{process.args}: {err}"
            outputs.append(out)
        return outputs
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
                process.communicate()


def run_course_real(program: str, *args: str) -> dict[str, str]:
    """``program --real *args`` on tidal's loop and on asyncio's, as two
    processes side by side (a real run mostly sleeps): {loop: stdout}."""
    loops = ("tidal", "asyncio")
    started = [_start_course(program, "--real", *args, "--loop", loop) for loop in loops]
    return dict(zip(loops, _course_outputs(*started)))


def course_sim_output(program: str, *args: str) -> str:
    """``program --sim *args`` run twice at once, under two hash seeds: the
    output, which must be the same bytes both times."""
    first, second = _course_outputs(
        *(_start_course(program, "--sim", *args, hash_seed=seed) for seed in ("1", "2"))
    )
    assert first == second, f"two runs of {program} --sim {' '.join(args)} differ"
    return first
