"""Plain generators as tasks (tidal._gen), each behaviour on asyncio's loop and on tidal's."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import sys
import traceback
import types
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from tidal._gen import generator_task, spawn, task_function

# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def exception_calls() -> list[dict[str, Any]]:
    """Every call to the loop's exception handler; a test that expects some removes them."""
    return []


@pytest.fixture(params=["asyncio", "tidal"])
def loop(
    request: pytest.FixtureRequest, exception_calls: list[dict[str, Any]]
) -> Iterator[asyncio.AbstractEventLoop]:
    if request.param == "asyncio":
        new_loop = asyncio.new_event_loop()
    else:
        import tidal

        new_loop = tidal.new_event_loop()
    new_loop.set_exception_handler(lambda _loop, context: exception_calls.append(context))
    try:
        yield new_loop
        gc.collect()  # a pending Task destroyed by the test reports here, not in a later test
        new_loop.run_until_complete(new_loop.shutdown_asyncgens())
    finally:
        new_loop.close()
    assert exception_calls == [], "loop exception handler called unexpectedly"


def run(loop: asyncio.AbstractEventLoop, aw: Any) -> Any:
    return loop.run_until_complete(aw)


async def turns(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


# -- results -------------------------------------------------------------------------------------


def test_return_value_without_yielding(loop: asyncio.AbstractEventLoop) -> None:
    def gen() -> Generator[Any, Any, int]:
        return 42
        yield  # makes it a generator

    assert run(loop, generator_task(gen())) == 42


def test_yield_future_resumes_with_its_result(loop: asyncio.AbstractEventLoop) -> None:
    def gen() -> Generator[Any, Any, tuple[str, str]]:
        fut = loop.create_future()
        loop.call_soon(fut.set_result, "done")
        first = yield fut
        second = yield fut  # already done: resumes at once
        return first, second

    assert run(loop, generator_task(gen())) == ("done", "done")


def test_yield_coroutine_task_and_custom_awaitable(loop: asyncio.AbstractEventLoop) -> None:
    class Awaitable:
        def __await__(self) -> Generator[Any, Any, str]:
            yield from asyncio.sleep(0).__await__()
            return "custom"

    async def coro(x: int) -> int:
        await asyncio.sleep(0)
        return x + 1

    @types.coroutine
    def old_style() -> Generator[Any, Any, str]:
        yield from asyncio.sleep(0)
        return "old"

    def gen() -> Generator[Any, Any, list[Any]]:
        a = yield coro(1)
        b = yield asyncio.ensure_future(coro(10))
        c = yield Awaitable()
        d = yield old_style()
        e = yield asyncio.sleep(0.001, "slept")
        return [a, b, c, d, e]

    assert run(loop, generator_task(gen())) == [2, 11, "custom", "old", "slept"]


def test_yield_subgenerator_returns_its_value(loop: asyncio.AbstractEventLoop) -> None:
    def leaf(x: int) -> Generator[Any, Any, int]:
        yield
        yield asyncio.sleep(0)
        return x * 2

    def middle(x: int) -> Generator[Any, Any, int]:
        doubled = yield leaf(x)
        return (yield leaf(doubled))

    def nested(depth: int) -> Generator[Any, Any, int]:
        if depth == 0:
            return 0
        return 1 + (yield nested(depth - 1))

    def top() -> Generator[Any, Any, tuple[int, int]]:
        return (yield middle(3)), (yield nested(200))

    assert run(loop, generator_task(top())) == (12, 200)


# -- exceptions ----------------------------------------------------------------------------------


def test_exception_thrown_in_at_the_yield_and_caught(loop: asyncio.AbstractEventLoop) -> None:
    async def failing() -> None:
        await asyncio.sleep(0)
        raise ValueError("from coroutine")

    def failing_gen() -> Generator[Any, Any, None]:
        yield
        raise KeyError("from sub-generator")

    def gen() -> Generator[Any, Any, list[str]]:
        seen = []
        fut = loop.create_future()
        loop.call_soon(fut.set_exception, OSError("from future"))
        for awaitable in (failing(), fut, failing_gen()):
            try:
                yield awaitable
            except (ValueError, OSError, KeyError) as exc:
                seen.append(str(exc))
        return seen

    assert run(loop, generator_task(gen())) == [
        "from coroutine",
        "from future",
        "'from sub-generator'",
    ]


def test_uncaught_exception_fails_task_with_useful_traceback(
    loop: asyncio.AbstractEventLoop,
) -> None:
    async def deep_coroutine() -> None:
        await asyncio.sleep(0)
        raise ValueError("deep")

    def sub_gen() -> Generator[Any, Any, None]:
        yield deep_coroutine()

    def outer_gen() -> Generator[Any, Any, None]:
        yield sub_gen()

    async def main() -> None:
        task = spawn(outer_gen)
        with pytest.raises(ValueError, match="deep") as info:
            await task
        names = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
        for expected in ("outer_gen", "sub_gen", "deep_coroutine"):
            assert expected in names
        # generator frames appear outermost first, as for coroutines
        assert names.index("outer_gen") < names.index("sub_gen") < names.index("deep_coroutine")
        assert task.exception() is info.value

    run(loop, main())


def test_exception_raised_after_handling_has_no_stale_context(
    loop: asyncio.AbstractEventLoop,
) -> None:
    async def failing() -> None:
        raise ValueError("handled")

    def gen() -> Generator[Any, Any, None]:
        try:
            yield failing()
        except ValueError:
            pass
        raise KeyError("unrelated")

    with pytest.raises(KeyError) as info:
        run(loop, generator_task(gen()))
    assert info.value.__context__ is None


def test_stop_iteration_inside_generator_becomes_runtime_error(
    loop: asyncio.AbstractEventLoop,
) -> None:
    def gen() -> Generator[Any, Any, None]:
        yield
        next(iter(()))  # a stray StopIteration must not look like "return None"

    with pytest.raises(RuntimeError, match="StopIteration") as info:
        run(loop, generator_task(gen()))
    assert isinstance(info.value.__cause__, StopIteration)


def test_return_of_stop_iteration_instance_is_a_plain_value(
    loop: asyncio.AbstractEventLoop,
) -> None:
    def gen() -> Generator[Any, Any, StopIteration]:
        yield
        return StopIteration("a value like any other")

    result = run(loop, generator_task(gen()))
    assert isinstance(result, StopIteration)


# -- scheduling ----------------------------------------------------------------------------------


def test_bare_yield_interleaves_like_sleep_zero(loop: asyncio.AbstractEventLoop) -> None:
    order: list[tuple[str, int]] = []

    def gen(name: str) -> Generator[None, None, None]:
        for i in range(3):
            order.append((name, i))
            yield

    async def coro(name: str) -> None:
        for i in range(3):
            order.append((name, i))
            await asyncio.sleep(0)

    async def main() -> list[tuple[str, int]]:
        await asyncio.gather(spawn(gen, "a"), spawn(gen, "b"))
        generators = order[:]
        order.clear()
        await asyncio.gather(coro("a"), coro("b"))
        assert order == generators  # the same schedule as the coroutine spelling
        return generators

    assert run(loop, main()) == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]


def test_generator_and_coroutine_tasks_interleave(loop: asyncio.AbstractEventLoop) -> None:
    order: list[str] = []

    def gen() -> Generator[None, None, None]:
        for _ in range(2):
            order.append("gen")
            yield

    async def coro() -> None:
        for _ in range(2):
            order.append("coro")
            await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(spawn(gen()), coro())

    run(loop, main())
    assert order == ["gen", "coro", "gen", "coro"]


def test_current_task_inside_generator_and_subgenerator(loop: asyncio.AbstractEventLoop) -> None:
    def sub() -> Generator[None, None, asyncio.Task[Any] | None]:
        yield
        return asyncio.current_task()

    def gen() -> Generator[Any, Any, tuple[Any, ...]]:
        first = asyncio.current_task()
        yield asyncio.sleep(0)
        return first, asyncio.current_task(), (yield sub())

    async def main() -> None:
        task = spawn(gen(), name="worker")
        assert task.get_name() == "worker"
        assert await task == (task, task, task)

    run(loop, main())


def test_contextvars_behave_as_in_tasks(loop: asyncio.AbstractEventLoop) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    def sub() -> Generator[None, None, None]:
        yield
        var.set("set by sub")  # same context as the parent, like an awaited coroutine

    def gen() -> Generator[Any, Any, tuple[str, str]]:
        seen = var.get()
        yield sub()
        return seen, var.get()

    async def main() -> None:
        var.set("outer")
        assert await spawn(gen) == ("outer", "set by sub")
        assert var.get() == "outer"  # the task ran in a copy

        ctx = contextvars.copy_context()
        assert await spawn(gen, context=ctx) == ("outer", "set by sub")
        assert ctx[var] == "set by sub"  # ran in the context it was given

    run(loop, main())


def test_eager_task_factory(loop: asyncio.AbstractEventLoop) -> None:
    if sys.version_info < (3, 12):
        pytest.skip("eager tasks are new in 3.12")
    loop.set_task_factory(asyncio.eager_task_factory)
    steps: list[str] = []

    def gen() -> Generator[None, None, str]:
        steps.append("started")
        yield
        return "done"

    async def main() -> None:
        task = spawn(gen)
        assert steps == ["started"]  # first step ran inside spawn()
        assert await task == "done"

    run(loop, main())


# -- cancellation --------------------------------------------------------------------------------


def test_cancel_throws_cancelled_error_at_the_yield(loop: asyncio.AbstractEventLoop) -> None:
    log: list[str] = []

    def gen(fut: asyncio.Future[None]) -> Generator[Any, Any, None]:
        try:
            yield fut
        finally:
            log.append("finally")

    async def main() -> None:
        fut = loop.create_future()
        task = spawn(gen, fut)
        await turns(2)
        task.cancel("stop it")
        with pytest.raises(asyncio.CancelledError):
            await task
        assert task.cancelled()
        assert fut.cancelled()  # what it waited on was cancelled too, as for coroutines
        assert log == ["finally"]

    run(loop, main())


def test_cancel_during_bare_yield(loop: asyncio.AbstractEventLoop) -> None:
    def gen() -> Generator[None, None, None]:
        while True:
            yield

    async def main() -> None:
        task = spawn(gen)
        await turns(3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(loop, main())


def test_cancel_caught_and_reraised(loop: asyncio.AbstractEventLoop) -> None:
    log: list[Any] = []

    def sub() -> Generator[Any, Any, None]:
        try:
            yield asyncio.sleep(10)
        except asyncio.CancelledError as exc:
            log.append(("sub", exc.args))
            raise

    def gen() -> Generator[Any, Any, None]:
        try:
            yield sub()
        except asyncio.CancelledError as exc:
            log.append(("gen", exc.args))
            raise

    async def main() -> None:
        task = spawn(gen)
        await turns(2)
        task.cancel("why")
        with pytest.raises(asyncio.CancelledError):
            await task
        assert task.cancelled()

    run(loop, main())
    assert log == [("sub", ("why",)), ("gen", ("why",))]  # innermost first


def _swallow_scenario(loop: asyncio.AbstractEventLoop, make: Any) -> tuple[Any, bool, int]:
    async def main() -> tuple[Any, bool, int]:
        task = make()
        await turns(2)
        task.cancel()
        result = await task
        return result, task.cancelled(), task.cancelling()

    return run(loop, main())  # type: ignore[no-any-return]


def test_cancel_swallowed_matches_a_coroutine(loop: asyncio.AbstractEventLoop) -> None:
    def gen() -> Generator[Any, Any, str]:
        try:
            yield asyncio.sleep(10)
        except asyncio.CancelledError:
            pass
        yield asyncio.sleep(0)  # keeps running after swallowing it
        return "survived"

    async def coro() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            pass
        await asyncio.sleep(0)
        return "survived"

    from_gen = _swallow_scenario(loop, lambda: spawn(gen))
    from_coro = _swallow_scenario(loop, lambda: asyncio.ensure_future(coro()))
    assert from_gen == from_coro == ("survived", False, 1)


def test_yield_cancelled_future_does_not_cancel_task(loop: asyncio.AbstractEventLoop) -> None:
    def gen() -> Generator[Any, Any, str]:
        fut = loop.create_future()
        loop.call_soon(fut.cancel)
        try:
            yield fut
        except asyncio.CancelledError:
            return "caught"
        return "not reached"

    async def main() -> None:
        task = spawn(gen)
        assert await task == "caught"
        assert task.cancelling() == 0

    run(loop, main())


# -- composition with asyncio --------------------------------------------------------------------


def test_gather(loop: asyncio.AbstractEventLoop) -> None:
    def gen(x: int) -> Generator[Any, Any, int]:
        yield asyncio.sleep(0.001 * x)
        return x

    async def coro() -> str:
        return "coro"

    async def main() -> list[Any]:
        return await asyncio.gather(generator_task(gen(2)), spawn(gen, 1), coro())

    assert run(loop, main()) == [2, 1, "coro"]


def test_task_group_cancels_generator_siblings(loop: asyncio.AbstractEventLoop) -> None:
    log: list[str] = []

    def sleeper() -> Generator[Any, Any, None]:
        try:
            yield asyncio.sleep(10)
        except asyncio.CancelledError:
            log.append("sleeper cancelled")
            raise

    def failer() -> Generator[Any, Any, None]:
        yield
        raise ValueError("failer")

    def fine() -> Generator[Any, Any, str]:
        yield
        return "fine"

    async def main() -> None:
        async with asyncio.TaskGroup() as tg:
            ok = tg.create_task(generator_task(fine()))
        assert ok.result() == "fine"

        with pytest.raises(ExceptionGroup) as info:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(generator_task(sleeper()))
                tg.create_task(generator_task(failer()))
        assert [type(e) for e in info.value.exceptions] == [ValueError]

    run(loop, main())
    assert log == ["sleeper cancelled"]


def test_wait_for_and_timeout(loop: asyncio.AbstractEventLoop) -> None:
    log: list[str] = []

    def slow() -> Generator[Any, Any, str]:
        try:
            yield asyncio.sleep(10)
        except asyncio.CancelledError:
            log.append("cancelled")
            raise
        return "not reached"

    def quick() -> Generator[Any, Any, str]:
        yield
        return "quick"

    def gen_using_wait_for() -> Generator[Any, Any, str]:
        try:
            yield asyncio.wait_for(generator_task(slow()), 0.01)
        except TimeoutError:
            return "timed out inside"
        return "not reached"

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(generator_task(slow()), 0.01)
        assert await asyncio.wait_for(generator_task(quick()), 1) == "quick"
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await generator_task(slow())
        assert await spawn(gen_using_wait_for) == "timed out inside"

    run(loop, main())
    assert log == ["cancelled"] * 3


def test_async_code_awaits_generator_code(loop: asyncio.AbstractEventLoop) -> None:
    @task_function
    def double(x: int) -> Generator[Any, Any, int]:
        yield
        return x * 2

    class Service:
        @task_function
        def triple(self, x: int) -> Generator[Any, Any, int]:
            yield
            return x * 3

    def plain(x: int) -> Generator[Any, Any, int]:
        return (yield double(x)) + 1  # a @task_function call is yieldable too

    async def main() -> None:
        assert await generator_task(plain(1)) == 3
        assert await double(5) == 10
        assert await asyncio.create_task(double(6)) == 12
        assert await spawn(double, 7) == 14
        assert await spawn(Service().triple, 2) == 6
        assert double.__name__ == "double"
        assert double.__wrapped__(1).__class__ is types.GeneratorType  # type: ignore[attr-defined]

    run(loop, main())


def test_coroutine_and_task_carry_the_generator_name(loop: asyncio.AbstractEventLoop) -> None:
    def my_worker() -> Generator[None, None, None]:
        yield

    async def main() -> None:
        coro = generator_task(my_worker())
        assert coro.__qualname__.endswith("my_worker")
        task = asyncio.ensure_future(coro)
        assert "my_worker" in repr(task)
        await task

    run(loop, main())


# -- closing -------------------------------------------------------------------------------------


def test_closing_the_coroutine_closes_the_generator(loop: asyncio.AbstractEventLoop) -> None:
    log: list[str] = []

    def sub() -> Generator[Any, Any, None]:
        try:
            yield loop.create_future()
        finally:
            log.append("sub closed")

    def gen() -> Generator[Any, Any, None]:
        try:
            yield sub()
        finally:
            log.append("gen closed")

    coro = generator_task(gen())
    coro.send(None)  # now suspended in sub, waiting on the future
    coro.close()
    assert log == ["sub closed", "gen closed"]


def test_generator_ignoring_close_is_reported_like_a_coroutine(
    loop: asyncio.AbstractEventLoop,
) -> None:
    def stubborn() -> Generator[Any, Any, None]:
        try:
            yield loop.create_future()
        except GeneratorExit:
            yield  # not allowed

    coro = generator_task(stubborn())
    coro.send(None)
    with pytest.raises(RuntimeError, match="ignored GeneratorExit"):
        coro.close()


def test_garbage_collected_pending_task_closes_generator(
    loop: asyncio.AbstractEventLoop, exception_calls: list[dict[str, Any]]
) -> None:
    log: list[str] = []

    def gen() -> Generator[Any, Any, None]:
        try:
            yield loop.create_future()  # nobody else holds it: the task becomes garbage
        finally:
            log.append("closed")

    async def main() -> None:
        spawn(gen)
        await turns(2)

    run(loop, main())
    gc.collect()
    assert log == ["closed"]
    # asyncio says so through the exception handler, as for a coroutine; expected here
    assert [c["message"] for c in exception_calls] == ["Task was destroyed but it is pending!"]
    exception_calls.clear()


# -- wrong input ---------------------------------------------------------------------------------


def test_type_errors_for_wrong_input(loop: asyncio.AbstractEventLoop) -> None:
    def plain_function() -> int:
        return 1

    def genfunc() -> Generator[None, None, None]:
        yield

    @types.coroutine
    def old_style() -> Generator[None, None, None]:
        yield

    async def coro() -> None:
        pass

    async def main() -> None:
        with pytest.raises(TypeError, match="not a generator function"):
            generator_task(plain_function)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="call it first"):
            generator_task(genfunc)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="expected a generator object, got int 42"):
            generator_task(42)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="await it"):
            generator_task(old_style())
        c = coro()
        with pytest.raises(TypeError, match="await it"):
            generator_task(c)  # type: ignore[arg-type]
        c.close()

        finished = genfunc()
        list(finished)
        with pytest.raises(TypeError, match="already finished"):
            generator_task(finished)
        closed = genfunc()
        closed.close()
        with pytest.raises(TypeError, match="already finished"):
            generator_task(closed)
        started = genfunc()
        next(started)
        with pytest.raises(TypeError, match="already been started"):
            generator_task(started)

        with pytest.raises(TypeError, match="not a generator function"):
            spawn(plain_function)
        with pytest.raises(TypeError, match="not one"):
            spawn(plain_function, 1)
        with pytest.raises(TypeError, match="@task_function needs a generator function"):
            task_function(plain_function)  # type: ignore[arg-type]

    run(loop, main())


def test_type_error_for_running_generator(loop: asyncio.AbstractEventLoop) -> None:
    def gen() -> Generator[None, None, str]:
        with pytest.raises(TypeError, match="already running"):
            generator_task(me)
        return "ok"
        yield

    me = gen()
    assert run(loop, generator_task(me)) == "ok"


def test_wrapping_twice_fails_the_second_task(loop: asyncio.AbstractEventLoop) -> None:
    def gen() -> Generator[None, None, str]:
        yield
        return "first"

    async def main() -> None:
        g = gen()
        first, second = generator_task(g), generator_task(g)
        assert await first == "first"
        with pytest.raises(TypeError, match="already finished"):
            await second

    run(loop, main())


def test_spawn_without_running_loop(loop: asyncio.AbstractEventLoop) -> None:
    def gen() -> Generator[None, None, None]:
        yield

    with pytest.raises(RuntimeError, match="no running event loop"):
        spawn(gen)  # and no "coroutine was never awaited" warning follows


def test_yield_of_non_awaitable_throws_type_error_in(loop: asyncio.AbstractEventLoop) -> None:
    def catches() -> Generator[Any, Any, str]:
        try:
            yield 42
        except TypeError as exc:
            message = str(exc)
        yield  # and it can go on
        return message

    def does_not_catch() -> Generator[Any, Any, None]:
        yield "a string"

    def started() -> Generator[None, None, None]:
        yield

    def yields_started_subgenerator() -> Generator[Any, Any, str]:
        sub = started()
        next(sub)
        try:
            yield sub
        except TypeError as exc:
            return str(exc)
        return "not reached"

    message = run(loop, generator_task(catches()))
    assert "yielded 42 (int)" in message
    assert "catches" in message
    assert "awaitable" in message and "generator" in message and "None" in message

    with pytest.raises(TypeError, match="yielded 'a string'"):
        run(loop, generator_task(does_not_catch()))

    assert "already been started" in run(loop, generator_task(yields_started_subgenerator()))
