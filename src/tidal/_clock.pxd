# C declarations for _clock.py (Cython pure-Python mode).  Keep in step with the .py.

# The loop reads a ManualClock's time as this C field (_loop._now).
cdef class ManualClock:
    cdef public double seconds
    cdef public object now
    cdef public double resolution
