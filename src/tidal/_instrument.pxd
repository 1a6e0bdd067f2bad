# C declarations for _instrument.py (Cython pure-Python mode).  Keep in step with the .py.
#
# Instruments is a C struct, so the compiled loop reaches its per-hook lists
# and calls before/after/io_wait as C calls (_loop.pxd cimports it); the
# instruments' own methods are still Python calls.

import cython

cdef object _NO_ARG
cdef tuple _TASK_TYPES
cdef frozenset _STEP_NAMES
cdef int _STEP, _MAYBE, _NEVER
cdef dict _kind_of_type
cdef dict _is_task_type

cdef int _kind(object callback_type) except -1

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

    cpdef fire(self, list methods, object arg=*)
    cpdef object before(self, object handle)
    cpdef after(self, object handle, object task)
    cpdef object io_wait(self, object poll, object timeout)
