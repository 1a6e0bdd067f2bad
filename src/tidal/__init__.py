"""tidal: a fast, visible, testable drop-in event loop for asyncio.

Use it wherever asyncio takes a loop factory::

    asyncio.run(main(), loop_factory=tidal.new_event_loop)      # 3.12+
    with asyncio.Runner(loop_factory=tidal.new_event_loop) as r: r.run(main())
    tidal.run(main())
    asyncio.set_event_loop_policy(tidal.EventLoopPolicy())

Plain generators run as tasks too: ``tidal.spawn(gen_function, *args)``, or
``loop.create_task(tidal.generator_task(gen))``; inside, ``x = yield awaitable``.

PYTEST_DONT_REWRITE: tidal's ``pytest11`` plugin makes pytest mark the whole
``tidal`` package for assertion rewriting; a run that imported tidal before
pytest started (a ``sitecustomize`` installing tidal's policy) would get a
"Module already imported" warning, an error in a suite whose
``filterwarnings`` is ``error``.  This marker tells pytest not to rewrite this
file (it has no assert), so it does not warn; the submodules it has not
imported yet are rewritten as before.
"""

from __future__ import annotations

import asyncio
import importlib.machinery
import os
import sys
from typing import TYPE_CHECKING, Any, Coroutine, Iterable, Sequence, TypeVar


class _SourceFinder:
    """Import hook for TIDAL_NO_EXT=1: load tidal's submodules from their ``.py``.

    Python's import system prefers an extension module (``_loop.cpython-*.so``)
    to the ``_loop.py`` beside it.  This finder goes first on ``sys.meta_path``
    and offers only the source file, so the very same source runs interpreted
    with the compiled build installed.
    """

    _loaders = [(importlib.machinery.SourceFileLoader, importlib.machinery.SOURCE_SUFFIXES)]

    @classmethod
    def find_spec(
        cls, fullname: str, path: Sequence[str] | None, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        if path is None or not fullname.startswith(__name__ + "."):
            return None
        for entry in path:
            spec = importlib.machinery.FileFinder(entry, *cls._loaders).find_spec(fullname)
            if spec is not None:
                return spec
        return None


# Before the first submodule import below: from then on it would be too late.
if os.environ.get("TIDAL_NO_EXT", "").strip().lower() in {"1", "true", "yes", "on"}:
    if _SourceFinder not in sys.meta_path:
        sys.meta_path.insert(0, _SourceFinder)  # type: ignore[arg-type]

from . import _handles, _loop  # noqa: E402
from . import abc as abc  # noqa: E402
from ._gen import generator_task, spawn, task_function  # noqa: E402
from ._loop import EventLoop  # noqa: E402

__version__ = "0.1.0"

# True only when the hot modules actually run as compiled extensions (the
# build compiles them all or none); False for a pure-Python install, and with
# TIDAL_NO_EXT=1, where the same source runs interpreted.
COMPILED: bool = all(not (module.__file__ or "").endswith(".py") for module in (_loop, _handles))

_T = TypeVar("_T")

if TYPE_CHECKING:
    from .abc import Instrument


def new_event_loop() -> EventLoop:
    """A new tidal loop: the loop_factory to give asyncio.Runner / asyncio.run."""
    return EventLoop()


def run(
    main: Coroutine[Any, Any, _T],
    *,
    debug: bool | None = None,
    instruments: Iterable[Instrument] = (),
) -> _T:
    """asyncio.run(main) on a fresh tidal loop, with asyncio.Runner's cleanup and Ctrl-C.

    `instruments` are added to the loop before it first runs (see
    tidal.abc.Instrument), so they see the whole run, cleanup included.
    """
    # asyncio.run refuses first, before looking at `main`: same order, so the
    # same exception (RuntimeError, not Runner's ValueError) comes out.
    if asyncio._get_running_loop() is not None:
        raise RuntimeError("tidal.run() cannot be called from a running event loop")
    instruments = list(instruments)

    def factory() -> EventLoop:
        loop = EventLoop()
        for instrument in instruments:
            loop.add_instrument(instrument)
        return loop

    with asyncio.Runner(debug=debug, loop_factory=factory) as runner:
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


# TIDAL_MONITOR=1: this process answers python -m tidal ps/pstree/top (tidal.monitor).
if os.environ.get("TIDAL_MONITOR", "").strip() not in ("", "0"):
    from .monitor import _from_environment

    _from_environment()

# TIDAL_TRACE=trace.json / TIDAL_FLIGHT_RECORDER=N: trace every tidal loop
# this process makes (tidal.trace; only imported when asked for).
if os.environ.get("TIDAL_TRACE") or os.environ.get("TIDAL_FLIGHT_RECORDER"):
    from .trace import _from_environment as _trace_from_environment

    _trace_from_environment()

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
