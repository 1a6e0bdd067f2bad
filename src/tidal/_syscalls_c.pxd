# The compiled twins of _syscalls.py's functions: same names, same arguments,
# same results and exceptions (see that module for why they exist).  A
# declarations-only file (no module of this name exists at run time): the
# transports' .pxd files cimport from it, and their .py files import the
# Python versions from _syscalls under `if not cython.compiled:`.
#
# The transport passes its fd, which stays open for as long as it may call
# these (it closes the socket only after removing its reader and writer and
# marking the connection lost), or -1 when its socket is not exactly a
# socket.socket: then the socket's own method runs, as asyncio would call it
# (a subclass may override it).
#
# The socket calls keep the GIL: the socket is non-blocking, so they return
# at once, and letting go of the GIL and taking it back would cost more than
# the syscall's own setup.  The epoll wait always lets go of it, even when it
# cannot block: once per turn, other threads get to run there.

cdef extern from "tidal/_syscalls_c.h":
    Py_ssize_t recv_into "tidal_recv_into" (object sock, int fd, object buf) except -1
    object recv_bytes "tidal_recv_bytes" (object sock, int fd, object buf, bint direct)
    object recv_nowait "tidal_recv_nowait" (object sock, int fd, Py_ssize_t size)
    Py_ssize_t send "tidal_send" (object sock, int fd, object data) except -1
    object epoll_wait "tidal_epoll_wait" (object ep, int epfd, double timeout, int maxevents)
    int epoll_wait_into "tidal_epoll_wait_into" (object ep, int epfd, double timeout, int maxevents,
                                                bytearray buf) except -1
    int event_fd "tidal_event_fd" (bytearray buf, Py_ssize_t i)
    unsigned int event_mask "tidal_event_mask" (bytearray buf, Py_ssize_t i)
    double monotonic "tidal_monotonic" ()
    long long monotonic_ns "tidal_monotonic_ns" ()
    bint epoll_park "tidal_epoll_park" (object ep, int epfd, int fd)
