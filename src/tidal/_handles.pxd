# C declarations for _handles.py (Cython pure-Python mode).  Keep in step with the .py.
#
# Handle and TimerHandle stay Python classes: they derive from asyncio's
# Handle/TimerHandle (code checks isinstance(h, asyncio.TimerHandle)), whose
# __slots__ layout a cdef class cannot share.  Compiled, their methods (_run
# for every callback) are still C functions; here only the module's
# constants become C values.

cdef object _copy_context
cdef bint _COMPILED
cdef int _CALLER_DEPTH
cdef bint _FORMAT_TAKES_DEBUG

cdef _report(object handle, object exc)
