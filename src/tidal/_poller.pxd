# C declarations for _poller.py (Cython pure-Python mode).  Keep in step with the .py.

import cython

from tidal._syscalls_c cimport epoll_park, epoll_wait


# cdef classes: the poller's state is a C struct (poll() reads _epoll and
# _masks once per turn).  READABLE/WRITABLE stay public: the loop reads them
# as attributes, since any object with this interface may be the poller.
cdef int _PARKED


cdef class EpollPoller:
    cdef object _epoll
    cdef int _epfd
    cdef dict _masks
    cdef public int READABLE
    cdef public int WRITABLE

    @cython.locals(mask=int, old=int)
    cpdef set_interest(self, int fd, bint read, bint write)

    @cython.locals(old=int)
    cpdef park(self, int fd)


cdef class SelectorPoller:
    cdef object _sel
    cdef public int READABLE
    cdef public int WRITABLE
