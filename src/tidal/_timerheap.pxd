# C declarations for _timerheap.py (Cython pure-Python mode).  Keep in step with the .py.
#
# The heap's items are read as asyncio TimerHandle structs, so a timer's due
# time is a C double loaded from its `_when` slot (a float, or an int the
# loop was given: both convert).  cpdef: _loop cimports these as C calls,
# and tests can still call them from Python.

import cython

from tidal._handle_layout cimport TimerHandle as CTimerHandle

cpdef push(list heap, object timer)

cpdef pop(list heap)

@cython.locals(pos=Py_ssize_t)
cpdef rebuild(list heap)

@cython.locals(item=CTimerHandle, parent=CTimerHandle, when=double, parent_when=double,
               parent_pos=Py_ssize_t)
cdef void _sift_toward_root(list heap, Py_ssize_t start, Py_ssize_t pos) except *

@cython.locals(end=Py_ssize_t, start=Py_ssize_t, child_pos=Py_ssize_t, right_pos=Py_ssize_t,
               child=CTimerHandle, right=CTimerHandle, child_when=double, right_when=double)
cdef void _sift_to_leaf(list heap, Py_ssize_t pos) except *
