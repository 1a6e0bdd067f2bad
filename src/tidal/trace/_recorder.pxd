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
    /* Tracer._where's walk down a task's await chain, in C: each level's
       type, code, library memo and what it awaits read with borrowed
       references (what a level holds is held by the level above while
       nothing runs), where the same walk in Cython took a reference and
       gave it back for each (~400 instructions a step on 3.11, three
       levels deep; ~150 here).  The same walk as _walk_py in the .py,
       which runs interpreted and where this cannot (see tidal_walk_init).
       Writes the code and the innermost code into columns b and c at i
       and returns the offset (-1: none); -2: a code not yet known to be
       asyncio's or not (tidal_walk_unknown: _recorder.py learns it,
       kept on the code object, and walks again); -3: an error is set. */
    static PyGetSetDef *tidal_walk_await[3], *tidal_walk_frame[3];  /* coroutine, generator, async generator */
    static int tidal_walk_await_known, tidal_walk_lasti_known;
    static PyObject *tidal_walk_unknown_code;  /* borrowed: read at once by the caller */
    static int tidal_walk_init(PyObject *awaits, PyObject *frames, int await_known, int lasti_known) {
        /* (awaits, frames: the three types' getset descriptors, in that order) */
        for (int k = 0; k < 3; k++) {
            PyObject *a = PyTuple_GET_ITEM(awaits, k), *f = PyTuple_GET_ITEM(frames, k);
            if (Py_TYPE(a) != &PyGetSetDescr_Type || Py_TYPE(f) != &PyGetSetDescr_Type) {
                PyErr_SetString(PyExc_TypeError, "tidal_walk_init: not getset descriptors");
                return -1;
            }
            /* (The descriptors are kept alive by the types, which are static.) */
            tidal_walk_await[k] = ((PyGetSetDescrObject *)a)->d_getset;
            tidal_walk_frame[k] = ((PyGetSetDescrObject *)f)->d_getset;
        }
        tidal_walk_await_known = await_known;
        tidal_walk_lasti_known = lasti_known;
        return 0;
    }
    static inline int tidal_walk_kind(PyObject *o) {
        PyTypeObject *t = Py_TYPE(o);
        return t == &PyCoro_Type ? 0 : t == &PyGen_Type ? 1 : t == &PyAsyncGen_Type ? 2 : -1;
    }
    static inline PyObject *tidal_walk_code(PyObject *gen) {  /* borrowed */
        PyObject *code = tidal_gen_code(gen);
        Py_DECREF(code);  /* (the generator holds its code) */
        return code;
    }
    static Py_ssize_t tidal_walk(PyObject *awaitable, PyObject *b, PyObject *c, Py_ssize_t i) {
        PyObject *at = NULL, *code = Py_None, *inner = Py_None;
        int kind, at_kind = 0;
        Py_ssize_t offset = -1;
        if (tidal_library_index == -1) return -4;  /* no code extra to be had: the Python walk */
        while ((kind = tidal_walk_kind(awaitable)) >= 0) {
            inner = tidal_walk_code(awaitable);
            if (at == NULL) {  /* the task's own coroutine, asyncio's or not */
                at = awaitable; at_kind = kind; code = inner;
            } else {
                int library = tidal_library_memo(inner);
                if (library < 0) {
                    tidal_walk_unknown_code = inner;
                    return -2;
                }
                if (!library) { at = awaitable; at_kind = kind; code = inner; }
            }
            if (tidal_walk_await_known) {
                PyObject *next = tidal_gen_await(awaitable);
                Py_DECREF(next);  /* (held on the frame's stack of the level above) */
                awaitable = next;
            } else {
                PyGetSetDef *get = tidal_walk_await[kind];
                PyObject *next = get->get(awaitable, get->closure);
                if (next == NULL) return -3;
                Py_DECREF(next);  /* (as above) */
                awaitable = next;
            }
        }
        if (at != NULL) {
            int lasti = tidal_walk_lasti_known ? tidal_gen_lasti(at) : -3;
            if (lasti == -3) {
                PyGetSetDef *get = tidal_walk_frame[at_kind];
                PyObject *frame = get->get(at, get->closure);
                if (frame == NULL) return -3;
                lasti = frame == Py_None ? -2 : PyFrame_GetLasti((PyFrameObject *)frame);
                Py_DECREF(frame);
            }
            if (lasti == -2) code = inner = Py_None;  /* (finished: no frame) */
            else offset = lasti;
        }
        tidal_set_ref(b, i, code);
        tidal_set_ref(c, i, inner);
        return offset;
    }
    static inline PyObject *tidal_walk_unknown(void) {
        PyObject *code = tidal_walk_unknown_code;
        tidal_walk_unknown_code = NULL;
        Py_INCREF(code);
        return code;
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
    int walk_init "tidal_walk_init" (tuple awaits, tuple frames, bint await_known, bint lasti_known) except -1
    Py_ssize_t walk "tidal_walk" (object awaitable, list b, list c, Py_ssize_t i) except -3
    object walk_unknown "tidal_walk_unknown" ()

@cython.locals(filename=str)
cdef bint _is_library(object code) except -1
@cython.locals(kind=type, walk_of=tuple, at_walk=tuple, library=int, offset=Py_ssize_t, lasti=int)
cdef Py_ssize_t _walk_py(object awaitable, list b, list c, Py_ssize_t i) except -3

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
    @cython.locals(offset=Py_ssize_t, code=object)
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
