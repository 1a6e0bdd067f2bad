# C declarations for _instrument.py (Cython pure-Python mode).  Keep in step with the .py.
#
# Instruments is a C struct, so the compiled loop reaches its per-hook lists
# and calls before/after/io_wait as C calls (_loop.pxd cimports it); the
# instruments' own methods are still Python calls.

import cython

from cpython.object cimport Py_SIZE

from tidal.trace._recorder cimport Tracer, descr_get
from tidal._handle_layout cimport Handle as CHandle
from tidal._poller cimport DirectPoller, EpollPoller

cdef object _NO_ARG
cdef tuple _TASK_TYPES
cdef frozenset _STEP_NAMES
cdef int _STEP, _MAYBE, _NEVER
cdef dict _kind_of_type
cdef dict _is_task_type
cdef object _MethodType, _BuiltinMethodType
cdef object _py_task, _PY_STEP, _PY_WAKEUP

cdef extern from *:
    """
    /* A bound method's function and self, as new references (no attribute lookup). */
    static inline PyObject *tidal_method_function(PyObject *m) {
        PyObject *f = PyMethod_GET_FUNCTION(m); Py_INCREF(f); return f;
    }
    static inline PyObject *tidal_method_self(PyObject *m) {
        PyObject *s = PyMethod_GET_SELF(m); Py_INCREF(s); return s;
    }
    /* A built-in method's __self__ (None for a static one). */
    static inline PyObject *tidal_cfunction_self(PyObject *m) {
        PyObject *s = PyCFunction_GET_SELF(m);
        if (s == NULL) s = Py_None;
        Py_INCREF(s);
        return s;
    }
    /* A built-in method's definition (its PyMethodDef), as an address. */
    static inline Py_ssize_t tidal_method_def(PyObject *m) {
        return (Py_ssize_t)((PyCFunctionObject *)m)->m_ml;
    }
    """
    object method_function "tidal_method_function" (object method)
    object method_self "tidal_method_self" (object method)
    Py_ssize_t method_def "tidal_method_def" (object method)
    object cfunction_self "tidal_cfunction_self" (object method)

cdef Py_ssize_t _wakeup_def
cdef object _CTask, _TASK_STATE, _PENDING
cdef bint _done(object task) except -1

# deque.append called as a C function (report_append: see _loop.pxd).
cdef extern from "tidal/_bound_call.h":
    object call_one "tidal_call_one" (object f, object arg)

cdef extern from "pythread.h":
    unsigned long thread_ident "PyThread_get_thread_ident" ()

cdef int _kind(object callback_type) except -1

# Typed CHandle: the loop's handle is one already (no type test per call).
@cython.locals(callback_type=type, definition=Py_ssize_t, kind=int)
cpdef object task_of(CHandle handle)


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
    cdef public bint bare_reads   # reads told as transports (the tracer's _read_began): a tracer only
    cdef public Tracer _tracer    # the first tidal Tracer, told directly (None: none)
    cdef unsigned long _loop_thread  # the loop's thread while it runs, else 0

    cpdef run_began(self)
    cpdef run_ended(self)

    cpdef fire(self, list methods, object arg=*)
    cdef _tracer_failed(self, str hook)
    cdef _scheduled(self, object task)
    cdef _exited(self, object task)
    cpdef object before(self, CHandle handle)
    cpdef after(self, object handle, object task)
    @cython.locals(nevents=Py_ssize_t)
    cdef Py_ssize_t wait_events(self, EpollPoller epoll, object timeout, double wait) except -1
    @cython.locals(nevents=Py_ssize_t)
    cpdef object io_wait(self, object poll, object timeout, DirectPoller direct, double wait)
