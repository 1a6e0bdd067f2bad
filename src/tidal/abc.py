"""The loop's seams as typing.Protocols: what an object must offer to plug in.

``tidal.EventLoop(clock=..., poller=..., socket_factory=..., resolver=...)``
takes any object with the shape of :class:`Clock`, :class:`Poller`,
:class:`SocketFactory` and :class:`Resolver` (a simulation, ``tidal.sim``,
supplies its own of each; the defaults are the real thing);
``loop.add_instrument(obj)`` any object with some of :class:`Instrument`'s
methods.  Nothing needs to inherit from them (the loop checks no types), but
a type checker holds an implementation to them, and the loop's own
annotations use them.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import asyncio
    from socket import _GetAddrInfoResult


@runtime_checkable
class Clock(Protocol):
    """Where the loop reads the time: ``loop.time()`` is ``clock.now()``.

    ``now()`` returns seconds as a float, never going backwards; ``resolution``
    is the smallest step it can tell apart (a timer due within one step of
    now counts as due).  tidal's default is ``time.monotonic``.
    """

    resolution: float

    def now(self) -> float: ...


@runtime_checkable
class Poller(Protocol):
    """What the loop waits on for I/O (``tidal._poller`` has epoll and selectors).

    ``park(fd)`` is optional (see ``tidal._poller``): it means "not wanted
    for now, wanted again soon"; a poller without it gets
    ``set_interest(fd, False, False)`` instead.
    """

    READABLE: int  # bits of a poll() event mask that run the fd's reader
    WRITABLE: int  # ... its writer (errors and hang-ups set both)

    def set_interest(self, fd: int, read: bool, write: bool) -> None:
        """Register, modify or (both False) unregister `fd`."""

    def poll(self, timeout: float | None) -> list[tuple[int, int]]:
        """Wait at most `timeout` seconds (None: until something happens); (fd, mask) pairs."""
        ...

    def close(self) -> None: ...


class Instrument(Protocol):
    """An object that watches the loop run: implement any of these methods.

    An instrument need not define them all (nor inherit from this class): the
    loop calls only the methods an instrument has, and a hook no instrument
    has costs nothing.  Subclassing this class gives no-op defaults, which
    the loop also skips.  They run on the loop's thread, inside the turn:
    keep them short.  An instrument whose method raises is removed from the
    loop and its error logged once on the ``asyncio`` logger; the loop goes
    on (the callback or step being reported still runs).
    """

    def before_run(self) -> None:
        """The loop is about to start running (each run_forever/run_until_complete)."""

    def after_run(self) -> None:
        """The loop has stopped running."""

    def task_spawned(self, task: asyncio.Task[Any]) -> None:
        """`task` was made by the loop's create_task (or its task factory)."""

    def task_scheduled(self, task: asyncio.Task[Any]) -> None:
        """`task`'s next step was queued (it was woken, or just made)."""

    def before_task_step(self, task: asyncio.Task[Any]) -> None:
        """One step of `task` (its coroutine runs to its next await) is about to run."""

    def after_task_step(self, task: asyncio.Task[Any]) -> None:
        """That step has returned."""

    def task_exited(self, task: asyncio.Task[Any]) -> None:
        """`task` is done (returned, raised or was cancelled)."""

    def before_callback(self, handle: asyncio.Handle) -> None:
        """A plain callback (call_soon, a timer, an fd's reader/writer; not a task step) is about to run."""

    def after_callback(self, handle: asyncio.Handle) -> None:
        """That callback has returned (its exception, if any, already reported)."""

    def before_io_wait(self, timeout: float | None) -> None:
        """The loop is about to wait for I/O, at most `timeout` seconds (None: no limit)."""

    def after_io_wait(self, nevents: int) -> None:
        """The wait returned `nevents` ready file descriptors."""


class SocketFactory(Protocol):
    """Makes every socket the loop opens for the program (connections,
    servers, datagram endpoints, Unix sockets): ``socket.socket`` by default.

    Called as ``factory(family, type, proto)``; the loop makes the result
    non-blocking itself.
    """

    def __call__(self, family: int, type: int, proto: int) -> socket.socket: ...


class Resolver(Protocol):
    """Answers the loop's ``getaddrinfo``/``getnameinfo``: by default, the
    socket module's functions on the default executor."""

    async def getaddrinfo(
        self,
        host: bytes | str | None,
        port: bytes | str | int | None,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> _GetAddrInfoResult: ...

    async def getnameinfo(self, sockaddr: tuple[Any, ...], flags: int = 0) -> tuple[str, str]: ...


__all__ = ["Clock", "Instrument", "Poller", "Resolver", "SocketFactory"]
