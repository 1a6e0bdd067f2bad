/* The "coroutine ... was never awaited" warning of tidal's compiled
   coroutines (loop.shutdown_asyncgens(), loop.sock_recv(), ...), made as
   CPython makes it.  _loop.pxd declares it; _loop.py installs it.

   Cython's coroutine finalizer (Utility/Coroutine.c, __Pyx_Coroutine_del)
   warns about a coroutine never started only when no exception is pending
   as it is finalized; CPython's own coroutines set the exception aside,
   warn, and put it back (since 3.7, bpo-32605).  So a compiled coroutine
   dropped while an error propagates went unwarned where asyncio's warns:
   `loop.run_until_complete(loop.shutdown_asyncgens())` on a closed loop
   raises, and the coroutine it was given is freed on the way out.  The
   type's finalizer is wrapped once: the pending exception is set aside
   around Cython's, which then sees none and warns (or closes a started
   coroutine, as it did), and is put back. */

#ifndef TIDAL_COROUTINE_FINALIZE_H
#define TIDAL_COROUTINE_FINALIZE_H

static destructor tidal_cython_coroutine_finalize = NULL;

static void tidal_coroutine_finalize(PyObject *self) {
    if (!PyErr_Occurred()) {
        tidal_cython_coroutine_finalize(self);
        return;
    }
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *exc = PyErr_GetRaisedException();
    tidal_cython_coroutine_finalize(self);
    PyErr_SetRaisedException(exc);
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    tidal_cython_coroutine_finalize(self);
    PyErr_Restore(type, value, tb);
#endif
}

/* Wrap the finalizer of `coro`'s type, Cython's coroutine type (one type
   for every compiled module of a Cython version: done once). */
static inline PyObject *tidal_wrap_coroutine_finalize(PyObject *coro) {
    PyTypeObject *t = Py_TYPE(coro);
    if (!PyCoro_CheckExact(coro) && t->tp_finalize != NULL
            && t->tp_finalize != tidal_coroutine_finalize && tidal_cython_coroutine_finalize == NULL) {
        tidal_cython_coroutine_finalize = t->tp_finalize;
        t->tp_finalize = tidal_coroutine_finalize;
        PyType_Modified(t);
    }
    Py_RETURN_NONE;
}

#endif /* TIDAL_COROUTINE_FINALIZE_H */
