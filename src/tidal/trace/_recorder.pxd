# C declarations for _recorder.py (Cython pure-Python mode).  Keep in step with the .py.
#
# The Tracer's state as a C struct: each hook's field reads are pointer
# loads (the hooks themselves stay Python methods: the loop's dispatch calls
# them as it calls any instrument's).

import cython

cdef object _now_ns


cdef class Tracer:
    cdef public object loop
    cdef public object events
    cdef object _add
    cdef object _now
    cdef Py_ssize_t _flows
    cdef dict _queued
    cdef bint _running
