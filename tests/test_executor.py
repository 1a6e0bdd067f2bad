"""run_in_executor and the default executor, on asyncio's loop and on tidal's."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import sys
import threading
import time

import pytest

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="default")


def thread_name(*args):
    return threading.current_thread().name, args


def test_run_in_executor_default(loop, arun):
    async def main():
        fut = loop.run_in_executor(None, thread_name, 1, "two")
        assert isinstance(fut, asyncio.Future)
        return await fut

    name, args = arun(main())
    assert name.startswith("asyncio_")
    assert name != threading.current_thread().name
    assert args == (1, "two")


def test_default_executor_is_made_once_and_reused(loop, arun):
    async def main():
        await loop.run_in_executor(None, thread_name)
        first = loop._default_executor
        await loop.run_in_executor(None, thread_name)
        return first, loop._default_executor

    first, second = arun(main())
    assert isinstance(first, concurrent.futures.ThreadPoolExecutor)
    assert first is second


def test_run_in_executor_exception(loop, arun):
    def fail():
        raise KeyError("from thread")

    async def main():
        with pytest.raises(KeyError, match="from thread"):
            await loop.run_in_executor(None, fail)

    arun(main())


def test_run_in_explicit_executor(loop, arun):
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="mine") as ex:

        async def main():
            return await loop.run_in_executor(ex, thread_name)

        name, _ = arun(main())
    assert name.startswith("mine")
    assert loop._default_executor is None


def test_executor_does_not_inherit_context(loop, arun):
    async def main():
        VAR.set("task value")
        return await loop.run_in_executor(None, VAR.get)

    # asyncio does not copy the context into the worker thread.
    assert arun(main()) == "default"


def test_set_default_executor(loop, arun):
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="custom") as ex:
        loop.set_default_executor(ex)

        async def main():
            return await loop.run_in_executor(None, thread_name)

        name, _ = arun(main())
        assert name.startswith("custom")
        assert loop._default_executor is ex
        arun(loop.shutdown_default_executor())


def test_set_default_executor_type_error(loop):
    class NotAThreadPool(concurrent.futures.Executor):
        pass

    msg = "^executor must be ThreadPoolExecutor instance$"
    with pytest.raises(TypeError, match=msg):
        loop.set_default_executor(NotAThreadPool())
    with pytest.raises(TypeError, match=msg):
        loop.set_default_executor(None)


def test_shutdown_default_executor_waits_and_refuses_more(loop, arun):
    done = []

    def slow():
        time.sleep(0.05)
        done.append(True)

    async def main():
        fut = loop.run_in_executor(None, slow)
        await loop.shutdown_default_executor()
        assert done == [True]
        await fut
        with pytest.raises(RuntimeError, match="^Executor shutdown has been called$"):
            loop.run_in_executor(None, thread_name)
        # An explicit executor is still fine.
        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            return await loop.run_in_executor(ex, thread_name, "ok")

    assert arun(main())[1] == ("ok",)


def test_shutdown_default_executor_without_one(loop, arun):
    arun(loop.shutdown_default_executor())
    assert loop._default_executor is None
    with pytest.raises(RuntimeError, match="^Executor shutdown has been called$"):
        loop.run_in_executor(None, thread_name)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="timeout= is new in 3.12")
def test_shutdown_default_executor_timeout(loop, arun, loop_name):
    if loop_name == "asyncio" and sys.version_info < (3, 12, 3):
        # Early 3.12 only bounded the final join, after waiting for the
        # executor in full (CPython gh-111358); tidal has the fixed timeout.
        pytest.skip("asyncio before 3.12.3 ignores the timeout")
    release = threading.Event()
    finished = threading.Event()

    def blocked():
        release.wait(5)
        finished.set()

    async def main():
        loop.run_in_executor(None, blocked)
        msg = r"^The executor did not finishing joining its threads within 0\.05 seconds\.$"
        t0 = time.monotonic()
        with pytest.warns(RuntimeWarning, match=msg):
            await loop.shutdown_default_executor(timeout=0.05)
        assert time.monotonic() - t0 < 1.0
        release.set()
        assert finished.wait(5)
        # Let the helper thread's late wake-up reach the loop before it closes.
        await asyncio.sleep(0.05)

    arun(main())


def test_cancelling_a_queued_job(loop, arun):
    release = threading.Event()
    ran = []
    with concurrent.futures.ThreadPoolExecutor(1) as ex:

        async def main():
            first = loop.run_in_executor(ex, release.wait, 5)
            second = loop.run_in_executor(ex, ran.append, "second")
            second.cancel()
            await asyncio.sleep(0)
            release.set()
            await first
            with pytest.raises(asyncio.CancelledError):
                await second

        arun(main())
    assert ran == []
