"""Readiness backends behind one small interface.

The loop talks to a poller through four calls and two constants:

* ``set_interest(fd, read, write)`` — register, modify or unregister in one
  call (the loop keeps track of what it wants; the poller of what the kernel
  has);
* ``park(fd)``, optional — what ``set_interest(fd, False, False)`` means, for
  an fd that will most likely be wanted again soon (a socket read by
  ``sock_recv`` after ``sock_recv``): the poller may keep it registered but
  silent, so that wanting it again costs less than registering it anew (the
  loop calls set_interest instead where a poller has no park);
* ``poll(timeout)`` — wait at most `timeout` seconds (None: forever) and
  return a list of ``(fd, events)``;
* ``READABLE`` / ``WRITABLE`` — the bits of `events` meaning "run the reader"
  and "run the writer" (errors and hang-ups set both, so the callback meets
  the error on its next recv/send, as with selectors);
* ``close()``.

epoll on Linux; a ``selectors``-based poller elsewhere; the simulation's
(``tidal.sim._poller``) is a third implementation of the same interface.  A
poller that is a ``DirectPoller`` also gives the compiled loop
``poll_wait(wait)``, which it calls as C, with the timeout as a C double.
"""

from __future__ import annotations

import select
import selectors
import sys
from typing import TypeGuard

try:
    # Compiled, `cython` is Cython's compile-time module and the `if not
    # cython.compiled:` block below is dropped: epoll_wait is the C function
    # of _syscalls_c.pxd (cimported by _poller.pxd).
    import cython
except ImportError:  # interpreted, without Cython installed
    from types import ModuleType

    # A module, as Cython's own shadow module is (and as _loop.py's): poll()
    # tests `cython.compiled` once per turn.
    cython = ModuleType("cython")
    vars(cython).update(compiled=False)
if not cython.compiled:
    from ._syscalls import epoll_park, epoll_wait, epoll_wait_into


# The mask of a parked fd: registered, and reporting nothing (see park).
_PARKED = getattr(select, "EPOLLONESHOT", 1 << 30)


class DirectPoller:
    """A poller whose poll the compiled loop calls as a C method.

    ``poll_wait(wait)`` is ``poll(timeout)`` with the timeout as a number,
    ``-1.0`` for "no limit".  Compiled, it is a C method (``_poller.pxd``):
    the loop calls it without a Python call, its argument a C double, where
    ``poll(timeout)`` costs a bound method call, the argument parsing and a
    float made per turn that waits (the simulated poller's clock jumps, one
    per simulated sleep).  ``poll`` stays the interface everyone else uses.
    """

    __slots__ = ()

    def poll_wait(self, wait: float) -> list[tuple[int, int]]:
        raise NotImplementedError


def polls_directly(poller: object) -> TypeGuard[DirectPoller]:
    """Whether the compiled loop may call `poller`'s poll_wait as C in place of
    its poll: a DirectPoller whose poll is that of one of tidal's classes,
    not a subclass's own poll, which the C call would skip."""
    if not isinstance(poller, DirectPoller):
        return False
    owner = next(c for c in type(poller).__mro__ if "poll" in vars(c))
    return owner.__module__.startswith("tidal.")


class EpollPoller(DirectPoller):
    """Level-triggered epoll; returns the kernel's event list untranslated."""

    __slots__ = ("_epoll", "_epfd", "_masks", "_events", "READABLE", "WRITABLE")

    def __init__(self) -> None:
        self._epoll = select.epoll()
        # What poll() hands to epoll_wait (_syscalls.py): compiled, the wait
        # is a C call on this fd; -1 once closed.
        self._epfd = self._epoll.fileno()
        self._masks: dict[int, int] = {}
        # Compiled, where wait_events has the kernel write its events.
        self._events = bytearray()
        # Everything but EPOLLOUT wakes the reader, everything but EPOLLIN the
        # writer: an error or hang-up must reach whichever side is waiting.
        self.READABLE = select.EPOLLIN | select.EPOLLPRI | select.EPOLLERR | select.EPOLLHUP
        self.WRITABLE = select.EPOLLOUT | select.EPOLLERR | select.EPOLLHUP

    def set_interest(self, fd: int, read: bool, write: bool) -> None:
        mask = (select.EPOLLIN if read else 0) | (select.EPOLLOUT if write else 0)
        old = self._masks.get(fd, 0)
        if mask == old:
            return
        if mask == 0:
            del self._masks[fd]
            try:
                self._epoll.unregister(fd)
            except OSError:
                # Already closed by its owner: the kernel dropped it for us.
                pass
            return
        if old == 0:
            try:
                self._epoll.register(fd, mask)
            except FileExistsError:
                # The fd number was closed and reused behind our back.
                self._epoll.modify(fd, mask)
        else:
            try:
                self._epoll.modify(fd, mask)
            except FileNotFoundError:
                self._epoll.register(fd, mask)
        self._masks[fd] = mask

    def park(self, fd: int) -> None:
        """Silence fd but keep it registered: wanting it again is then one
        modify (EPOLL_CTL_MOD) where unregistering and registering again cost
        an unregister and a register, about three times as much in the kernel.

        Silenced (compiled: _syscalls.epoll_park) with EPOLLONESHOT and no
        events, so epoll reports at most one error or hang-up, then nothing
        until the fd is modified again; and with -1 in place of the fd in the
        registration's data, so that one report is dropped by epoll_wait
        instead of reaching whoever has the fd number by then.  That matters
        when the fd is closed while parked and its file outlives it (a dup, a
        forked child's copy): the kernel keeps a registration until the last
        reference to the file goes, and it can no longer be reached by fd
        number.  A parked fd's number reused by another file simply registers
        anew (modify finds nothing: register).  Interpreted, the select module
        cannot set that data: park unregisters.
        """
        old = self._masks.get(fd, 0)
        if old == 0 or old == _PARKED:
            return
        if epoll_park(self._epoll, self._epfd, fd):
            self._masks[fd] = _PARKED
        else:
            self.set_interest(fd, False, False)

    def poll(self, timeout: float | None) -> list[tuple[int, int]]:
        # The timeout goes as it is: the wait rounds it up to whole
        # milliseconds (the select module, or its compiled twin, as asyncio's
        # selector does), so a timer due in 0.3 ms is one wait of 1 ms, never
        # a poll of 0 ms over and over.
        if timeout is None:
            timeout = -1
        # maxevents: at least one per registered fd, so a turn sees them all.
        if cython.compiled:
            return epoll_wait(self._epoll, self._epfd, timeout, max(len(self._masks), 1))
        # Interpreted, epoll_wait is this call: made here, not through it (a
        # second Python frame per turn).
        return self._epoll.poll(timeout, max(len(self._masks), 1))  # type: ignore[no-any-return]

    def poll_wait(self, wait: float) -> list[tuple[int, int]]:
        """poll(timeout), `wait` -1.0 for "no limit": compiled, the loop's
        C call once per turn that polls (DirectPoller), with no method call,
        argument parsing or float made (~130 instructions a turn)."""
        return epoll_wait(self._epoll, self._epfd, wait, max(len(self._masks), 1))

    def wait_events(self, wait: float) -> int:
        """Compiled only: poll_wait(wait), the events left where the kernel
        wrote them, in ``_events`` (a C array of ``struct epoll_event``): their
        count.  The loop reads them there before its next wait (_loop.py's
        _queue_epoll_events) and makes no list, no tuple and no mask int per
        event (~1,500 instructions a 1 KiB echo round trip, 3.11)."""
        return epoll_wait_into(self._epoll, self._epfd, wait, max(len(self._masks), 1), self._events)

    def close(self) -> None:
        self._masks.clear()
        self._epfd = -1
        self._epoll.close()


class SelectorPoller:
    """Portable fallback over the best ``selectors`` class of the platform."""

    __slots__ = ("_sel", "READABLE", "WRITABLE")

    def __init__(self) -> None:
        self._sel = selectors.DefaultSelector()
        self.READABLE = selectors.EVENT_READ
        self.WRITABLE = selectors.EVENT_WRITE

    def set_interest(self, fd: int, read: bool, write: bool) -> None:
        mask = (selectors.EVENT_READ if read else 0) | (selectors.EVENT_WRITE if write else 0)
        try:
            key = self._sel.get_key(fd)
        except KeyError:
            if mask:
                self._sel.register(fd, mask)
            return
        if mask == 0:
            self._sel.unregister(fd)
        elif mask != key.events:
            self._sel.modify(fd, mask)

    def park(self, fd: int) -> None:
        """selectors has no silent registration: unregister."""
        self.set_interest(fd, False, False)

    def poll(self, timeout: float | None) -> list[tuple[int, int]]:
        return [(key.fd, events) for key, events in self._sel.select(timeout)]

    def close(self) -> None:
        self._sel.close()


def default_poller() -> EpollPoller | SelectorPoller:
    """The fastest poller this platform has."""
    if sys.platform.startswith("linux") and hasattr(select, "epoll"):
        return EpollPoller()
    return SelectorPoller()
