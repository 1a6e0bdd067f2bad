# C declarations for _instrument.py (Cython pure-Python mode).  Keep in step with the .py.
#
# Instruments is a C struct, so the compiled loop reaches its per-hook lists
# and calls before/after/io_wait as C calls (_loop.pxd cimports it); the
# instruments' own methods are still Python calls.

import cython

from tidal.trace._recorder cimport Tracer
from tidal._handle_layout cimport Handle as CHandle

cdef object _NO_ARG
cdef tuple _TASK_TYPES
cdef frozenset _STEP_NAMES
cdef int _STEP, _MAYBE, _NEVER
cdef dict _kind_of_type
cdef dict _is_task_type
cdef int _SPAWNED, _SCHEDULED, _BEFORE_STEP, _AFTER_STEP, _EXITED
cdef int _BEFORE_CALLBACK, _AFTER_CALLBACK, _BEFORE_WAIT, _AFTER_WAIT

cdef int _kind(object callback_type) except -1

@cython.locals(h=CHandle)
cpdef object task_of(object handle)


cdef class Instruments:
    cdef public list before_run
    cdef public list after_run
    cdef public list task_spawned
    cdef public list task_scheduled
    cdef public list before_task_step
    cdef public list after_task_step
    cdef public list task_exited
    cdef public list before_callback
    cdef public list after_callback
    cdef public list before_io_wait
    cdef public list after_io_wait
    cdef public list instruments
    cdef public object _loop
    cdef dict _owner
    cdef public object _held      # list, or None
    cdef public object _append    # the ready deque's append
    cdef bint _per_handle
    cdef public Tracer _tracer    # the first tidal Tracer, told directly (None: none)

    cpdef fire(self, list methods, object arg=*)
    cdef int _trace(self, int hook, object arg) except -1
    cpdef object before(self, object handle)
    cpdef after(self, object handle, object task)
    cpdef object io_wait(self, object poll, object timeout)
