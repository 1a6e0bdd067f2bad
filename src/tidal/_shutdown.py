"""The end of a loop's run: closing its async generators, joining its default executor.

asyncio.run() and asyncio.Runner await these two coroutines as a run ends.
They are plain Python, not compiled (setup.py): they run once a loop, and
as CPython coroutines they behave as asyncio's do where it shows.  They
carry asyncio's names too: asyncio.Runner's close() on a loop already
closed creates ``shutdown_asyncgens()`` and drops it unawaited, and the
"coroutine 'BaseEventLoop.shutdown_asyncgens' was never awaited" warning
that follows is filtered by that text (pytest-asyncio's runner does).
"""

from __future__ import annotations

import asyncio
import sys
import threading
import warnings
from asyncio import tasks
from typing import TYPE_CHECKING, Any

from .transports._base import set_result_unless_cancelled

if TYPE_CHECKING:
    from ._loop import EventLoop

# shutdown_default_executor joins its helper thread even when cancelled
# (asyncio before 3.13: try/finally; 3.13 joins only once it succeeded).
_JOIN_SHUTDOWN_WHEN_CANCELLED = sys.version_info < (3, 13)


async def shutdown_asyncgens(self: EventLoop) -> None:
    """Close every async generator still alive, reporting their errors."""
    self._asyncgens_shutdown_called = True
    if not len(self._asyncgens):
        return
    closing_agens = list(self._asyncgens)
    self._asyncgens.clear()
    results = await tasks.gather(*[ag.aclose() for ag in closing_agens], return_exceptions=True)
    for result, agen in zip(results, closing_agens):
        if isinstance(result, Exception):
            self.call_exception_handler(
                {
                    "message": f"an error occurred during closing of asynchronous generator {agen!r}",
                    "exception": result,
                    "asyncgen": agen,
                }
            )


async def shutdown_default_executor(self: EventLoop, timeout: float | None = None) -> None:
    """Join the default executor's threads from a helper thread, without blocking the loop."""
    self._executor_shutdown_called = True
    if self._default_executor is None:
        return
    future = self.create_future()
    thread = threading.Thread(target=_do_shutdown, args=(self, future))
    thread.start()
    try:
        async with asyncio.timeout(timeout):
            await future
    except TimeoutError:
        warnings.warn(
            f"The executor did not finishing joining its threads within {timeout} seconds.",
            RuntimeWarning,
            stacklevel=2,
        )
        self._default_executor.shutdown(wait=False)
    except BaseException:
        # Cancelled (Ctrl-C during asyncio.run's cleanup): asyncio before
        # 3.13 joins the helper even then, so no thread outlives the call
        # (blocking, as it does); 3.13's leaves it running.
        if _JOIN_SHUTDOWN_WHEN_CANCELLED:
            thread.join()
        raise
    else:
        # The helper has reported and is returning: wait for it to end
        # without blocking this thread in join() (a few turns at most),
        # so that no thread of ours outlives this call.
        while thread.is_alive():
            await asyncio.sleep(0)
        thread.join()


def _do_shutdown(loop: EventLoop, future: asyncio.Future[Any]) -> None:
    """The helper thread's work (its name says _do_shutdown, as asyncio's does)."""
    try:
        assert loop._default_executor is not None
        loop._default_executor.shutdown(wait=True)
        if not loop.is_closed():
            loop.call_soon_threadsafe(set_result_unless_cancelled, future, None)
    except Exception as ex:
        if not loop.is_closed() and not future.cancelled():
            loop.call_soon_threadsafe(future.set_exception, ex)


# asyncio's qualified names (see the module's docstring): the never-awaited
# warning's text, and the methods' reprs, read as asyncio's.
shutdown_asyncgens.__qualname__ = "BaseEventLoop.shutdown_asyncgens"
shutdown_default_executor.__qualname__ = "BaseEventLoop.shutdown_default_executor"
