# C declarations for _timerheap.py (Cython pure-Python mode).  Keep in step with the .py.
#
# TimerHeap's methods stay the .py's code (cpdef: _loop calls them as C
# calls, tests from Python); the three operations they delegate to are the
# C functions below, which _timerheap.py defines in Python for the
# interpreted build.
#
# Beside the list of timers, `whens` (a private bytearray) holds each one's
# due time as a C double, index for index: `_when` is read and converted
# once, at push (in place for a float, what the loop stores for call_later;
# through PyFloat_AsDouble otherwise: an int given to call_at, or anything
# with __float__; an item that is not a TimerHandle is a TypeError), and
# never during a walk.  So a walk runs no Python code and cannot fail: it
# moves pointers within the list's item array and doubles within the array,
# comparing doubles only.  The array is in step while the count it keeps is
# the list's length; when the list's length changed behind the heap's back,
# the next operation converts every due time again (if a conversion may run
# Python code, from a copy of the list, and the list must still hold the
# same items after: a RuntimeError if not).

import cython

cdef extern from "tidal/_timerheap.h":
    object _use_timer_class "tidal_heap_use_timer_class" (object timer_cls)
    object _push "tidal_heap_push" (list heap, bytearray whens, object timer)
    object _pop "tidal_heap_pop" (list heap, bytearray whens)
    object _rebuild "tidal_heap_rebuild" (list heap, bytearray whens)


@cython.final
cdef class TimerHeap:
    cdef readonly list items
    cdef bytearray _whens

    cpdef push(self, object timer)

    cpdef pop(self)

    cpdef replace(self, list timers)
