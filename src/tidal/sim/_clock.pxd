# C declarations for _clock.py (Cython pure-Python mode).  Keep in step with the .py.

from tidal._clock cimport ManualClock
from libc.math cimport nearbyint

import cython

cdef double _NS_F
cdef long long _EXACT

# A cdef class: the simulated poller (typed, _poller.pxd) reads `ns` and
# calls advance() as C, the loop reads `seconds` (ManualClock's field) as
# C; everyone else sees the same public attributes.  `ns` stays a Python
# int (no 64-bit limit on how far a run may jump); advance() takes a float,
# and rounds as Python's round() does (half to even) in both modes.
cdef class VirtualClock(ManualClock):
    cdef public object ns
    cdef long long _small_ns

    @cython.locals(scaled=cython.double, step=cython.longlong, ns=cython.longlong)
    cpdef advance(self, double seconds)
    cpdef advance_to(self, ns)
