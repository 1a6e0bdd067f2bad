# C declarations for _timerheap.py (Cython pure-Python mode).  Keep in step with the .py.
#
# The heap's items are read as TimerHandle structs (tidal's class, which the
# loop makes; anything else in the heap is a TypeError), so a timer's due
# time is a C double loaded from its `_when` slot (a float, or an int the
# loop was given: both convert).  cpdef: _loop cimports these as C calls,
# and tests can still call them from Python.

import cython

from tidal._handle_layout cimport layout_matches  # (brings the structs' C definitions in)

# tidal's own TimerHandle class, with asyncio's TimerHandle layout (checked
# at import by _handles).  Declaring the exact class the loop puts in the heap
# makes each item's type check one pointer comparison, not a walk of the MRO.
cdef extern from *:
    ctypedef class tidal._handles.TimerHandle [object tidal_TimerHandleObject, check_size error]:
        cdef object _when

ctypedef TimerHandle CTimerHandle

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
