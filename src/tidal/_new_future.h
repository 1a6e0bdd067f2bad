/* create_future's Future, made without a call to Future.__init__.
   _loop.pxd declares these and _loop.py's create_future says when they run.

   asyncio's C Future.__init__(loop=loop) parses its keyword (the argument
   clinic's generic path, for a dict) and calls loop.get_debug() through a
   method lookup; on tidal's loop, when its get_debug is tidal's own and
   debug mode is off, what it leaves is known beforehand: every field empty
   or zero (pending, no callbacks, no source traceback, no traceback to
   log) but the loop.  That is exactly what the type's tp_new, the generic
   allocation, gives, plus the loop: so the Future is allocated, and its
   loop set.  ~700 of the ~890 instructions of a create_future (3.11).

   The loop is the first field after the object header in the C Future of
   every CPython since 3.6 (FutureObj_HEAD: fut_loop first); the rest is
   checked once, at import (tidal_use_fast_future): a Future allocated so,
   its loop set, must answer get_loop(), done(), _state,
   _source_traceback, _log_traceback and _callbacks as a Future made by
   Future(loop=...) does; if not (another layout, another tp_new), every
   Future is made the usual way. */

#ifndef TIDAL_NEW_FUTURE_H
#define TIDAL_NEW_FUTURE_H

/* asyncio's C Future class, once the check passed (else NULL). */
static PyTypeObject *tidal_fast_future_type = NULL;

#define TIDAL_FUTURE_LOOP(op) (*(PyObject **)((char *)(op) + sizeof(PyObject)))

/* A pending Future of `loop`; the caller knows tidal_fast_future_type is set. */
static inline PyObject *tidal_new_future(PyObject *loop) {
    PyTypeObject *t = tidal_fast_future_type;
    PyObject *fut = t->tp_alloc(t, 0);
    if (fut == NULL) return NULL;
    Py_INCREF(loop);
    TIDAL_FUTURE_LOOP(fut) = loop;
    return fut;
}

/* 1: `o` is exactly `expected` (a borrowed reference); 0: not; -1: error. */
static int tidal_future_answers(PyObject *fut, const char *name, int call, PyObject *expected) {
    PyObject *r = call ? PyObject_CallMethod(fut, name, NULL) : PyObject_GetAttrString(fut, name);
    if (r == NULL) {
        PyErr_Clear();  /* (a failed check only means: not this way) */
        return 0;
    }
    int same = r == expected;
    if (!same && PyUnicode_Check(expected)) {
        same = PyUnicode_Check(r) && PyUnicode_Compare(r, expected) == 0;
    }
    Py_DECREF(r);
    return same;
}

/* Make a Future of `future_cls` as tidal_new_future would, with a stand-in
   loop, and check that it is a pending Future of that loop and nothing
   else; if so, tidal_new_future may be used: 1 if it may, 0 if not, -1
   on an error. */
static int tidal_use_fast_future(PyObject *future_cls) {
    if (!PyType_Check(future_cls)) {
        PyErr_SetString(PyExc_TypeError, "tidal_use_fast_future: a Future class is needed");
        return -1;
    }
    PyTypeObject *t = (PyTypeObject *)future_cls;
    if (tidal_fast_future_type != NULL) return 1;
    if (t->tp_new != PyType_GenericNew || t->tp_basicsize < (Py_ssize_t)(sizeof(PyObject) + sizeof(PyObject *))
            || t->tp_itemsize != 0 || !PyType_HasFeature(t, Py_TPFLAGS_HAVE_GC))
        return 0;
    PyObject *loop = PyList_New(0);  /* any object, seen nowhere else */
    PyObject *pending = PyUnicode_FromString("PENDING");
    PyObject *fut = loop && pending ? t->tp_alloc(t, 0) : NULL;
    if (fut == NULL) {
        Py_XDECREF(loop);
        Py_XDECREF(pending);
        return -1;
    }
    int ok = TIDAL_FUTURE_LOOP(fut) == NULL;
    if (ok) {
        Py_INCREF(loop);
        TIDAL_FUTURE_LOOP(fut) = loop;
        ok = tidal_future_answers(fut, "get_loop", 1, loop) > 0
             && tidal_future_answers(fut, "done", 1, Py_False) > 0
             && tidal_future_answers(fut, "cancelled", 1, Py_False) > 0
             && tidal_future_answers(fut, "_state", 0, pending) > 0
             && tidal_future_answers(fut, "_source_traceback", 0, Py_None) > 0
             && tidal_future_answers(fut, "_log_traceback", 0, Py_False) > 0
             && tidal_future_answers(fut, "_callbacks", 0, Py_None) > 0
             && tidal_future_answers(fut, "_result", 0, Py_None) > 0
             && tidal_future_answers(fut, "_exception", 0, Py_None) > 0;
        if (!ok && TIDAL_FUTURE_LOOP(fut) == loop) {
            /* Another layout: the pointer written goes, before the Future is freed. */
            TIDAL_FUTURE_LOOP(fut) = NULL;
            Py_DECREF(loop);
        }
    }
    Py_DECREF(fut);
    Py_DECREF(loop);
    Py_DECREF(pending);
    if (!ok) return 0;
    Py_INCREF(future_cls);
    tidal_fast_future_type = t;
    return 1;
}

/* create_task's Task: asyncio's Task(coro, loop=loop), called with a
   1-tuple of arguments kept for the next call rather than one made and
   freed per task (~150 instructions a task, 3.11).  The Task's __init__
   only reads the tuple; the spare is taken while a call runs (a task
   made inside it, by a callback or a finalizer, makes its own tuple)
   and kept again only if nothing else holds it.  Untracked: the cyclic
   GC never sees it, empty or not. */
static PyObject *tidal_spare_task_args = NULL;

static inline PyObject *tidal_new_task(PyObject *task_cls, PyObject *coro, PyObject *kwargs) {
    PyObject *args = tidal_spare_task_args;
    tidal_spare_task_args = NULL;
    if (args == NULL) {
        args = PyTuple_New(1);
        if (args == NULL) return NULL;
        PyObject_GC_UnTrack(args);
    }
    Py_INCREF(coro);
    PyTuple_SET_ITEM(args, 0, coro);
    PyObject *task = PyObject_Call(task_cls, args, kwargs);
    if (Py_REFCNT(args) == 1 && tidal_spare_task_args == NULL) {
        PyTuple_SET_ITEM(args, 0, NULL);
        Py_DECREF(coro);
        tidal_spare_task_args = args;
    } else {
        Py_DECREF(args);
    }
    return task;
}

#endif /* TIDAL_NEW_FUTURE_H */
