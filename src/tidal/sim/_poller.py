"""The simulated loop's poller: it never waits on the kernel for virtual work.

It has the loop's poller interface (``tidal._poller``).  Real fds (the loop's
self-pipe for ``call_soon_threadsafe``, a pipe the program watches) stay in
a real poller, which is asked with a zero timeout.  When the loop has
nothing ready and asks to wait ``timeout`` seconds for its next timer,
virtual time jumps by ``timeout`` at once (trio's MockClock autojump): no
real time passes.  When the loop would wait forever (no timer), only the
outside world can wake the program: a real fd it watches.  If there is none,
nothing can ever happen and waiting would hang: ``DeadlockError`` says so
instead.  A simulated network's own events (segments, datagrams arriving)
are run here too, when virtual time reaches them before the loop's next
timer: the sockets they make ready are reported by the same poll.  (Executor jobs cannot be pending here: the simulated loop waits
for each one when it is submitted, see ``_loop``.)
"""

from __future__ import annotations


from .._poller import DirectPoller, default_poller

from ._clock import VirtualClock

try:
    # Compiled, `cython` is Cython's compile-time module and the block below
    # is dropped: nearbyint is C's (_poller.pxd).
    import cython
except ImportError:  # interpreted, without Cython installed
    from types import SimpleNamespace

    cython = SimpleNamespace(compiled=False, cast=lambda type, value: value, longlong=int)
if not cython.compiled:
    # (C's nearbyint in the default rounding mode is Python's round().)
    nearbyint = round

# Simulated sockets' fds start here: far above any real fd (the kernel hands
# out the lowest free number, and RLIMIT_NOFILE is far below 2**30), and
# still a C int for the compiled loop and transports.
VIRTUAL_FD_BASE = 1 << 30


# 2**63 as a float: a wait of this many ns or more reaches past any event.
_FAR_NS = 9.223372036854775808e18

# With only the self-pipe real, the jumps of the clock between two reads of it.
_DRAIN_EVERY = 1024

# What poll returns when nothing is ready: one list, never changed (the loop
# only tests and iterates what poll returns).
_NOTHING: list[tuple[int, int]] = []


class SimFile:
    """What a simulated fd is to the poller: something that says what it is
    ready for now (the network's sockets derive from it; compiled, the
    poller asks as a C call)."""

    __slots__ = ("_reported",)

    def __init__(self) -> None:
        # Reported by the coming (or the last) poll through
        # SimPoller.ready_now, and not asked again since.
        self._reported = False

    def _readiness(self) -> int:
        """A mask of the poller's READ_ONLY and WRITE_ONLY bits."""
        return 0


class TimedEvent:
    """An entry of a TimedEvents heap: due at `when` (virtual ns); `tie`,
    then `seq`, order the ones due at the same ns.  Compiled, its fields
    are C members and heapq's comparisons a C call (the network pushes and
    pops one per datagram and segment; a list entry was compared item by
    item through Python's rich comparison).  The subclasses say what runs."""

    __slots__ = ("when", "tie", "seq")
    when: int
    tie: float
    seq: int

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, TimedEvent):
            return NotImplemented
        return _before(self, other)


def _before(a: TimedEvent, b: TimedEvent) -> bool:
    """a < b (compiled: both typed, so a C function over C fields)."""
    if a.when != b.when:
        return a.when < b.when
    if a.tie != b.tie:
        return a.tie < b.tie
    return a.seq < b.seq


class TimedEvents:
    """What the poller runs besides the loop's own work: a simulated
    network's events, a heap of TimedEvent (the network derives from it;
    compiled, the poller reads the heap and runs what is due as C)."""

    __slots__ = ()
    events: list[TimedEvent]

    def run_due(self) -> None:
        """Run the events due by the clock's time."""


def _due_within(due: int, now: int, wait: float) -> bool:
    """Whether an event due at `due` ns comes by the loop's next timer,
    `wait` s after `now` ns (a jump of the clock, rounded as the clock
    rounds one: to the nearest ns, at least 1).  Compiled, C arithmetic:
    no float, int or round() call per poll."""
    if due <= now:
        return True
    if wait <= 0:
        return False
    scaled = wait * 1e9
    if scaled >= _FAR_NS:
        return True  # (due - now is below 2**63)
    step = cython.cast(cython.longlong, nearbyint(scaled))  # (exact: integral)
    return due - now <= (step or 1)


class DeadlockError(RuntimeError):
    """Nothing in the simulation can ever run again, yet the program is not done."""


class SimPoller(DirectPoller):
    """Real fds polled without waiting; the virtual clock jumps instead of sleeping.

    The compiled loop calls poll_wait as C (see tidal._poller.DirectPoller).
    """

    __slots__ = (
        "_clock", "_real", "_real_fds", "_wakeup_fds", "READABLE", "WRITABLE",
        "_vinterest", "_vcandidates", "readiness_of", "READ_ONLY", "WRITE_ONLY", "refuse_real",
        "_only_wakeup", "_jumps", "network", "_vnow_fds", "_vnow_files", "_vnow_events", "_vrecheck_fds", "_vrecheck_files",
    )  # fmt: skip

    def __init__(self, clock: VirtualClock) -> None:
        self._clock = clock
        self._real = default_poller()
        self.READABLE = self._real.READABLE
        self.WRITABLE = self._real.WRITABLE
        # Real fds with an interest, and those of them that only a thread
        # can make ready (the loop's self-pipe).
        self._real_fds: set[int] = set()
        self._wakeup_fds: set[int] = set()
        # No real fd but the wake-up ones has an interest: a turn with work
        # ready needs no syscall (kept in step with the two sets).
        self._only_wakeup = True
        self._jumps = 0
        # Simulated fds (a simulated network's sockets): fd -> interest mask,
        # and the fds that may be ready (level-triggered, as epoll: reported
        # every poll while ready and wanted), in the order they became so.
        self._vinterest: dict[int, int] = {}
        self._vcandidates: dict[int, None] = {}
        # Fds made readable by the network since the last poll and known to
        # be wanted for reading only (ready_now): reported by the next poll
        # without asking their readiness (their fds, SimFiles and events).
        # The poll after asks each once whether it is still readable (a
        # reader that did not read: level-triggered, it is reported again).
        self._vnow_fds: list[int] = []
        self._vnow_files: list[SimFile] = []
        self._vnow_events: list[tuple[int, int]] = []
        self._vrecheck_fds: list[int] = []
        self._vrecheck_files: list[SimFile] = []
        # fd -> its SimFile, whose _readiness() says what it is ready for
        # now (a mask of the two bits below), filled in by the simulated network.
        self.readiness_of: dict[int, SimFile] = {}
        # The bits that mean "only read" / "only write" (READABLE and
        # WRITABLE share the error bits).
        self.READ_ONLY = self.READABLE & ~self.WRITABLE
        self.WRITE_ONLY = self.WRITABLE & ~self.READABLE
        # Inside a Simulation the network is simulated: a real fd other than
        # the self-pipe is real I/O that would escape it, refused loudly.
        self.refuse_real = False
        # A simulated network (_net.Network) whose events this poller runs
        # when virtual time reaches them; None for a loop alone.
        self.network: TimedEvents | None = None

    def notify(self, fd: int) -> None:
        """fd's state changed: look at it in the next poll, if it is wanted."""
        if fd in self._vinterest:
            self._vcandidates[fd] = None

    def ready_now(self, fd: int, file: SimFile) -> None:
        """fd (`file`) just became readable: a datagram or data reached its
        empty buffer.  When only reading is wanted of it, the next poll
        reports it as it is: it is not made a candidate, whose readiness
        each poll would ask until a poll finds it read (the poll after asks
        once, see _recheck).  Otherwise, notify()."""
        if file._reported:
            return  # (reported by the coming poll already, asked by the next)
        if self._vinterest.get(fd, 0) != self.READ_ONLY or fd in self._vcandidates:
            self.notify(fd)
            return
        file._reported = True
        self._vnow_fds.append(fd)
        self._vnow_files.append(file)
        self._vnow_events.append((fd, self.READ_ONLY))

    def _take_now(self) -> list[tuple[int, int]]:
        """The events of ready_now() since the last poll, and the candidates'
        (each fd once per poll: a candidate reported already is left for
        the next poll, as a level-triggered fd is asked again)."""
        ready = self._vnow_events
        self._vnow_events = []
        if self._vcandidates:
            ready += self._virtual_events()
        # (The lists trade places: the ones to recheck are empty.)
        fds, files = self._vnow_fds, self._vnow_files
        self._vnow_fds, self._vnow_files = self._vrecheck_fds, self._vrecheck_files
        self._vrecheck_fds, self._vrecheck_files = fds, files
        return ready

    def _recheck(self) -> None:
        """The fds the last poll reported through ready_now that are still
        readable (their reader did not read it all) become candidates."""
        files = self._vrecheck_files
        fds = self._vrecheck_fds
        for i in range(len(files)):
            file = files[i]
            file._reported = False
            if file._readiness() & self.READ_ONLY:
                self.notify(fds[i])
        files.clear()
        fds.clear()

    def add_wakeup_fd(self, fd: int) -> None:
        """fd becomes readable only when a thread writes to it (the self-pipe)."""
        self._wakeup_fds.add(fd)
        self._only_wakeup = self._real_fds <= self._wakeup_fds

    def set_interest(self, fd: int, read: bool, write: bool) -> None:
        if fd >= VIRTUAL_FD_BASE:
            mask = (self.READ_ONLY if read else 0) | (self.WRITE_ONLY if write else 0)
            if mask:
                self._vinterest[fd] = mask
                self._vcandidates[fd] = None
            else:
                self._vinterest.pop(fd, None)
                self._vcandidates.pop(fd, None)
            return
        if self.refuse_real and (read or write) and fd not in self._wakeup_fds:
            raise RuntimeError(
                f"real I/O inside a simulation: fd {fd} is a real file or socket (a socket "
                "made with socket.socket() and given to the loop, a pipe, a subprocess); "
                "simulated hosts reach each other only through sockets the loop opens "
                "(open_connection, start_server, create_datagram_endpoint, ...)"
            )
        self._real.set_interest(fd, read, write)
        if read or write:
            self._real_fds.add(fd)
        else:
            self._real_fds.discard(fd)
        self._only_wakeup = self._real_fds <= self._wakeup_fds

    def _virtual_events(self) -> list[tuple[int, int]]:
        events = []
        settled = None  # the candidates found not ready (dropped after the walk)
        interest = self._vinterest
        readiness_of = self.readiness_of
        # (_readiness() only reads its socket: the dict does not change meanwhile.)
        for fd in self._vcandidates:
            file = readiness_of.get(fd)
            mask = 0
            if file is not None:
                if file._reported:
                    continue  # (reported by ready_now this poll: asked again next time)
                mask = interest.get(fd, 0)
                mask &= file._readiness()
            if mask:
                events.append((fd, mask))
            elif settled is None:
                settled = [fd]
            else:
                settled.append(fd)
        if settled is not None:
            for fd in settled:
                del self._vcandidates[fd]
        return events

    def _with_real(self, ready: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Simulated fds' events, and the real fds' ready now (if any is watched)."""
        if self._only_wakeup:
            return ready
        return ready + self._real.poll(0)  # type: ignore[no-any-return]

    def poll(self, timeout: float | None) -> list[tuple[int, int]]:
        return self.poll_wait(-1.0 if timeout is None else timeout)

    # (Compiled, the wait is a C double: a turn's tests are C comparisons.)
    def poll_wait(self, wait: float) -> list[tuple[int, int]]:
        """poll, with the timeout as a number: -1.0 for "no limit"."""
        if self._vrecheck_files:
            self._recheck()
        if self._vnow_events:
            return self._with_real(self._take_now())
        if self._vcandidates:
            ready = self._virtual_events()
            if ready:
                return self._with_real(ready)
        network = self.network
        if network is not None and network.events:
            # The network's next event, if it comes before the loop's next
            # timer: time jumps to it, it runs, and the sockets it made
            # ready are reported in this same poll.
            clock = self._clock
            first = network.events[0]
            due = first.when
            if wait < 0 or _due_within(due, clock.ns, wait):
                if due > clock.ns:
                    clock.advance_to(due)
                network.run_due()
                wait = 0.0
                if self._vnow_events:
                    return self._with_real(self._take_now())
                if self._vcandidates:
                    ready = self._virtual_events()
                    if ready:
                        return self._with_real(ready)
        if self._only_wakeup and wait >= 0:
            # Only the self-pipe is real: no syscall for it per turn or per
            # jump (call_soon_threadsafe queues its handle itself; the bytes
            # only end a real wait).  It is drained every _DRAIN_EVERY jumps,
            # and when the loop would wait for ever.
            if wait == 0:
                return _NOTHING
            self._jumps += 1
            if self._jumps % _DRAIN_EVERY:
                self._clock.advance(wait)
                return _NOTHING
        events: list[tuple[int, int]] = self._real.poll(0)
        if events or wait == 0:
            return events
        if wait > 0:
            self._clock.advance(wait)
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
