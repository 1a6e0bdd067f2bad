# C declarations for _recorder.py (Cython pure-Python mode).  Keep in step with the .py.
#
# The Tracer's state as a C struct and its columns as typed memoryviews:
# writing a record is C stores, a clock_gettime and a few reference counts.
# The loop's dispatch calls the underscored hooks below as C functions; the
# public hook methods (task_spawned, ...) stay Python methods for anyone else.

import cython

from cpython.object cimport Py_SIZE

from tidal._syscalls_c cimport monotonic_ns

from tidal._handle_layout cimport Handle as CHandle

cdef extern from "Python.h":
    void PyObject_GC_UnTrack(object op)

cdef extern from *:
    """
    /* column[i] = value, for a column (a list) with a slot i: no checks, no call. */
    static inline void tidal_set_ref(PyObject *column, Py_ssize_t i, PyObject *value) {
        PyObject *old = PyList_GET_ITEM(column, i);
        Py_INCREF(value);
        PyList_SET_ITEM(column, i, value);
        Py_XDECREF(old);
    }
    """
    void set_ref "tidal_set_ref" (list column, Py_ssize_t i, object value)

cdef object _TimerHandle, _Deque
cdef str _ASYNCIO_DIR
cdef dict _in_asyncio

# The walk down a task's await chain, per task step: C calls.
@cython.locals(kind=type)
cdef tuple _suspended(object awaitable)
@cython.locals(filename=str)
cpdef tuple resumes_at(object task)

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

    cdef object _error

    # What the loop's dispatch calls (_instrument.Instruments): C calls that
    # never raise; -1 means the error is in _error (see _begin in the .py).
    cdef int _spawned(self, object task) noexcept
    @cython.locals(i=Py_ssize_t, now=cython.longlong)
    cdef int _scheduled(self, object task) noexcept
    @cython.locals(i=Py_ssize_t)
    cdef int _step_began(self, object task) noexcept
    cdef int _step_ended(self, object task) noexcept
    cdef int _exited(self, object task) noexcept
    @cython.locals(lag=cython.longlong, i=Py_ssize_t)
    cdef int _callback_began(self, CHandle handle) noexcept
    @cython.locals(i=Py_ssize_t)
    cdef int _callback_ended(self) noexcept
    cdef int _wait_began(self, object timeout) noexcept
    @cython.locals(i=Py_ssize_t, ready=object)
    cdef int _wait_ended(self, Py_ssize_t nevents) noexcept

    @cython.locals(i=Py_ssize_t, now=cython.longlong)
    cdef inline Py_ssize_t _begin(self, int kind) noexcept
    @cython.locals(i=Py_ssize_t)
    cdef inline int _record(self, int kind, object a) noexcept
    cdef int _caught(self, object error) noexcept
    cdef Py_ssize_t _turn_page(self) noexcept
    cdef long long _clock_ns(self) noexcept
    cdef long long _now(self) noexcept
