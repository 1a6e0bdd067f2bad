/* The loop's instance __dict__, made only when something is stored in it.
   _loop.pxd declares this; EventLoop.__init__ (_loop.py) says when it runs.

   The interpreter specializes `loop.create_future()`, `loop.call_later(...)`
   (each asyncio.sleep makes both), `loop.call_soon(...)` from Python code
   only for an instance whose attribute storage it understands: on 3.12,
   either inline values (which only object.__new__ sets up, and a cdef
   class's constructor never calls it) or a dict at a fixed offset that
   does not exist yet (LOAD_ATTR_METHOD_LAZY_DICT).  Without either, each
   such call is a generic attribute lookup (~160 instructions on 3.12).
   So _LoopCore has a __dict__ slot at a fixed offset (`cdef dict
   __dict__`), and since Cython's constructor fills that slot with a new
   empty dict, it is emptied again here: CPython makes the dict on the
   first attribute stored (`loop.x = 1`, a mock.patch), and Cython's
   `__dict__` getter on the first read of `loop.__dict__`. */

#ifndef TIDAL_LAZY_DICT_H
#define TIDAL_LAZY_DICT_H

/* Drop `op`'s instance dict if it is empty and nothing else holds it. */
static inline void tidal_drop_empty_dict(PyObject *op) {
    Py_ssize_t offset = Py_TYPE(op)->tp_dictoffset;
    if (offset <= 0) return;
    PyObject **slot = (PyObject **)((char *)op + offset);
    PyObject *dict = *slot;
    if (dict != NULL && PyDict_CheckExact(dict) && PyDict_GET_SIZE(dict) == 0 && Py_REFCNT(dict) == 1) {
        *slot = NULL;
        Py_DECREF(dict);
    }
}

#endif /* TIDAL_LAZY_DICT_H */
