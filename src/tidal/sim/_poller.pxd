# C declarations for _poller.py (Cython pure-Python mode).  Keep in step with the .py.

import cython

from tidal.sim._clock cimport VirtualClock
from tidal._poller cimport DirectPoller
from libc.math cimport nearbyint

cdef Py_ssize_t _DRAIN_EVERY
cdef list _NOTHING

# What the poller asks each simulated fd, as a C call (SimSocket derives).
cdef class SimFile:
    cdef public bint _reported

    cpdef int _readiness(self) except? -1


# An entry of the network's heap: C fields, a C comparison.  `when` is a
# C integer: network events can be scheduled up to 2**63 ns (292 years) of
# virtual time.
cdef class TimedEvent:
    cdef public long long when
    cdef public double tie
    cdef public long long seq


cdef bint _before(TimedEvent a, TimedEvent b) except -1

cdef double _FAR_NS

@cython.locals(scaled=cython.double, step=cython.longlong)
cdef bint _due_within(long long due, long long now, double wait) except -1


# What the poller runs besides the loop (the network derives): its heap
# and run_due() as C.
cdef class TimedEvents:
    cdef public list events

    cpdef run_due(self)


# A cdef class: poll() runs once per turn of a simulated loop (and per jump
# of its clock), so its fields are C struct members.  What the network and
# the loop read stays public.
cdef class SimPoller(DirectPoller):
    cdef VirtualClock _clock
    cdef object _real
    cdef set _real_fds
    cdef set _wakeup_fds
    cdef public int READABLE
    cdef public int WRITABLE
    cdef dict _vinterest
    cdef dict _vcandidates
    cdef public dict readiness_of
    cdef public int READ_ONLY
    cdef public int WRITE_ONLY
    cdef public bint refuse_real
    cdef bint _only_wakeup
    cdef Py_ssize_t _jumps
    cdef public TimedEvents network
    cdef list _vnow_fds
    cdef list _vnow_files
    cdef list _vnow_events
    cdef list _vrecheck_fds
    cdef list _vrecheck_files

    cpdef notify(self, object fd)
    cpdef ready_now(self, object fd, SimFile file)
    @cython.locals(fds=list, files=list)
    cpdef list _take_now(self)
    @cython.locals(files=list, fds=list, file=SimFile, i=Py_ssize_t)
    cpdef _recheck(self)
    @cython.locals(file=SimFile, mask=int, settled=list)
    cpdef list _virtual_events(self)
    cpdef list _with_real(self, list ready)
    @cython.locals(network=TimedEvents, first=TimedEvent)
    cdef list poll_wait(self, double wait)
