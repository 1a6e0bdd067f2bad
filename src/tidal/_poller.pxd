# C declarations for _poller.py (Cython pure-Python mode).  Keep in step with the .py.

import cython

from tidal._syscalls_c cimport epoll_park, epoll_wait, epoll_wait_into


# cdef classes: the poller's state is a C struct (poll() reads _epoll and
# _masks once per turn).  READABLE/WRITABLE stay public: the loop reads them
# as attributes, since any object with this interface may be the poller.
cdef int _PARKED


# The loop calls poll_wait as a C method (see DirectPoller in _poller.py).
cdef class DirectPoller:
    cdef list poll_wait(self, double wait)


cdef class EpollPoller(DirectPoller):
    cdef object _epoll
    cdef int _epfd
    cdef dict _masks
    cdef bytearray _events             # wait_events' struct epoll_event array (read by the loop)
    cdef public int READABLE
    cdef public int WRITABLE

    # fd stays the caller's int object: it is the key of _masks, which then
    # shares it with the loop's _readers (an fd above 256 is an int object
    # of its own: 32 bytes per connection if boxed again here).
    @cython.locals(mask=int, old=int)
    cpdef set_interest(self, object fd, bint read, bint write)

    @cython.locals(old=int)
    cpdef park(self, int fd)

    cdef list poll_wait(self, double wait)

    # The compiled loop's wait (see wait_events in _poller.py).
    cdef int wait_events(self, double wait) except -1


cdef class SelectorPoller:
    cdef object _sel
    cdef public int READABLE
    cdef public int WRITABLE
