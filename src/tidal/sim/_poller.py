"""The simulated loop's poller: it never waits on the kernel for virtual work.

It has the loop's poller interface (``tidal._poller``).  Real fds (the loop's
self-pipe for ``call_soon_threadsafe``, a pipe the program watches) stay in
a real poller, which is asked with a zero timeout.  When the loop has
nothing ready and asks to wait ``timeout`` seconds for its next timer,
virtual time jumps by ``timeout`` at once (trio's MockClock autojump): no
real time passes.  When the loop would wait forever (no timer), only the
outside world can wake the program: a real fd it watches.  If there is none,
nothing can ever happen and waiting would hang: ``DeadlockError`` says so
instead.  (Executor jobs cannot be pending here: the simulated loop waits
for each one when it is submitted, see ``_loop``.)
"""

from __future__ import annotations

from .._poller import default_poller
from ._clock import VirtualClock


class DeadlockError(RuntimeError):
    """Nothing in the simulation can ever run again, yet the program is not done."""


class SimPoller:
    """Real fds polled without waiting; the virtual clock jumps instead of sleeping."""

    __slots__ = ("_clock", "_real", "_real_fds", "_wakeup_fds", "READABLE", "WRITABLE")

    def __init__(self, clock: VirtualClock) -> None:
        self._clock = clock
        self._real = default_poller()
        self.READABLE = self._real.READABLE
        self.WRITABLE = self._real.WRITABLE
        # Real fds with an interest, and those of them that only a thread
        # can make ready (the loop's self-pipe).
        self._real_fds: set[int] = set()
        self._wakeup_fds: set[int] = set()

    def add_wakeup_fd(self, fd: int) -> None:
        """fd becomes readable only when a thread writes to it (the self-pipe)."""
        self._wakeup_fds.add(fd)

    def set_interest(self, fd: int, read: bool, write: bool) -> None:
        self._real.set_interest(fd, read, write)
        if read or write:
            self._real_fds.add(fd)
        else:
            self._real_fds.discard(fd)

    def poll(self, timeout: float | None) -> list[tuple[int, int]]:
        if timeout == 0 and self._real_fds <= self._wakeup_fds:
            # Work is ready and only the self-pipe is real: no syscall per
            # turn (call_soon_threadsafe queues its handle itself; the byte
            # is drained when the loop next goes idle).
            return []
        events: list[tuple[int, int]] = self._real.poll(0)
        if events or timeout == 0:
            return events
        if timeout is not None:
            self._clock.advance(timeout)
            return events
        if self._real_fds - self._wakeup_fds:
            # A real fd the program watches: only the outside world can help.
            return self._real.poll(None)  # type: ignore[no-any-return]
        raise DeadlockError(
            f"deadlock at virtual time {self._clock.now():.9f} s: no callback is ready, "
            "no timer is scheduled and no real fd is watched, so nothing can ever wake "
            "the program (a task awaits a future, event, lock or queue that nothing will "
            "complete)"
        )

    def close(self) -> None:
        self._real.close()
