# C view of asyncio's Handle/TimerHandle instances, for the compiled loop.
# A declarations-only file (no module of this name exists at run time):
# _loop.pxd and _handles.pxd cimport from it.
#
# tidal's Handle and TimerHandle stay Python classes: they derive from
# asyncio's (code checks isinstance(h, asyncio.TimerHandle)), whose __slots__
# layout a cdef class cannot share.  What the compiled loop gets instead is
# asyncio's two classes declared as external types whose instances are the
# structs below, so `handle._cancelled` on a typed variable is a field load,
# and the constructors fill the slots without a Python call.  Interpreted,
# _handles.py defines the same four functions in Python.
#
# The structs follow CPython's rule for __slots__: one PyObject* per slot in
# sorted name order after the header, then __weakref__ on 3.11 (3.12 keeps
# weak references before the header).  Cython checks the sizes when a module
# cimporting this loads (check_size error), and _handles.py checks every
# offset against asyncio's member descriptors at import (layout_matches), so
# a Python whose asyncio lays them out otherwise fails the import loudly
# instead of reading the wrong field.

cdef extern from "tidal/_handle_layout.h":
    ctypedef class asyncio.events.Handle [object tidal_HandleObject, check_size error]:
        cdef object _args
        cdef object _callback
        cdef object _cancelled
        cdef object _context
        cdef object _loop
        cdef object _repr
        cdef object _source_traceback

    # A Handle's fields too: timer._cancelled is a struct member, not a lookup by name.
    ctypedef class asyncio.events.TimerHandle(Handle) [object tidal_TimerHandleObject, check_size error]:
        cdef object _scheduled
        cdef object _when

    object new_handle "tidal_new_handle" (object cls, object callback, object args, object loop,
                                          object context)
    # (Typed: it returns an instance of `cls`, always tidal's TimerHandle, so
    # the loop's typed local takes it without a subclass test per timer.)
    TimerHandle new_timer "tidal_new_timer" (object cls, object when, object callback, object args,
                                             object loop, object context)
    # `op` as a Handle/TimerHandle the loop reads as a struct (tidal's own
    # classes by a comparison, no MRO walk): a TypeError if it is not one.
    Handle as_handle "tidal_as_handle" (object op)
    TimerHandle as_timer "tidal_as_timer" (object op)
    # -1: the callback raised, its exception is set (no `except` clause:
    # the caller tests for it, so that its own try/except, which costs a
    # save and restore of the handled-exception state per handle, is only
    # entered when there is an error: _loop._callback_raised).
    int run_handle "tidal_run_handle" (object handle) noexcept
    # Returns -1: raises the exception that is set, into a try statement.
    int reraise "tidal_reraise" () except -1
    object use_freelist "tidal_use_freelist" (object handle_cls)
    object use_timer_freelist "tidal_use_timer_freelist" (object timer_cls)
    object use_direct_traverse "tidal_use_direct_traverse" (object handle_cls, object timer_cls)
    object use_fast_sleep "tidal_use_fast_sleep" (object callback, object future_cls)
    bint layout_matches "tidal_layout_matches" (object handle_cls, object timer_cls)
