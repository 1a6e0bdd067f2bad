/* C view of asyncio's Handle/TimerHandle instances for the compiled loop:
   the structs, the freelists, the constructors, the GC walk and the layout
   check.  _handle_layout.pxd declares them to Cython and says why they exist. */

#ifndef TIDAL_HANDLE_LAYOUT_H
#define TIDAL_HANDLE_LAYOUT_H

#include "tidal/_slot_layout.h"

/* asyncio's Handle slots, in CPython's order (sorted by name): the one list
   that the struct below, the freelist's emptying, the GC walk and the layout
   check go over. */
#define TIDAL_HANDLE_SLOTS(X) \
    X(_args) X(_callback) X(_cancelled) X(_context) X(_loop) X(_repr) X(_source_traceback)

typedef struct {
    PyObject_HEAD
    TIDAL_HANDLE_SLOTS(TIDAL_SLOT_FIELD)
#if PY_VERSION_HEX < 0x030C0000
    PyObject *_weakreflist;
#endif
} tidal_HandleObject;

typedef struct {
    tidal_HandleObject __pyx_base;  /* (the name Cython gives a base class's part) */
    PyObject *_scheduled;
    PyObject *_when;
} tidal_TimerHandleObject;

/* Spare Handles.  Most handles the loop runs (a task's next step, a
   future's done callbacks) are dropped the moment they have run, and a
   heap-type object costs its allocation, GC linking and subtype_dealloc
   each time: a handle nobody else holds goes here instead, emptied and
   untracked, and tidal_new_handle takes it back.  Only tidal's own Handle
   class (set once by tidal_use_freelist), never a subclass; never one a
   weak reference points to (that reference must see it die).
   Room for 8,192 (at most ~900 KiB held, blocks pymalloc would mostly keep
   anyway): handles come in bursts (a thread's call_soon_threadsafe in a
   loop queues thousands before the loop runs one: ~5,000 a millisecond,
   and the GIL is handed over every 5 ms), and each handle made past the
   list is an allocation the cyclic GC counts and, once run, a
   subtype_dealloc.  Counted allocations are what start the GC's young
   collections (one every 700), and a collection in the middle of a
   burst walks every queued handle and context, and moves them towards
   the old generations, whose full collections then follow: with 4,096,
   a burst of 5,000 still spent a quarter of its time in the GC (with
   the contexts below).  (A queued handle stays tracked by the GC: untracked,
   it would make what it holds, its loop included, look referenced from
   outside, and a dropped loop with callbacks queued would never be
   collected.) */
#define TIDAL_FREELIST_SIZE 8192
static PyTypeObject *tidal_free_type = NULL;
static Py_ssize_t tidal_free_count = 0;
static PyObject *tidal_free_items[TIDAL_FREELIST_SIZE];

/* Spare contexts.  A handle or timer made without a context gets a copy
   of the caller's (asyncio's rule), and a copy is a new object that the
   cyclic GC counts, as the spare handles above say: CPython keeps only 255
   spare contexts of its own, so a burst of call_soon_threadsafe made and
   counted one per handle (the threadsafe micro spent ~40% of its CPU time
   in the GC, rloop none: its handles are not GC objects, and its
   call_soon_threadsafe gives every handle one shared context instead of
   a copy).  A context that a handle or timer dropped, and that nothing
   else holds or weakly refers to, comes here instead: emptied (no
   variable's value is kept) and untracked; a copy then takes one back
   and points it at the current context's variables, which is all a copy
   is (PyContext_CopyCurrent: a new context on the same immutable mapping,
   entered nowhere).  CPython's Context struct is private, but the same
   on 3.11 to 3.13; it is checked once (tidal_use_freelist), and on a
   Python where it differs every copy is PyContext_CopyCurrent's.  Room for
   as many as there are spare handles (at most 512 KiB held).
   The spares are never more than the copies made here with no spare to
   take (tidal_context_credit): the contexts asyncio's C Future and Task copy
   themselves (a done callback's, a task's) and pass to call_soon are
   dropped by the handles too, and kept here they starved CPython's own
   255 spares, which those copies draw from, while nothing here took
   them back (a gather of 1,000 tasks then allocated a context per task
   until the list was full: ~700 instructions a task, callgrind, 3.11). */
typedef struct {
    PyObject_HEAD
    PyObject *ctx_prev;
    PyObject *ctx_vars;
    PyObject *ctx_weakreflist;
    int ctx_entered;
} tidal_ContextObject;

static int tidal_context_spares_on = 0;
static Py_ssize_t tidal_free_context_count = 0;
/* Copies tidal_copy_context made with no spare to take (at most the
   list's size): the most spares there may be.  (Counted off the path
   that takes a spare: a call_soon chain's copies and drops cost nothing
   more.) */
static Py_ssize_t tidal_context_credit = 0;
static PyObject *tidal_free_contexts[TIDAL_FREELIST_SIZE];

/* Whether contexts are laid out as tidal_ContextObject says: the sizes,
   and a copy made by CPython shares its source's mapping, entered nowhere. */
static inline int tidal_context_layout_matches(void) {
    if (PyContext_Type.tp_basicsize != (Py_ssize_t)sizeof(tidal_ContextObject)
            || PyContext_Type.tp_weaklistoffset != (Py_ssize_t)offsetof(tidal_ContextObject, ctx_weakreflist))
        return 0;
    PyObject *ctx = PyContext_New();
    if (ctx == NULL) return -1;
    PyObject *copy = PyContext_Copy(ctx);
    if (copy == NULL) { Py_DECREF(ctx); return -1; }
    tidal_ContextObject *a = (tidal_ContextObject *)ctx, *b = (tidal_ContextObject *)copy;
    int ok = a->ctx_vars != NULL && a->ctx_vars == b->ctx_vars && b->ctx_prev == NULL
             && b->ctx_weakreflist == NULL && b->ctx_entered == 0;
    Py_DECREF(copy);
    Py_DECREF(ctx);
    return ok;
}

/* A copy of the calling thread's current context (PyContext_CopyCurrent). */
static inline PyObject *tidal_copy_context(void) {
    if (tidal_free_context_count > 0) {
        tidal_ContextObject *current = (tidal_ContextObject *)PyThreadState_Get()->context;
        if (current != NULL) {  /* (NULL: the thread has none yet; CPython makes it) */
            tidal_ContextObject *ctx = (tidal_ContextObject *)tidal_free_contexts[--tidal_free_context_count];
            Py_INCREF(current->ctx_vars);
            ctx->ctx_vars = current->ctx_vars;
            PyObject_GC_Track((PyObject *)ctx);
            return (PyObject *)ctx;  /* the list's reference becomes the caller's */
        }
    }
    if (tidal_context_credit < TIDAL_FREELIST_SIZE) tidal_context_credit++;
    return PyContext_CopyCurrent();
}

/* Let go of a handle's context (the reference the handle held). */
static inline void tidal_drop_context(PyObject *op) {
    tidal_ContextObject *ctx = (tidal_ContextObject *)op;
    if (Py_REFCNT(op) != 1 || tidal_free_context_count >= tidal_context_credit
            || !Py_IS_TYPE(op, &PyContext_Type) || !tidal_context_spares_on
            || ctx->ctx_weakreflist != NULL
            || ctx->ctx_entered || ctx->ctx_prev != NULL) {
        Py_DECREF(op);
        return;
    }
    /* Untracked first (see tidal_recycle_handle). */
    PyObject_GC_UnTrack(op);
    Py_CLEAR(ctx->ctx_vars);
    if (tidal_free_context_count >= tidal_context_credit) {  /* a finalizer above filled it */
        PyObject_GC_Track(op);  /* (its deallocator untracks it) */
        Py_DECREF(op);
        return;
    }
    tidal_free_contexts[tidal_free_context_count++] = op;  /* the handle's reference, now the list's */
}

/* Empty a handle's context slot, the context going to the spares if it can. */
static inline void tidal_take_context(tidal_HandleObject *h) {
    PyObject *context = h->_context;
    if (context != NULL) {
        h->_context = NULL;
        tidal_drop_context(context);
    }
}

/* Spare 1-tuples of arguments.  Most handles the loop runs hold a tuple
   made for them alone: asyncio's C Future schedules each done callback
   (a task's wake-up: `task_wakeup(fut)`) as call_soon(callback, fut,
   context=ctx), and call_soon's C entry packs `(fut,)` (_call_soon_entry.h);
   two per round trip of a Queue ping-pong.  A new tuple is ~80
   instructions (CPython's own free list, GC link and track) and its
   dealloc ~50 more (3.11): a recycled handle's 1-tuple that nothing else
   holds is emptied, untracked (an empty slot must not be seen by
   gc.get_objects) and kept here, and the entry fills one again.  As for
   the contexts, the spares are never more than the tuples the entry made
   with no spare to take (tidal_args_credit), so a module whose copy of
   this header recycles handles but never takes a tuple keeps none.
   Not from 3.14: a tuple there caches its hash, which a refill would have
   to reset. */
#define TIDAL_ARGS_SPARES_SIZE 1024
#if PY_VERSION_HEX < 0x030E0000
#define TIDAL_ARGS_SPARES 1
#else
#define TIDAL_ARGS_SPARES 0
#endif
static Py_ssize_t tidal_spare_args_count = 0;
static Py_ssize_t tidal_args_credit = 0;
static PyObject *tidal_spare_args[TIDAL_ARGS_SPARES_SIZE];

/* (arg,): a new reference. */
static inline PyObject *tidal_args_of_one(PyObject *arg) {
#if TIDAL_ARGS_SPARES
    if (tidal_spare_args_count > 0) {
        PyObject *args = tidal_spare_args[--tidal_spare_args_count];
        Py_INCREF(arg);
        PyTuple_SET_ITEM(args, 0, arg);
        PyObject_GC_Track(args);
        return args;  /* the list's reference becomes the caller's */
    }
    if (tidal_args_credit < TIDAL_ARGS_SPARES_SIZE) tidal_args_credit++;
#endif
    PyObject *args = PyTuple_New(1);
    if (args == NULL) return NULL;
    Py_INCREF(arg);
    PyTuple_SET_ITEM(args, 0, arg);
    return args;
}

/* Let go of a handle's arguments (the reference the handle held). */
static inline void tidal_drop_args(PyObject *args) {
#if TIDAL_ARGS_SPARES
    if (Py_REFCNT(args) == 1 && tidal_spare_args_count < tidal_args_credit
            && PyTuple_CheckExact(args) && PyTuple_GET_SIZE(args) == 1) {
        /* Untracked first (see tidal_recycle_handle). */
        PyObject_GC_UnTrack(args);
        PyObject *item = PyTuple_GET_ITEM(args, 0);
        PyTuple_SET_ITEM(args, 0, NULL);
        Py_DECREF(item);
        if (tidal_spare_args_count < tidal_args_credit) {
            tidal_spare_args[tidal_spare_args_count++] = args;  /* the handle's reference, now the list's */
            return;
        }
        /* A finalizer run by the decref filled the list: freed as usual
           (a tuple's dealloc takes an empty slot). */
        PyObject_GC_Track(args);
    }
#endif
    Py_DECREF(args);
}

/* asyncio's Handle and TimerHandle, the bases of tidal's (tidal_as_handle). */
static PyTypeObject *tidal_handle_base = NULL, *tidal_timer_base = NULL;

static inline PyObject *tidal_use_freelist(PyObject *handle_cls) {
    if (tidal_free_type == NULL) {
        int ok = tidal_context_layout_matches();
        if (ok < 0) return NULL;
        tidal_context_spares_on = ok;
        Py_INCREF(handle_cls);
        tidal_free_type = (PyTypeObject *)handle_cls;
        tidal_handle_base = tidal_free_type->tp_base;
    }
    Py_RETURN_NONE;
}

/* The fields a handle is made with and keeps while it is not cancelled
   in debug mode: _cancelled False, _repr and _source_traceback None. */
static inline void tidal_set_handle_defaults(tidal_HandleObject *h) {
    Py_INCREF(Py_False); h->_cancelled = Py_False;
    Py_INCREF(Py_None); h->_repr = Py_None;
    Py_INCREF(Py_None); h->_source_traceback = Py_None;
}

/* A handle whose defaults are set (a spare keeps them: see
   tidal_recycle_handle) and whose other fields are empty. */
static inline tidal_HandleObject *tidal_alloc_handle(PyTypeObject *t) {
    if (t == tidal_free_type && tidal_free_count > 0) {
        PyObject *h = tidal_free_items[--tidal_free_count];
        PyObject_GC_Track(h);
        return (tidal_HandleObject *)h;  /* the list's reference becomes the caller's */
    }
    PyObject *h = t->tp_alloc(t, 0);
    if (h == NULL) return NULL;
    tidal_set_handle_defaults((tidal_HandleObject *)h);
    return (tidal_HandleObject *)h;
}

/* `op` has run; if the caller's reference is the only one, keep it. */
static inline void tidal_recycle_handle(PyObject *op) {
    PyTypeObject *t = Py_TYPE(op);
    if (t != tidal_free_type || Py_REFCNT(op) != 1 || tidal_free_count >= TIDAL_FREELIST_SIZE
        || *(PyObject **)((char *)op + t->tp_weaklistoffset) != NULL) return;
    /* Untracked first, so that nothing (gc.get_objects, a finalizer run
       by the clears below) can reach it while it is emptied. */
    PyObject_GC_UnTrack(op);
    tidal_HandleObject *h = (tidal_HandleObject *)op;
    PyObject *args = h->_args;
    if (args != NULL) {
        h->_args = NULL;
        tidal_drop_args(args);
    }
    Py_CLEAR(h->_callback);
    tidal_take_context(h);
    Py_CLEAR(h->_loop);
    /* The defaults are kept for the next use (six reference counts a
       handle fewer); reset if they changed (a callback that cancelled
       its own handle; its repr kept in debug mode). */
    if (h->_cancelled != Py_False) { Py_INCREF(Py_False); Py_XSETREF(h->_cancelled, Py_False); }
    if (h->_repr != Py_None) { Py_INCREF(Py_None); Py_XSETREF(h->_repr, Py_None); }
    if (h->_source_traceback != Py_None) { Py_INCREF(Py_None); Py_XSETREF(h->_source_traceback, Py_None); }
    if (tidal_free_count >= TIDAL_FREELIST_SIZE) {  /* a finalizer above filled it */
        PyObject_GC_Track(op);  /* (the caller's reference frees it as usual) */
        return;
    }
    Py_INCREF(op);
    tidal_free_items[tidal_free_count++] = op;
}

/* Spare TimerHandles.  A timer is usually held by whoever made it (a
   sleep, a timeout) until after it has run or been cancelled, so it
   cannot be caught as the loop drops it, as a Handle is: tidal's
   TimerHandle class gets this as its tp_dealloc instead, and a timer
   of exactly that class, with no weak reference to it, is emptied and
   kept for tidal_new_timer rather than freed.  It is also the whole
   deallocator of the class (tidal_use_timer_freelist installs it only
   while the class adds nothing to asyncio's layout and has no
   finalizer), and the base deallocator of any subclass, whose
   subtype_dealloc has by then run the subclass's own part: its
   finalizer, its slots and dict, and left the type's reference to us.
   Room for a thousand: timers often come and go in batches (a gather of
   sleeps, a burst of connections arming their timeouts, all cancelled
   or run in one turn), and a timer taken from here is one the cyclic
   GC does not count as an allocation (its young generation is collected
   every 700 counted), so fewer collections run; at most 112 KiB held. */
#define TIDAL_TIMER_FREELIST_SIZE 1024
static PyTypeObject *tidal_free_timer_type = NULL;
static PyTypeObject *tidal_timer_type = NULL;  /* tidal's TimerHandle, whether or not it has spares */
static Py_ssize_t tidal_free_timer_count = 0;
static PyObject *tidal_free_timers[TIDAL_TIMER_FREELIST_SIZE];

static void tidal_timer_dealloc(PyObject *op) {
    PyTypeObject *t = Py_TYPE(op);
    tidal_TimerHandleObject *h = (tidal_TimerHandleObject *)op;
    /* A __del__ given to the class after import, run as subtype_dealloc
       would (a subclass's instance has had its own run already). */
    if (t == tidal_free_timer_type && t->tp_finalize != NULL
            && PyObject_CallFinalizerFromDealloc(op) < 0)
        return;  /* resurrected */
    PyObject_GC_UnTrack(op);
    /* (A no-op for a subclass's instance: its subtype_dealloc has its own.) */
    Py_TRASHCAN_BEGIN(op, tidal_timer_dealloc)
    if (*(PyObject **)((char *)op + t->tp_weaklistoffset) != NULL)
        PyObject_ClearWeakRefs(op);
    Py_CLEAR(h->_scheduled);
    Py_CLEAR(h->_when);
    tidal_take_context(&h->__pyx_base);
    #define TIDAL_CLEAR_SLOT(f) Py_CLEAR(h->__pyx_base.f);
    TIDAL_HANDLE_SLOTS(TIDAL_CLEAR_SLOT)
    #undef TIDAL_CLEAR_SLOT
    /* (Checked after the clears: a finalizer they ran may have filled it.) */
    if (t == tidal_free_timer_type && tidal_free_timer_count < TIDAL_TIMER_FREELIST_SIZE)
        tidal_free_timers[tidal_free_timer_count++] = op;  /* at refcount 0, untracked */
    else
        t->tp_free(op);
    Py_DECREF(t);  /* tidal_free_timer_type keeps the class itself alive */
    Py_TRASHCAN_END
}

static inline PyObject *tidal_use_timer_freelist(PyObject *timer_cls) {
    PyTypeObject *t = (PyTypeObject *)timer_cls;
    if (tidal_timer_type == NULL) {
        Py_INCREF(timer_cls);
        tidal_timer_type = t;
        tidal_timer_base = t->tp_base;
    }
    if (tidal_free_timer_type == NULL && t->tp_basicsize == (Py_ssize_t)sizeof(tidal_TimerHandleObject)
            && Py_SIZE(t) == 0 && t->tp_dictoffset == 0 && t->tp_weaklistoffset != 0
            && t->tp_dealloc == t->tp_base->tp_dealloc  /* subtype_dealloc */
            && t->tp_finalize == NULL && t->tp_del == NULL) {
        Py_INCREF(timer_cls);
        tidal_free_timer_type = t;
        t->tp_dealloc = tidal_timer_dealloc;
    }
    Py_RETURN_NONE;
}

/* `op` as a Handle (a TimerHandle, for tidal_as_timer) whose fields the
   loop loads from its struct: anything else is refused first.  Cython's
   test for a typed assignment walks the class's MRO (tidal's classes are
   subclasses of asyncio's: ~30 instructions, per handle run and per
   timer due); tidal's own classes are known here by a comparison, any
   other goes through the subclass test (a TypeError if it fails).  A new
   reference. */
static PyObject *tidal_as_subclass(PyObject *op, PyTypeObject *base) {
    if (base == NULL || !PyObject_TypeCheck(op, base)) {
        PyErr_Format(PyExc_TypeError, "Cannot convert %.200s to %.200s", Py_TYPE(op)->tp_name,
                     base == NULL ? "a handle" : base->tp_name);
        return NULL;
    }
    Py_INCREF(op);
    return op;
}

static inline PyObject *tidal_as_handle(PyObject *op) {
    PyTypeObject *t = Py_TYPE(op);
    if (t == tidal_free_type || t == tidal_timer_type) {
        Py_INCREF(op);
        return op;
    }
    return tidal_as_subclass(op, tidal_handle_base);
}

static inline PyObject *tidal_as_timer(PyObject *op) {
    if (Py_TYPE(op) == tidal_timer_type) {
        Py_INCREF(op);
        return op;
    }
    return tidal_as_subclass(op, tidal_timer_base);
}

static inline tidal_TimerHandleObject *tidal_alloc_timer(PyTypeObject *t) {
    if (t == tidal_free_timer_type && tidal_free_timer_count > 0) {
        PyObject *op = tidal_free_timers[--tidal_free_timer_count];
        PyObject_Init(op, t);  /* refcount 1, and the class's reference back */
        PyObject_GC_Track(op);
        return (tidal_TimerHandleObject *)op;
    }
    return (tidal_TimerHandleObject *)t->tp_alloc(t, 0);
}

/* Fill the slots asyncio's Handle.__init__ fills, as the non-debug loop
   wants them (the defaults, no source traceback and no repr, are set at
   allocation): the current context copied unless one is given. */
static inline tidal_HandleObject *tidal_fill_handle(tidal_HandleObject *h, PyObject *callback,
                                             PyObject *args, PyObject *loop, PyObject *context) {
    if (context == Py_None) {
        context = tidal_copy_context();
        if (context == NULL) { Py_DECREF(h); return NULL; }
    } else {
        Py_INCREF(context);
    }
    h->_context = context;
    Py_INCREF(callback); h->_callback = callback;
    Py_INCREF(args); h->_args = args;
    Py_INCREF(loop); h->_loop = loop;
    return h;
}

/* asyncio.sleep's wake-up without a Python frame.  Each sleep schedules
   asyncio.futures._set_result_unless_cancelled(future, result) with
   call_later; that function is `if fut.cancelled(): return` then
   `fut.set_result(result)`, and it is a Python function, so each sleep's
   timer would push a frame to make two C calls.  For asyncio's own C
   Future (exactly: a subclass may override either method) that is still
   pending, those two calls are made here instead, in the handle's
   context as before.  A future already done (cancelled, or finished: an
   InvalidStateError to report) runs the function itself, so what it
   does and raises is the function's own; so does one with attributes of
   its own (fut.cancelled replaced on the instance, say), which the
   function's lookups by name would find.  The methods are the class's,
   looked up once (the class is immutable: nothing can replace them) and
   called as the class's descriptors, without a lookup by name per call
   (~250 instructions a sleep on 3.12).  Set once by tidal_use_fast_sleep,
   only for an immutable class; interpreted, the function always runs. */
static PyObject *tidal_sleep_callback = NULL;
static PyTypeObject *tidal_sleep_future_type = NULL;
static PyObject *tidal_sleep_done = NULL, *tidal_sleep_set_result = NULL;

static inline PyObject *tidal_use_fast_sleep(PyObject *callback, PyObject *future_cls) {
    if (!PyType_Check(future_cls)) {
        PyErr_SetString(PyExc_TypeError, "tidal_use_fast_sleep: a Future class is needed");
        return NULL;
    }
    PyTypeObject *t = (PyTypeObject *)future_cls;
    if (tidal_sleep_callback == NULL && (t->tp_flags & Py_TPFLAGS_IMMUTABLETYPE)
            && t->tp_dictoffset >= 0) {
        PyObject *done = PyObject_GetAttrString(future_cls, "done");
        PyObject *set_result = done == NULL ? NULL : PyObject_GetAttrString(future_cls, "set_result");
        if (set_result == NULL) {
            Py_XDECREF(done);
            return NULL;
        }
        tidal_sleep_done = done;
        tidal_sleep_set_result = set_result;
        Py_INCREF(future_cls);
        tidal_sleep_future_type = t;
        Py_INCREF(callback);
        tidal_sleep_callback = callback;
    }
    Py_RETURN_NONE;
}

/* Whether callback(*args) is a sleep's wake-up of asyncio's own Future
   without attributes of its own: one the two calls below can make. */
static inline int tidal_is_sleep(PyObject *callback, PyObject *args) {
    if (callback != tidal_sleep_callback || PyTuple_GET_SIZE(args) != 2) return 0;
    PyObject *fut = PyTuple_GET_ITEM(args, 0);
    if (!Py_IS_TYPE(fut, tidal_sleep_future_type)) return 0;
    Py_ssize_t dict_offset = tidal_sleep_future_type->tp_dictoffset;
    if (dict_offset > 0) {
        PyObject *dict = *(PyObject **)((char *)fut + dict_offset);
        if (dict != NULL && (!PyDict_Check(dict) || PyDict_GET_SIZE(dict) != 0)) return 0;
    }
    return 1;
}

/* 1: the wake-up was done here; 0: not a sleep's pending future without
   attributes of its own (call the callback); -1: an error is set. */
static inline int tidal_fast_sleep(PyObject *callback, PyObject *args) {
    if (!tidal_is_sleep(callback, args)) return 0;
    PyObject *fut = PyTuple_GET_ITEM(args, 0);
    PyObject *call[2] = {fut, PyTuple_GET_ITEM(args, 1)};
    PyObject *done = PyObject_Vectorcall(tidal_sleep_done, call, 1, NULL);
    if (done == NULL) return -1;
    int pending = done == Py_False;
    Py_DECREF(done);
    if (!pending) return 0;
    PyObject *r = PyObject_Vectorcall(tidal_sleep_set_result, call, 2, NULL);
    if (r == NULL) return -1;
    Py_DECREF(r);
    return 1;
}

static inline PyObject *tidal_new_handle(PyObject *cls, PyObject *callback, PyObject *args,
                                  PyObject *loop, PyObject *context) {
    tidal_HandleObject *h = tidal_alloc_handle((PyTypeObject *)cls);
    if (h == NULL) return NULL;
    return (PyObject *)tidal_fill_handle(h, callback, args, loop, context);
}

static inline PyObject *tidal_new_timer(PyObject *cls, PyObject *when, PyObject *callback,
                                 PyObject *args, PyObject *loop, PyObject *context) {
    tidal_TimerHandleObject *h = tidal_alloc_timer((PyTypeObject *)cls);
    if (h == NULL) return NULL;
    Py_INCREF(when); h->_when = when;
    Py_INCREF(Py_False); h->_scheduled = Py_False;
    tidal_set_handle_defaults(&h->__pyx_base);
    if (context == Py_None && PyTuple_CheckExact(args) && tidal_is_sleep(callback, args)) {
        /* A sleep's timer holds the current context itself (the sleeping
           task's), not a copy: its wake-up reads no context variable
           (tidal_run_handle makes it outside any context, and the
           function it stands for, should it run instead, calls only the
           C Future's own methods), so a copy would only be made, dropped
           and, with thousands of sleepers, fetched cold from memory in
           between (~390 instructions and ~5% of the time a sleep, 10,000
           tasks sleeping, 3.12).  What differs: this timer's
           get_context() is the task's context, not a snapshot of it, seen
           only by digging the timer out of loop._scheduled.  A task's
           context is entered only while the task steps, never while the
           loop runs a timer, so the function can still run in it. */
        PyObject *current = PyThreadState_Get()->context;
        if (current != NULL) context = current;
    }
    return (PyObject *)tidal_fill_handle(&h->__pyx_base, callback, args, loop, context);
}

/* asyncio's Handle._run without its Python frame: context.run(callback,
   *args), which is exactly enter, call, exit; then the handle may be
   kept for reuse.  -1 with the exception set if the callback raised
   (the handle is then left for the loop to report). */
static inline int tidal_run_handle(PyObject *op) {
    tidal_HandleObject *h = (tidal_HandleObject *)op;
    /* Held for the call: the callback may cancel its own handle. */
    PyObject *context = h->_context, *callback = h->_callback, *args = h->_args;
    PyObject *result = NULL;
    Py_INCREF(context);
    Py_INCREF(callback);
    if (PyTuple_CheckExact(args)) {
        Py_INCREF(args);
    } else {  /* a handle made by hand with a list of arguments */
        args = PySequence_Tuple(args);
        if (args == NULL) goto done;
    }
    /* A sleep's wake-up is made outside the handle's context: it reads no
       context variable, and the future's done() and set_result() schedule
       its callbacks each with its own context. */
    int fast = tidal_fast_sleep(callback, args);
    if (fast > 0) {
        result = Py_None;
        Py_INCREF(result);
    } else if (fast == 0) {
        if (PyContext_Enter(context) == 0) {
            /* A vectorcall where the callback has one (a function, a bound
               method: its arguments read in place, without PyObject_Call's
               steps from the tuple to it); the tuple otherwise (asyncio's
               C task step, whose type has only tp_call). */
            result = PyVectorcall_Function(callback) != NULL
                ? PyObject_Vectorcall(callback, &PyTuple_GET_ITEM(args, 0), PyTuple_GET_SIZE(args), NULL)
                : PyObject_Call(callback, args, NULL);
            if (PyContext_Exit(context) < 0) Py_CLEAR(result);
        }
    }
    Py_DECREF(args);
done:
    Py_DECREF(callback);
    Py_DECREF(context);
    if (result == NULL) return -1;
    Py_DECREF(result);
    tidal_recycle_handle(op);
    return 0;
}

/* The error set (by a callback tidal_run_handle ran) goes on, as a raise. */
static inline int tidal_reraise(void) {
    return -1;
}

/* The cyclic GC's walk of a handle's references.  CPython gives a
   class with __slots__ subtype_traverse, which climbs the class chain
   (tidal's class, asyncio's TimerHandle, asyncio's Handle) and, at each
   level, loops over that level's member table; a timer is walked twice
   by each collection that finds it young, and timers live long enough
   to be found.  These visit the same references in the same order (a
   class's own slots before its base's, then the class itself, as a
   heap type's instance refers to it) as straight-line loads.  Set on
   tidal's two classes only: a subclass's subtype_traverse visits its
   own slots, then calls these. */
static inline int tidal_handle_slots_traverse(tidal_HandleObject *h, visitproc visit, void *arg) {
    #define TIDAL_VISIT_SLOT(f) Py_VISIT(h->f);
    TIDAL_HANDLE_SLOTS(TIDAL_VISIT_SLOT)
    #undef TIDAL_VISIT_SLOT
    Py_VISIT(Py_TYPE(h));
    return 0;
}

static inline int tidal_handle_traverse(PyObject *op, visitproc visit, void *arg) {
    return tidal_handle_slots_traverse((tidal_HandleObject *)op, visit, arg);
}

static inline int tidal_timer_traverse(PyObject *op, visitproc visit, void *arg) {
    tidal_TimerHandleObject *t = (tidal_TimerHandleObject *)op;
    Py_VISIT(t->_scheduled);
    Py_VISIT(t->_when);
    return tidal_handle_slots_traverse(&t->__pyx_base, visit, arg);
}

/* Once, at import, after the layout check: tidal's classes add no slots
   of their own, so the structs above are all there is to visit. */
static inline PyObject *tidal_use_direct_traverse(PyObject *handle_cls, PyObject *timer_cls) {
    PyTypeObject *h = (PyTypeObject *)handle_cls, *t = (PyTypeObject *)timer_cls;
    /* Only while tidal's classes really add nothing to asyncio's layout
       (layout_matches checks asyncio's classes, not these): no slot of
       their own, no __dict__, and CPython's generic walk still in place.
       Otherwise they keep subtype_traverse, which sees everything. */
    if (h->tp_basicsize == (Py_ssize_t)sizeof(tidal_HandleObject) && Py_SIZE(h) == 0
            && h->tp_dictoffset == 0 && h->tp_traverse == h->tp_base->tp_traverse)
        h->tp_traverse = tidal_handle_traverse;
    if (t->tp_basicsize == (Py_ssize_t)sizeof(tidal_TimerHandleObject) && Py_SIZE(t) == 0
            && t->tp_dictoffset == 0 && t->tp_traverse == t->tp_base->tp_traverse)
        t->tp_traverse = tidal_timer_traverse;
    Py_RETURN_NONE;
}

static inline int tidal_layout_matches(PyObject *handle_cls, PyObject *timer_cls) {
    #define TIDAL_H(f) tidal_slot_at(handle_cls, #f, offsetof(tidal_HandleObject, f)) \
                    && tidal_slot_at(timer_cls, #f, offsetof(tidal_HandleObject, f)) &&
    int ok = TIDAL_HANDLE_SLOTS(TIDAL_H) 1  /* each slot is "check &&" */
             && tidal_slot_at(timer_cls, "_scheduled", offsetof(tidal_TimerHandleObject, _scheduled))
             && tidal_slot_at(timer_cls, "_when", offsetof(tidal_TimerHandleObject, _when))
             && ((PyTypeObject *)handle_cls)->tp_basicsize == sizeof(tidal_HandleObject)
             && ((PyTypeObject *)timer_cls)->tp_basicsize == sizeof(tidal_TimerHandleObject);
    #undef TIDAL_H
    return ok;
}

#endif /* TIDAL_HANDLE_LAYOUT_H */
