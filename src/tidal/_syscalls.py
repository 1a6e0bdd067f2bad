"""The socket calls of the transports' read and write paths.

Interpreted, each is the socket method it names (and the per-event paths,
the stream transport's first read and write and the epoll poller's wait, call
that method themselves: through these it would be a second Python frame per
call, for nothing).  Compiled, the transports cimport C functions of the same
names and arguments instead
(``_syscalls_c.pxd``): one ``recv()``/``send()`` on the fd, which the
transport owns and keeps open while it calls these, with errors raised as the
socket module raises them (``OSError`` with the errno, so ``BlockingIOError``,
``ConnectionResetError``, ...).  The caller passes -1 as the fd when the
socket is not exactly a ``socket.socket``: a subclass may override these
methods, and asyncio would call the override, so compiled code calls it too.
(The loop's ``sock_*`` methods use them the same way, on the user's socket.)  What that saves per call, against the socket
method: parsing arguments by keyword, letting go of the GIL and taking it back
around a syscall that does not block (the socket is non-blocking).  Those are
about half of the CPU a small echo costs the loop outside the kernel.

Only the first try of a read or write goes through here: the rare paths
(sendmsg of a queue, recvfrom) use the socket methods in both modes.  The
epoll poller's wait is here too: once per turn of the loop; and the monotonic
clock, which the loop reads per timer and per turn with timers (compiled,
``clock_gettime`` itself, with ``time.monotonic()``'s arithmetic, so the two
give the same float).
"""

from __future__ import annotations

import socket
from time import monotonic as monotonic  # the loop's default clock, read in C when compiled
from typing import Any


def recv_into(sock: socket.socket, fd: int, buf: Any) -> int:
    """Receive into the writable buffer `buf`; the byte count (0 at EOF)."""
    return sock.recv_into(buf)


def recv_bytes(sock: socket.socket, fd: int, view: memoryview, direct: bool) -> bytes:
    """What came, up to len(view) bytes (b"" at EOF), as a new bytes object.

    Compiled, small reads go through `view` (a scratch buffer) and are copied
    out, unless `direct`.  Interpreted, every read is sock.recv(): the method
    call and memoryview slice of the scratch route cost more than the copy
    they would save, at every size (a 1 KiB read 555 ns against 665, 100 KiB
    3.7 us against 5.7, 3.11).
    """
    return sock.recv(len(view))  # as asyncio's transport reads


def recv_nowait(sock: socket.socket, fd: int, size: int) -> bytes | None:
    """Receive up to `size` bytes (b"" at EOF), or None where it would block."""
    try:
        return sock.recv(size)
    except (BlockingIOError, InterruptedError):
        return None


def send(sock: socket.socket, fd: int, data: Any) -> int:
    """Send what the kernel takes of the bytes-like `data`; the byte count."""
    return sock.send(data)


def epoll_park(ep: Any, epfd: int, fd: int) -> bool:
    """Silence a registered fd, reporting nothing as it (False: not done, unregister it).

    The select module cannot set a registration's data to anything but the
    fd itself, so only the compiled twin can do this.
    """
    return False


def epoll_wait(ep: Any, epfd: int, timeout: float, maxevents: int) -> list[tuple[int, int]]:
    """Wait for events on the epoll object `ep` (whose fd is `epfd`): ep.poll().

    `timeout` in seconds, negative for "no limit"."""
    return ep.poll(timeout, maxevents)  # type: ignore[no-any-return]


# Compiled, the loop reads an EpollPoller's events in place: the wait writes
# them into a bytearray (the kernel's struct epoll_event array), read back
# per event as C ints, with no tuple or int object made per event.
# Interpreted, the Python code cannot read that array, and the turn polls
# for the list of epoll_wait above: these are never called.
def epoll_wait_into(ep: Any, epfd: int, timeout: float, maxevents: int, buf: bytearray) -> int:
    """Wait as epoll_wait does, the events into `buf`; their count."""
    raise AssertionError("compiled only")


def event_fd(buf: bytearray, i: int) -> int:
    """The fd of event `i` of an epoll_wait_into."""
    raise AssertionError("compiled only")


def event_mask(buf: bytearray, i: int) -> int:
    """The event bits of event `i` of an epoll_wait_into."""
    raise AssertionError("compiled only")
