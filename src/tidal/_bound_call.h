/* Calls of the ready deque's bound methods (loop._ready_append, _soon_append,
   _ready_popleft), made once per handle queued and once per handle run.
   _loop.pxd declares them and says why they exist. */

#ifndef TIDAL_BOUND_CALL_H
#define TIDAL_BOUND_CALL_H

/* f(arg): for a builtin bound method taking one argument (deque.append), its
   C function called directly; anything else (an instrument's report_append)
   through the ordinary call. */
static inline PyObject *tidal_call_one(PyObject *f, PyObject *arg) {
    if (PyCFunction_CheckExact(f) && PyCFunction_GET_FLAGS(f) == METH_O)
        return PyCFunction_GET_FUNCTION(f)(PyCFunction_GET_SELF(f), arg);
    return PyObject_CallOneArg(f, arg);
}

/* f(): the same, for a builtin bound method taking no argument (deque.popleft). */
static inline PyObject *tidal_call_none(PyObject *f) {
    if (PyCFunction_CheckExact(f) && PyCFunction_GET_FLAGS(f) == METH_NOARGS)
        return PyCFunction_GET_FUNCTION(f)(PyCFunction_GET_SELF(f), NULL);
    return PyObject_CallNoArgs(f);
}

#endif /* TIDAL_BOUND_CALL_H */
