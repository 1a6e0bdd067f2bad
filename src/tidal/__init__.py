"""tidal: a fast, visible, testable drop-in event loop for asyncio.

Use it wherever asyncio takes a loop factory::

    asyncio.run(main(), loop_factory=tidal.new_event_loop)      # 3.12+
    with asyncio.Runner(loop_factory=tidal.new_event_loop) as r: r.run(main())
    tidal.run(main())
    asyncio.set_event_loop_policy(tidal.EventLoopPolicy())

Plain generators run as tasks too: ``tidal.spawn(gen_function, *args)``, or
``loop.create_task(tidal.generator_task(gen))``; inside, ``x = yield awaitable``.
"""

from __future__ import annotations

import asyncio
from typing import Any, Coroutine, TypeVar

from ._gen import generator_task, spawn, task_function
from ._loop import EventLoop

__version__ = "0.1.0"

# True when the hot modules run as compiled extensions (the speed work);
# the same source runs interpreted when they are not built or TIDAL_NO_EXT=1.
COMPILED: bool = False

_T = TypeVar("_T")


def new_event_loop() -> EventLoop:
    """A new tidal loop: the loop_factory to give asyncio.Runner / asyncio.run."""
    return EventLoop()


def run(main: Coroutine[Any, Any, _T], *, debug: bool | None = None) -> _T:
    """asyncio.run(main) on a fresh tidal loop, with asyncio.Runner's cleanup and Ctrl-C."""
    # asyncio.run refuses first, before looking at `main`: same order, so the
    # same exception (RuntimeError, not Runner's ValueError) comes out.
    if asyncio._get_running_loop() is not None:
        raise RuntimeError("tidal.run() cannot be called from a running event loop")
    with asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
        return runner.run(main)


class EventLoopPolicy(asyncio.DefaultEventLoopPolicy):  # type: ignore[misc,valid-type]
    """Policy whose loops are tidal loops, for code that sets a policy rather than a factory."""

    # asyncio's default policy, not its bare base: on Unix that one also keeps
    # the child watcher (get/set_child_watcher, re-attached on set_event_loop),
    # which code written for asyncio calls through the policy (3.11-3.13).

    def new_event_loop(self) -> EventLoop:
        return EventLoop()

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__}>"


__all__ = [
    "EventLoop",
    "EventLoopPolicy",
    "new_event_loop",
    "run",
    "generator_task",
    "spawn",
    "task_function",
    "COMPILED",
    "__version__",
]
