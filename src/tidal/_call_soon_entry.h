/* call_soon's C entry, in front of Cython's.  _loop.pxd declares it;
   _loop.py installs it (compiled only).

   Most call_soon calls come from asyncio's C Task and Future: each task
   step, each wake-up and each done callback is `loop.call_soon(callback,
   arg, context=ctx)`, made with the vectorcall protocol and a keyword-name
   tuple of the _asyncio module's own, whose "context" is not interned.
   Cython's argument parsing matches keyword names by identity first (the
   interned names of the Python callers), and then, for any other string,
   by hash and content: ~130 instructions a call (3.11).

   The entry is put in place of the C function of call_soon's Cython
   function (the cyfunction keeps its own vectorcall, and everything
   else): it swaps that tuple for one holding the interned "context", so
   that Cython's first comparison matches, and calls Cython's C function
   (its argument parsing, then call_soon's body as compiled from
   _loop.py: one source).  Anything else (other keywords, a missing
   argument) reaches Cython's parsing as it came, errors included. */

#ifndef TIDAL_CALL_SOON_ENTRY_H
#define TIDAL_CALL_SOON_ENTRY_H

typedef PyObject *(*tidal_fastcall_kw)(PyObject *, PyObject *const *, Py_ssize_t, PyObject *);

static tidal_fastcall_kw tidal_call_soon_body = NULL;  /* Cython's C function */
static PyObject *tidal_str_context = NULL;             /* "context", interned */
static PyObject *tidal_context_kwnames = NULL;         /* (tidal_str_context,) */
/* The last other ("context",) tuple seen (held): the C Task's, a
   constant of its module, so the test is an identity after the first. */
static PyObject *tidal_seen_kwnames = NULL;

/* `kwnames` said ("context",) with another string: remember it, and say so. */
static int tidal_is_context_kwnames(PyObject *kwnames) {
    if (PyTuple_GET_SIZE(kwnames) != 1) return 0;
    PyObject *key = PyTuple_GET_ITEM(kwnames, 0);
    if (!PyUnicode_CheckExact(key) || PyUnicode_Compare(key, tidal_str_context) != 0) {
        PyErr_Clear();  /* (never set for two str) */
        return 0;
    }
    Py_INCREF(kwnames);
    Py_XSETREF(tidal_seen_kwnames, kwnames);
    return 1;
}

static PyObject *tidal_call_soon_entry(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                       PyObject *kwnames) {
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) == 1
            && PyTuple_GET_ITEM(kwnames, 0) != tidal_str_context
            && (kwnames == tidal_seen_kwnames || tidal_is_context_kwnames(kwnames)))
        kwnames = tidal_context_kwnames;
    return tidal_call_soon_body(self, args, nargs, kwnames);
}

/* Put the entry in front of `function`, call_soon's cyfunction, whose C
   function takes the vectorcall arguments with keyword names (read where
   Cython itself reads it, outside the limited API: the cyfunction starts
   as a builtin function object does).  0, changing nothing, if `function`
   is not such a function (an interpreted module); 1 once done; -1 on an
   error. */
static int tidal_install_call_soon(PyObject *function) {
    const char *type_name = Py_TYPE(function)->tp_name;
    const char *suffix = "cython_function_or_method";
    size_t n = strlen(type_name), m = strlen(suffix);
    if (tidal_call_soon_body != NULL) return 1;
    if (n < m || strcmp(type_name + n - m, suffix) != 0
            || Py_TYPE(function)->tp_basicsize < (Py_ssize_t)sizeof(PyCFunctionObject))
        return 0;
    PyMethodDef *def = ((PyCFunctionObject *)function)->m_ml;
    if (def == NULL || def->ml_flags != (METH_FASTCALL | METH_KEYWORDS)
            || strcmp(def->ml_name, "call_soon") != 0)
        return 0;
    tidal_str_context = PyUnicode_InternFromString("context");
    if (tidal_str_context == NULL) return -1;
    tidal_context_kwnames = PyTuple_Pack(1, tidal_str_context);
    if (tidal_context_kwnames == NULL) return -1;
    tidal_call_soon_body = (tidal_fastcall_kw)(void (*)(void))def->ml_meth;
    def->ml_meth = (PyCFunction)(void (*)(void))tidal_call_soon_entry;
    return 1;
}

#endif /* TIDAL_CALL_SOON_ENTRY_H */
