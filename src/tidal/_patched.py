"""A method patched on asyncio's loop class is what tidal's loop runs too.

Tests patch asyncio's public loop classes to fake one operation for every
loop: ``mock.patch("asyncio.BaseEventLoop.create_connection", slow)`` (asyncssh's
connect-timeout tests), ``...getaddrinfo`` to resolve a made-up name,
``...create_datagram_endpoint`` or ``...run_in_executor`` with a mock.
asyncio's loop, a subclass of those classes, then calls the patch; tidal's
EventLoop is not one, so it called its own method and the patch never ran.

For the loop's operations that are not per-callback (connections, servers,
endpoints, pipes, subprocesses, TLS upgrade, sendfile, DNS, the executor),
EventLoop's class attribute is a `FollowsAsyncio` descriptor: on each lookup
from a loop it asks what asyncio's own loop class would find under the name
and, while that is still asyncio's function, gives tidal's own method (bound);
once patched, the patch, bound as asyncio's lookup binds it (a function as a
method, a mock, which is no descriptor, as it is).  Per-callback methods
(call_soon, create_future, ...) are left plain: a lookup through a Python
descriptor on every call would cost what the loop saves there.  (A stream
transport's get_extra_info, called per request by some servers, makes the
same check inline instead: transports/_stream.py.)

A patch that wraps asyncio's original (a logging wrapper, a contextvar
propagator: it keeps the original and calls it with the loop) cannot run on
tidal's loop: asyncio's create_connection, create_server, ... call private
methods of asyncio's loop that tidal's has not.  Before this such a patch was
skipped and tidal's own method ran, which works; so a patch found holding
asyncio's original (closed over, a default, a global it names, ``__wrapped__``,
mock's ``wraps=``, a partial's function) is skipped still.  One that keeps it
out of those places (in a dict it names, say) is not recognised: it runs, and
asyncio's original then fails on tidal's loop.
"""

from __future__ import annotations

import asyncio
import functools
import types
from typing import Any

# The class asyncio's default policy makes loops of on this platform, as it
# was when tidal was imported: before anything (a sitecustomize putting tidal
# under a suite) replaced asyncio.SelectorEventLoop with tidal's class.
_ASYNCIO_LOOP: type = asyncio.SelectorEventLoop
if not _ASYNCIO_LOOP.__module__.startswith("asyncio."):
    _ASYNCIO_LOOP = asyncio.BaseEventLoop


class FollowsAsyncio:
    """EventLoop's attribute `name`: tidal's `own` method, or the method
    patched on asyncio's loop class under that name (module docstring)."""

    __slots__ = ("name", "own", "original")

    def __init__(self, name: str, own: Any) -> None:
        self.name = name
        self.own = own
        self.original = getattr(_ASYNCIO_LOOP, name)

    def __get__(self, loop: Any, owner: type | None = None) -> Any:
        if loop is None:
            return self.own
        found = getattr(_ASYNCIO_LOOP, self.name)
        if found is not self.original:
            patch = _lookup(self.name)
            if not _holds(patch, self.original):
                bind = getattr(type(patch), "__get__", None)
                return patch if bind is None else bind(patch, loop, type(loop))
        return self.own.__get__(loop, owner)


def _lookup(name: str) -> Any:
    """The raw attribute asyncio's loop class finds under `name` (unbound)."""
    for klass in _ASYNCIO_LOOP.__mro__:
        if name in vars(klass):
            return vars(klass)[name]
    raise AttributeError(name)


def _holds(patch: Any, original: Any) -> bool:
    """Whether `patch` keeps asyncio's `original` at hand to call it."""
    func = getattr(patch, "__func__", patch)  # staticmethod, classmethod
    if isinstance(func, functools.partial):
        func = func.func
    held: list[Any] = [func, getattr(func, "__wrapped__", None)]
    if not isinstance(func, types.FunctionType):
        # A mock's wraps= (a mock answers any other name with a child mock).
        held.append(vars(func).get("_mock_wraps") if hasattr(func, "__dict__") else None)
        return any(obj is original for obj in held)
    held.extend(cell.cell_contents for cell in func.__closure__ or () if _filled(cell))
    held.extend(func.__defaults__ or ())
    held.extend((func.__kwdefaults__ or {}).values())
    names: set[str] = set()
    codes = [func.__code__]
    while codes:
        code = codes.pop()
        names.update(code.co_names)
        codes.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    namespace = func.__globals__
    held.extend(namespace[n] for n in names if n in namespace)
    return any(obj is original for obj in held)


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents
    except ValueError:  # a closure variable not yet assigned
        return False
    return True


def follow_asyncio(cls: type, names: tuple[str, ...]) -> None:
    """Make each of `cls`'s methods `names` follow a patch on asyncio's loop."""
    for name in names:
        setattr(cls, name, FollowsAsyncio(name, vars(cls)[name]))
