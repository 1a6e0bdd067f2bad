"""tidal.run, asyncio.Runner(loop_factory=), asyncio.run(loop_factory=) and the policy.

Where a test is parametrized over the loop, the asyncio side uses asyncio's
own entry point (asyncio.run, the default policy) so both are held to the
same behaviour.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import threading
import time
import warnings
from typing import Any

import pytest

import tidal

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="default")

LOOP_CLASS = {"asyncio": asyncio.SelectorEventLoop, "tidal": tidal.EventLoop}
RUN = {"asyncio": asyncio.run, "tidal": tidal.run}


@pytest.fixture
def run_fn(loop_name):
    return RUN[loop_name]


async def running_loop():
    return asyncio.get_running_loop()


def test_run_returns_result_on_expected_loop(run_fn, loop_name):
    lp = run_fn(running_loop())
    assert isinstance(lp, LOOP_CLASS[loop_name])
    assert lp.is_closed()
    assert not lp.get_debug()


def test_run_propagates_exceptions(run_fn):
    async def main():
        await asyncio.sleep(0)
        raise ValueError("from main")

    with pytest.raises(ValueError, match="^from main$"):
        run_fn(main())


def test_run_propagates_cancellation(run_fn):
    async def main():
        asyncio.current_task().cancel()
        await asyncio.sleep(0)

    with pytest.raises(asyncio.CancelledError):
        run_fn(main())


def test_run_debug(run_fn):
    async def main():
        return asyncio.get_running_loop().get_debug()

    assert run_fn(main(), debug=True) is True
    assert run_fn(main(), debug=False) is False


def test_run_cleans_up(run_fn):
    events = []

    async def agen():
        try:
            yield 1
            yield 2
        finally:
            events.append("agen closed")

    async def background():
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            events.append("background cancelled")
            raise

    async def main():
        g = agen()
        await g.__anext__()
        main.g = g  # kept alive: only shutdown_asyncgens can close it
        asyncio.get_running_loop().create_task(background())
        await asyncio.sleep(0)
        await asyncio.get_running_loop().run_in_executor(None, lambda: None)
        return asyncio.get_running_loop()

    lp = run_fn(main())
    assert events == ["background cancelled", "agen closed"]
    assert lp.is_closed()
    assert lp._default_executor is None
    del main.g


def test_run_refused_inside_running_loop(loop, arun, loop_name):
    async def main():
        coro = asyncio.sleep(0)
        with pytest.raises(
            RuntimeError,
            match=rf"^{loop_name}\.run\(\) cannot be called from a running event loop$",
        ):
            RUN[loop_name](coro)
        coro.close()
        # Refused before the argument is looked at, as asyncio.run does.
        with pytest.raises(RuntimeError):
            RUN[loop_name](42)

    arun(main())


def test_run_rejects_non_coroutine(run_fn):
    with pytest.raises(ValueError, match="^a coroutine was expected, got 42$"):
        run_fn(42)


def test_run_in_a_thread(run_fn, loop_name):
    # No signal work outside the main thread: the loop must still run there.
    result = []

    async def main():
        await asyncio.sleep(0.01)
        return type(asyncio.get_running_loop())

    thread = threading.Thread(target=lambda: result.append(run_fn(main())))
    thread.start()
    thread.join(10)
    assert result and issubclass(result[0], LOOP_CLASS[loop_name])


def test_runner_with_loop_factory(loop_factory, loop_name):
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        lp = runner.get_loop()
        assert isinstance(lp, LOOP_CLASS[loop_name])
        assert runner.run(asyncio.sleep(0, "one")) == "one"
        # Several runs share the one loop.
        assert runner.run(running_loop()) is lp
        ctx = contextvars.Context()
        ctx.run(VAR.set, "runner ctx")

        async def read():
            return VAR.get()

        assert runner.run(read(), context=ctx) == "runner ctx"
    assert lp.is_closed()
    with pytest.raises(RuntimeError, match="^Runner is closed$"):
        runner.get_loop()


def test_runner_debug(loop_factory):
    with asyncio.Runner(debug=True, loop_factory=loop_factory) as runner:
        assert runner.get_loop().get_debug() is True

        async def main():
            return sys.get_coroutine_origin_tracking_depth()

        assert runner.run(main()) > 0


@pytest.mark.skipif(sys.version_info < (3, 12), reason="asyncio.run(loop_factory=) is new in 3.12")
def test_asyncio_run_with_loop_factory(loop_factory, loop_name):
    lp = asyncio.run(running_loop(), loop_factory=loop_factory)
    assert isinstance(lp, LOOP_CLASS[loop_name])
    assert lp.is_closed()


@pytest.mark.skipif(sys.version_info < (3, 12), reason="asyncio.run(loop_factory=) is new in 3.12")
def test_asyncio_run_with_tidal_debug():
    async def main():
        return asyncio.get_running_loop().get_debug()

    assert asyncio.run(main(), debug=True, loop_factory=tidal.new_event_loop) is True


def test_new_event_loop_factory():
    lp = tidal.new_event_loop()
    try:
        assert type(lp) is tidal.EventLoop
        assert isinstance(lp, asyncio.AbstractEventLoop)
    finally:
        lp.close()


# ----------------------------------------------------------------------
# Event loop policy
# ----------------------------------------------------------------------


@pytest.fixture
def policy(loop_name):
    pol = tidal.EventLoopPolicy() if loop_name == "tidal" else asyncio.DefaultEventLoopPolicy()
    saved = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(pol)
    try:
        yield pol
    finally:
        current = pol._local._loop
        if current is not None and not current.is_closed():
            current.close()
        asyncio.set_event_loop_policy(saved)


def test_policy_new_event_loop(policy, loop_name):
    for lp in (policy.new_event_loop(), asyncio.new_event_loop()):
        try:
            assert isinstance(lp, LOOP_CLASS[loop_name])
        finally:
            lp.close()


def test_policy_set_and_get_event_loop(policy, loop_name):
    lp = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(lp)
        assert policy.get_event_loop() is lp
        assert asyncio.get_event_loop() is lp
        asyncio.set_event_loop(None)
    finally:
        lp.close()


def test_policy_get_event_loop_creates_one_in_main_thread(policy, loop_name):
    with warnings.catch_warnings():
        # 3.12+ deprecates creating the loop implicitly; the result is the same.
        warnings.simplefilter("ignore", DeprecationWarning)
        lp = policy.get_event_loop()
        assert policy.get_event_loop() is lp
    assert isinstance(lp, LOOP_CLASS[loop_name])


def test_asyncio_run_uses_the_policy(policy, loop_name):
    lp = asyncio.run(running_loop())
    assert isinstance(lp, LOOP_CLASS[loop_name])
    assert lp.is_closed()


def test_policy_get_event_loop_in_other_thread_raises(policy):
    errors = []

    def worker():
        try:
            policy.get_event_loop()
        except RuntimeError as exc:
            errors.append(str(exc))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    # Only the main thread gets a loop made for it.
    assert len(errors) == 1
    assert errors[0].startswith("There is no current event loop in thread ")


# ----------------------------------------------------------------------
# Threads: none of the loop's outlives the run that made it
# ----------------------------------------------------------------------


def _blocking() -> int:
    time.sleep(0.005)
    return 1


async def _uses_threads(loop_factory: Any) -> None:
    """Everything that makes a thread: the default executor, DNS, a child, an anyio portal."""
    import anyio.from_thread

    loop = asyncio.get_running_loop()
    await asyncio.gather(*[asyncio.to_thread(_blocking) for _ in range(8)])
    await loop.run_in_executor(None, _blocking)
    await loop.getaddrinfo("localhost", 80)
    await loop.getnameinfo(("127.0.0.1", 80))
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await proc.wait()

    def portal_in_thread() -> int:
        options = {"loop_factory": loop_factory}
        with anyio.from_thread.start_blocking_portal("asyncio", options) as portal:
            return portal.call(asyncio.to_thread, _blocking)  # type: ignore[arg-type]

    assert await asyncio.to_thread(portal_in_thread) == 1


def test_run_leaves_the_threads_it_found(loop_factory: Any) -> None:
    pytest.importorskip("anyio")
    before = set(threading.enumerate())
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_uses_threads(loop_factory))
    assert set(threading.enumerate()) == before
    if sys.version_info >= (3, 12):
        asyncio.run(_uses_threads(loop_factory), loop_factory=loop_factory)
        assert set(threading.enumerate()) == before


@pytest.mark.usefixtures("blocking_on_purpose")  # that join blocks, as asyncio's does
def test_shutdown_default_executor_cancelled(loop_factory: Any) -> None:
    """Cancelled while a worker is busy: before 3.13 the helper thread is still joined."""
    release = threading.Event()
    timer = threading.Timer(0.3, release.set)

    async def main() -> bool:
        loop = asyncio.get_running_loop()
        worker = loop.run_in_executor(None, release.wait)
        shutdown = asyncio.ensure_future(loop.shutdown_default_executor())
        await asyncio.sleep(0.05)
        timer.start()
        shutdown.cancel()
        with pytest.raises(asyncio.CancelledError):
            await shutdown
        helper_alive = any("_do_shutdown" in t.name for t in threading.enumerate())
        release.set()
        await worker
        return helper_alive

    loop = loop_factory()
    try:
        assert loop.run_until_complete(main()) is (sys.version_info >= (3, 13))
    finally:
        loop.close()
        timer.cancel()
        for thread in threading.enumerate():
            if "_do_shutdown" in thread.name or thread.name.startswith("asyncio_"):
                thread.join(5)
