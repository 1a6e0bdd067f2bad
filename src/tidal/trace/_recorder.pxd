# C declarations for _recorder.py (Cython pure-Python mode).  Keep in step with the .py.
#
# The Tracer's state as a C struct and its columns as typed memoryviews:
# writing a record (_put) is C stores, a clock_gettime and a few reference
# counts.  The hooks stay Python methods: the loop's dispatch calls them as
# it calls any instrument's.

import cython

from tidal._syscalls_c cimport monotonic_ns

from tidal._handle_layout cimport Handle as CHandle

cdef extern from "Python.h":
    void PyObject_GC_UnTrack(object op)

# The record kinds as C ints (STEP ... EXIT stay Python ints: _chrome.py and
# the simulation import them).
cdef int _STEP, _STEP_END, _CALL, _CALL_END, _WAIT, _WAIT_END, _WAKE, _SPAWN, _EXIT

cdef class Tracer:
    cdef public object loop
    cdef object _ready
    cdef object _clock
    cdef bint _ring
    cdef Py_ssize_t _size
    cdef list _chunks
    cdef bint _wrapped
    cdef Py_ssize_t _n
    cdef tuple _cols
    cdef long long[::1] _ts
    cdef signed char[::1] _kind
    cdef long long[::1] _x
    cdef long long[::1] _y
    cdef long long[::1] _z
    cdef list _a
    cdef list _b
    cdef list _c
    cdef Py_ssize_t _flows
    cdef dict _queued_at
    cdef dict _queued_flow
    cdef bint _running

    # The hooks: cpdef, so the loop's instrument dispatch calls them as C
    # (_instrument.Instruments._trace); still methods any caller can call.
    cpdef task_spawned(self, object task)
    cpdef task_scheduled(self, object task)
    cpdef before_task_step(self, object task)
    cpdef after_task_step(self, object task)
    cpdef task_exited(self, object task)
    @cython.locals(h=CHandle)
    cpdef before_callback(self, object handle)
    cpdef after_callback(self, object handle)
    cpdef before_io_wait(self, object timeout)
    cpdef after_io_wait(self, object nevents)

    @cython.locals(i=Py_ssize_t)
    cdef int _put(self, int kind, object a, object b, object c, long long x, long long y, long long z) except -1
    cdef long long _now(self) except? -1
