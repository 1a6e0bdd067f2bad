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

# The walk down a task's await chain, per task step (Tracer._where): the
# descriptors it reads through, and their getters as C calls.
cdef tuple _CORO_WALK, _GEN_WALK, _AGEN_WALK
cdef type _Coro, _Gen, _AGen
cdef object _CTask, _TASK_CORO
cdef bint _lasti_known, _await_known

cdef extern from *:
    """
    /* descr.__get__(obj): the attribute a descriptor of obj's type gives,
       by the descriptor's getter (no lookup of the name along the MRO). */
    static inline PyObject *tidal_descr_get(PyObject *descr, PyObject *obj) {
        return Py_TYPE(descr)->tp_descr_get(descr, obj, (PyObject *)Py_TYPE(obj));
    }
    /* The code of a coroutine, generator or async generator (which share
       the generator's head), as a new reference. */
    static inline PyObject *tidal_gen_code(PyObject *gen) {
    #if PY_VERSION_HEX >= 0x030C0000
        return (PyObject *)PyGen_GetCode((PyGenObject *)gen);
    #else
        PyObject *code = (PyObject *)((PyGenObject *)gen)->gi_code;
        Py_INCREF(code);
        return code;
    #endif
    }
    /* frame.f_lasti, as a C int (no int object). */
    static inline int tidal_frame_lasti(PyObject *frame) {
        return PyFrame_GetLasti((PyFrameObject *)frame);
    }
    /* A suspended coroutine's (or generator's) f_lasti read from the
       coroutine itself: on 3.11, cr_frame raises an audit event and makes
       a frame object, ~150 instructions a step.  -2: finished (cr_frame is
       None); -3: not known here (another Python: read the frame).  The
       3.11 interpreter frame's head (Include/internal/pycore_frame.h) up
       to prev_instr; _recorder.py checks the answer against the frame's
       at import, and reads the frame if they differ. */
    #if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
    typedef struct {
        PyObject *f_func, *f_globals, *f_builtins, *f_locals;
        PyCodeObject *f_code;
        PyObject *frame_obj;
        void *previous;
        _Py_CODEUNIT *prev_instr;
    } tidal_iframe_head;
    static inline int tidal_gen_lasti(PyObject *gen) {
        PyGenObject *g = (PyGenObject *)gen;
        if (g->gi_frame_state >= 1) return -2;  /* FRAME_COMPLETED, FRAME_CLEARED */
        tidal_iframe_head *f = (tidal_iframe_head *)g->gi_iframe;
        Py_ssize_t units = f->prev_instr - _PyCode_CODE(f->f_code);
        return units < 0 ? -1 : (int)(units * (Py_ssize_t)sizeof(_Py_CODEUNIT));
    }
    #else
    static inline int tidal_gen_lasti(PyObject *gen) { (void)gen; return -3; }
    #endif
    /* What a suspended coroutine (or generator) awaits, as cr_await (and
       gi_yieldfrom) say it, read from the coroutine: on 3.11 the getter
       (_PyGen_yf) is a descriptor call per level of a task's await chain.
       The top of the frame's stack, while its next instruction is a RESUME
       after an await (oparg >= 2; RESUME_QUICK once the code is quickened,
       as _PyGen_yf's deoptimising table says); None otherwise.  -> Py_None where not
       known here (another Python): _recorder.py then reads the descriptor
       (and does the same if the answer disagrees with it at import). */
    #if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
    #include "opcode.h"
    typedef struct {
        tidal_iframe_head head;
        int stacktop;
        char is_entry, owner;
        PyObject *localsplus[1];
    } tidal_iframe_stack;
    static inline PyObject *tidal_gen_await(PyObject *gen) {
        PyGenObject *g = (PyGenObject *)gen;
        PyObject *yf = Py_None;
        if (g->gi_frame_state < 4 && g->gi_frame_state != -2) {  /* < FRAME_CLEARED, not FRAME_CREATED */
            tidal_iframe_stack *f = (tidal_iframe_stack *)g->gi_iframe;
            _Py_CODEUNIT next = f->head.prev_instr[1];
            if ((_Py_OPCODE(next) == RESUME || _Py_OPCODE(next) == RESUME_QUICK)
                    && _Py_OPARG(next) >= 2 && f->stacktop > 0)
                yf = f->localsplus[f->stacktop - 1];
        }
        Py_INCREF(yf);
        return yf;
    }
    #define TIDAL_GEN_AWAIT_KNOWN 1
    #else
    static inline PyObject *tidal_gen_await(PyObject *gen) { (void)gen; Py_INCREF(Py_None); return Py_None; }
    #define TIDAL_GEN_AWAIT_KNOWN 0
    #endif
    /* Whether a code object is asyncio's, kept on the code object itself
       (its co_extra, PEP 523's per-code scratch space: one slot index per
       process, asked for once): 1 + the answer, so NULL is "not known".
       Exact, where a table keyed by address lost one code to another
       sharing its slot (two steps in three looked up by name, ~340
       instructions each).  No reference is held: the value is an int. */
    #if PY_VERSION_HEX >= 0x030C0000  /* (the same functions, renamed: the old names warn) */
    #define tidal_code_get_extra PyUnstable_Code_GetExtra
    #define tidal_code_set_extra PyUnstable_Code_SetExtra
    #define tidal_code_extra_index PyUnstable_Eval_RequestCodeExtraIndex
    #else
    #define tidal_code_get_extra _PyCode_GetExtra
    #define tidal_code_set_extra _PyCode_SetExtra
    #define tidal_code_extra_index _PyEval_RequestCodeExtraIndex
    #endif
    static Py_ssize_t tidal_library_index = -2;  /* -1: no slot to be had */
    static inline int tidal_library_memo(PyObject *code) {
        void *extra = NULL;
        if (tidal_library_index < 0) return -1;
        if (tidal_code_get_extra(code, tidal_library_index, &extra) < 0) { PyErr_Clear(); return -1; }
        return extra == NULL ? -1 : (int)((Py_intptr_t)extra - 1);
    }
    static inline void tidal_remember_library(PyObject *code, int library) {
        if (tidal_library_index == -2) tidal_library_index = tidal_code_extra_index(NULL);
        if (tidal_library_index >= 0
                && tidal_code_set_extra(code, tidal_library_index, (void *)(Py_intptr_t)(library + 1)) < 0)
            PyErr_Clear();
    }
    """
    object descr_get "tidal_descr_get" (object descr, object obj)
    object gen_code "tidal_gen_code" (object gen)
    int frame_lasti "tidal_frame_lasti" (object frame)
    int gen_lasti "tidal_gen_lasti" (object gen)
    object gen_await "tidal_gen_await" (object gen)
    bint GEN_AWAIT_KNOWN "TIDAL_GEN_AWAIT_KNOWN"
    int library_memo "tidal_library_memo" (object code)
    void remember_library "tidal_remember_library" (object code, bint library)

@cython.locals(filename=str)
cdef bint _is_library(object code) except -1

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
    cdef long long _flows
    cdef bint _running

    cdef object _error

    # What the loop's dispatch calls (_instrument.Instruments): C calls that
    # never raise; -1 means the error is in _error (see _begin in the .py).
    cdef int _spawned(self, object task) noexcept
    @cython.locals(i=Py_ssize_t)
    cdef int _scheduled(self, object task) noexcept
    @cython.locals(i=Py_ssize_t)
    cdef int _step_began(self, object task) noexcept
    @cython.locals(kind=type, walk=tuple, at_walk=tuple, library=int, offset=Py_ssize_t, lasti=int)
    cdef int _where(self, Py_ssize_t i, object task) except -1
    cdef int _step_ended(self, object task) noexcept
    cdef int _exited(self, object task) noexcept
    @cython.locals(lag=cython.longlong, i=Py_ssize_t)
    cdef int _callback_began(self, CHandle handle) noexcept
    cdef int _read_began(self, object transport, object context) noexcept
    @cython.locals(i=Py_ssize_t)
    cdef inline int _call(self, object callback, object context, long long lag, int read) noexcept
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
