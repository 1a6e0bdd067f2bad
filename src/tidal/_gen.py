"""Plain generators as first-class asyncio tasks.

A generator function that uses plain ``yield`` (no ``async``, no ``@types.coroutine``) runs as a
task once wrapped by :func:`generator_task` or started by :func:`spawn`. Inside it:

* ``result = yield awaitable`` suspends until the awaitable (coroutine, Future, Task, anything with
  ``__await__``) is done and resumes with its result; if it raised, the exception is thrown into the
  generator at that ``yield``, so ``try``/``except`` around the ``yield`` works.
* a bare ``yield`` gives the other tasks one turn, exactly like ``await asyncio.sleep(0)``.
* ``result = yield other_generator`` runs that generator inside the same task (same
  ``current_task()``, same context, cancelled together) and resumes with its ``return`` value, the way
  ``await coro()`` runs a coroutine.
* ``return value`` becomes the task's result.
* yielding anything else throws a ``TypeError`` into the generator at that ``yield``.

How: the generator is driven by one native coroutine, ``_drive``, which asyncio's own (C) Task runs
like any other coroutine. ``_drive`` awaits whatever the generator yields, so everything asyncio
does to a waiting coroutine (cancellation, ``wait_for``, ``timeout``, ``TaskGroup``, contextvars)
happens to ``_drive`` at that ``await``, and ``_drive`` forwards it into the generator with
``gen.send`` / ``gen.throw``. A wrapper coroutine is needed because asyncio (3.12+) accepts only
real coroutines, and a plain generator's ``yield`` means something else to a Task.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import reprlib
import types
from collections.abc import Callable, Coroutine, Generator
from contextvars import Context
from typing import Any, ParamSpec, TypeVar, overload

__all__ = ["generator_task", "spawn", "task_function"]

_T = TypeVar("_T")
_P = ParamSpec("_P")

_GeneratorType = types.GeneratorType
# A generator whose code carries this flag was made by @types.coroutine: it speaks the raw Task
# protocol (it yields Futures to the Task), so it is awaited, never driven by _drive.
_CO_ITERABLE_COROUTINE = inspect.CO_ITERABLE_COROUTINE

_short_repr = reprlib.Repr()
_short_repr.maxstring = 60
_short_repr.maxother = 60


@types.coroutine
def _one_turn() -> Generator[None, None, None]:
    # A bare yield to the Task makes it reschedule itself with call_soon: one loop turn, which is
    # all ``await asyncio.sleep(0)`` does (minus the extra coroutine frame).
    yield


def _problem(gen: object) -> str | None:
    """Say why ``gen`` cannot be driven as a generator task, or None if it can."""
    # Fast path first (every sub-generator goes through here): a plain generator not yet started.
    if (
        type(gen) is _GeneratorType
        and gen.gi_frame is not None
        and not (gen.gi_suspended or gen.gi_running)
        and not gen.gi_code.co_flags & _CO_ITERABLE_COROUTINE
    ):
        return None
    if type(gen) is not _GeneratorType:
        if inspect.isgeneratorfunction(gen):
            return (
                f"expected a generator object, got the generator function {_name(gen)}: "
                f"call it first, or use spawn({_name(gen)}, *args)"
            )
        if inspect.iscoroutine(gen) or inspect.isawaitable(gen):
            return (
                f"expected a generator object, got the awaitable {_short_repr.repr(gen)}: "
                f"await it or pass it to asyncio.create_task() directly"
            )
        if callable(gen):
            return (
                f"expected a generator object, got {_name(gen)}, which is not a generator "
                f"function (it has no 'yield')"
            )
        return f"expected a generator object, got {type(gen).__name__} {_short_repr.repr(gen)}"
    assert isinstance(gen, _GeneratorType)
    if gen.gi_code.co_flags & _CO_ITERABLE_COROUTINE:
        return f"generator {gen.__qualname__!r} is a @types.coroutine: await it directly"
    state = inspect.getgeneratorstate(gen)
    if state == inspect.GEN_CREATED:
        return None
    if state == inspect.GEN_CLOSED:
        return f"generator {gen.__qualname__!r} has already finished"
    if state == inspect.GEN_RUNNING:
        return f"generator {gen.__qualname__!r} is already running"
    return f"generator {gen.__qualname__!r} has already been started"


def _name(obj: object) -> str:
    return getattr(obj, "__qualname__", None) or repr(obj)


def _bad_yield(gen: types.GeneratorType[Any, Any, Any], value: object) -> TypeError:
    return TypeError(
        f"generator task {gen.__qualname__!r} yielded {_short_repr.repr(value)} "
        f"({type(value).__name__}); a generator task may yield only an awaitable "
        f"(coroutine, Task, Future), another generator, or None (bare yield: one loop turn)"
    )


async def _drive(gen: types.GeneratorType[Any, Any, _T]) -> _T:
    """Run ``gen`` step by step inside the current task; its return value is ours."""
    problem = _problem(gen)  # again here: the generator may have been started since wrapping
    if problem is not None:
        raise TypeError(problem)
    send = gen.send
    throw = gen.throw
    value: Any = None
    error: BaseException | None = None
    while True:
        # Only the generator's own step sits inside this try, so a StopIteration caught here is
        # always its return (PEP 479 turns a stray StopIteration inside it into RuntimeError).
        try:
            if error is None:
                yielded = send(value)
            else:
                yielded = throw(error)
                # Drop it at once: held across the next await it would keep its traceback (and
                # so this frame) alive and, until the next throw, pin the generator's locals.
                error = None
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        value = None
        try:
            if yielded is None:
                await _one_turn()
            elif type(yielded) is _GeneratorType:
                if yielded.gi_code.co_flags & _CO_ITERABLE_COROUTINE:
                    value = await yielded  # type: ignore[misc]  # @types.coroutine: awaitable
                else:
                    # Inline, like ``await coro()``: same task, same context, cancelled together.
                    value = await _drive(yielded)
            elif hasattr(type(yielded), "__await__"):  # a lookup on the type: cached, cheap
                value = await yielded
            else:
                error = _bad_yield(gen, yielded)
        except GeneratorExit:
            # The task's coroutine is being closed (the pending Task was garbage-collected, or
            # someone called close()): close the generator too, so its finally blocks run now.
            gen.close()
            raise
        except BaseException as exc:  # noqa: BLE001 - everything, CancelledError included, goes in
            # Thrown in after this except block ends, so an exception the generator raises later
            # does not get this one as its __context__. The top traceback entry is this frame's
            # await line: noise, dropped, so the traceback reads generator -> what it waited on.
            tb = exc.__traceback__
            error = exc.with_traceback(tb.tb_next if tb is not None else None)
            del tb


def generator_task(gen: Generator[Any, Any, _T]) -> Coroutine[Any, Any, _T]:
    """Wrap a generator object in a native coroutine that asyncio can await or run as a Task.

    Why a coroutine and not a Task: it composes like any coroutine (``await``, ``create_task``,
    ``gather``, ``TaskGroup``), and the caller picks the loop, name and context.
    Raises TypeError at once for anything but a generator object that has not started yet.
    """
    problem = _problem(gen)
    if problem is not None:
        raise TypeError(problem)
    assert isinstance(gen, types.GeneratorType)  # for the type checker; _problem made sure
    coro = _drive(gen)
    # Reprs, "never awaited" warnings and Task reprs then name the user's generator, not _drive.
    coro.__name__ = gen.__name__  # type: ignore[attr-defined]
    coro.__qualname__ = gen.__qualname__  # type: ignore[attr-defined]
    return coro


@overload
def spawn(
    gen_or_genfunc: Generator[Any, Any, _T],
    /,
    *,
    name: str | None = None,
    context: Context | None = None,
) -> asyncio.Task[_T]: ...
@overload
def spawn(
    gen_or_genfunc: Callable[..., Generator[Any, Any, _T]] | Callable[..., Coroutine[Any, Any, _T]],
    /,
    *args: Any,
    name: str | None = None,
    context: Context | None = None,
) -> asyncio.Task[_T]: ...
def spawn(
    gen_or_genfunc: Any,
    /,
    *args: Any,
    name: str | None = None,
    context: Context | None = None,
) -> asyncio.Task[Any]:
    """Start a generator (object, or generator function plus args) as a Task on the running loop.

    The counterpart of ``asyncio.create_task`` for generator code: RuntimeError when no loop is
    running, ``name`` and ``context`` as there. Also takes a ``@task_function``.
    """
    if getattr(gen_or_genfunc, "_tidal_task_function", False):
        coro = gen_or_genfunc(*args)
    else:
        if args or inspect.isgeneratorfunction(gen_or_genfunc):
            if not inspect.isgeneratorfunction(gen_or_genfunc):
                raise TypeError(
                    f"spawn() with arguments takes a generator function, got "
                    f"{_name(gen_or_genfunc)}, which is not one"
                )
            gen_or_genfunc = gen_or_genfunc(*args)
        coro = generator_task(gen_or_genfunc)
    try:
        if context is None:
            # Not passing context=None keeps loops whose create_task has no such parameter working.
            return asyncio.create_task(coro, name=name)
        return asyncio.create_task(coro, name=name, context=context)
    except BaseException:
        coro.close()  # never started: close it so no "never awaited" warning follows the error
        raise


def task_function(
    func: Callable[_P, Generator[Any, Any, _T]],
) -> Callable[_P, Coroutine[Any, Any, _T]]:
    """Decorate a generator function so that calling it returns an awaitable coroutine.

    ``@task_function`` on ``def fetch(url): ...yield...`` lets async code ``await fetch(url)`` and
    ``asyncio.create_task(fetch(url))`` without spelling ``generator_task(fetch(url))``. Generator
    code can ``yield fetch(url)`` either way. The undecorated function is ``func.__wrapped__``.
    """
    if not inspect.isgeneratorfunction(func):
        raise TypeError(f"@task_function needs a generator function, got {_name(func)}")

    @functools.wraps(func)
    def start(*args: _P.args, **kwargs: _P.kwargs) -> Coroutine[Any, Any, _T]:
        return generator_task(func(*args, **kwargs))

    start._tidal_task_function = True  # type: ignore[attr-defined]
    return start
