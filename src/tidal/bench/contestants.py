"""Who runs in the bench: a contestant is a name, a loop (or a command), an environment.

The Python contestants name a loop for the worker (``--loop asyncio``); the
reference line is a program (the C epoll echo server).  ``env`` is applied to
the worker's environment: a value of ``None`` removes the variable, so "tidal"
is the build as installed even when the caller exported ``TIDAL_NO_EXT=1``.

To add one (say a compiled build under another name, or a loop from a
package), add an entry here: everything downstream goes by the entries.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

# The loops a worker knows how to make, by name.
LOOP_NAMES = ("asyncio", "uvloop", "rloop", "tidal")


@dataclass(frozen=True)
class Contestant:
    name: str
    loop: str | None = None  # a loop from LOOP_NAMES, run by a Python worker
    command: str | None = None  # or a program: the key of a tool built by loadgen.build_tools
    env: Mapping[str, str | None] = field(default_factory=dict)
    note: str = ""

    @property
    def is_python(self) -> bool:
        return self.loop is not None

    def environ(self) -> dict[str, str]:
        """The environment the contestant's subprocess runs with."""
        environ = dict(os.environ)
        for key, value in self.env.items():
            if value is None:
                environ.pop(key, None)
            else:
                environ[key] = value
        return environ


# The Python contestants, in the order the report lists them.  "tidal-interp"
# and "tidal" are the same code today; once the compiled build exists, "tidal"
# is it and "tidal-interp" is the same source forced to run interpreted.
PYTHON_CONTESTANTS = (
    Contestant("asyncio", loop="asyncio", note="CPython's selector loop"),
    Contestant("uvloop", loop="uvloop", note="libuv, Cython"),
    Contestant("rloop", loop="rloop", note="Rust, asyncio's C Future and Task"),
    Contestant("tidal-interp", loop="tidal", env={"TIDAL_NO_EXT": "1"}, note="TIDAL_NO_EXT=1"),
    Contestant("tidal", loop="tidal", env={"TIDAL_NO_EXT": None}, note="the build as installed"),
)

# The reference line for the echo sections: the load generator's ceiling.
C_EPOLL = Contestant("C epoll", command="echo_server", note="single-threaded C epoll echo server")

ALL_CONTESTANTS = PYTHON_CONTESTANTS + (C_EPOLL,)


# The loops that come from a package of the `bench` extra: without it
# installed, the contestant is reported missing and the bench goes on.
OPTIONAL_LOOPS = ("uvloop", "rloop")


def missing_reason(contestant: Contestant) -> str | None:
    """Why this contestant cannot run here (None when it can); checked without importing it."""
    if contestant.loop in OPTIONAL_LOOPS and importlib.util.find_spec(contestant.loop) is None:
        return f"{contestant.loop} is not installed (pip install 'tidal[bench]', or make bench)"
    return None


# ---------------------------------------------------------------------------
# Worker side: make the loop a contestant names.
# ---------------------------------------------------------------------------


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "asyncio":
        return asyncio.new_event_loop
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop  # type: ignore[no-any-return]
    if name == "rloop":
        import rloop

        return rloop.new_event_loop  # type: ignore[no-any-return]
    if name == "tidal":
        import tidal

        return tidal.new_event_loop
    raise ValueError(f"unknown loop {name!r}; known: {', '.join(LOOP_NAMES)}")


def describe(name: str) -> str:
    """What actually ran, for the report: version and build of the loop."""
    if name == "uvloop":
        import uvloop

        return f"uvloop {uvloop.__version__}"
    if name == "rloop":
        from importlib.metadata import version

        return f"rloop {version('rloop')}"
    if name == "tidal":
        import tidal

        build = "compiled" if tidal.COMPILED else "interpreted"
        return f"tidal {tidal.__version__} ({build})"
    return f"asyncio (CPython {sys.version.split()[0]})"
