# C declarations for _clock.py (Cython pure-Python mode).  Keep in step with the .py.

from tidal._clock cimport ManualClock

# A cdef class: the simulated poller (typed, _poller.pxd) reads `ns` and
# calls advance() as C, the loop reads `seconds` (ManualClock's field) as
# C; everyone else sees the same public attributes.  `ns` stays a Python
# int (no 64-bit limit on how far a run may jump), and advance() takes
# Python numbers: round() keeps Python's rounding (half to even) in both
# modes.
cdef class VirtualClock(ManualClock):
    cdef public object ns

    cpdef advance(self, seconds)
    cpdef advance_to(self, ns)
