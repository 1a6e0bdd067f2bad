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


/* call_soon as asyncio's C Task and Future look it up (3.11).

   They do not call loop.call_soon as a method (3.12 does): they get the
   attribute, a bound method made per call (and freed after it) around
   the cyfunction, then call it with its arguments copied behind the
   loop: ~260 instructions a call_soon, two per task of a gather.  So
   _LoopCore's call_soon is a descriptor of the type below instead of the
   cyfunction itself: got from a loop, it gives that loop's own bound
   builtin method of the entry, made once and kept by the loop (a C
   field, through tidal_bound_of); got from the class, the cyfunction
   (EventLoop.call_soon(loop, ...), its signature and doc).  It is also
   a method descriptor that can be called with the loop first, as the
   cyfunction is, so that Python code's `loop.call_soon(...)` and 3.12's
   C calls still make no bound method at all.  A subclass's call_soon,
   or one put on the instance, is found before it, as before. */
typedef PyObject *(*tidal_bound_getter)(PyObject *);

typedef struct {
    PyObject_HEAD
    PyObject *function;  /* the cyfunction */
    vectorcallfunc vectorcall;
} tidal_CallSoonDescr;

static PyTypeObject *tidal_loop_core_type = NULL;   /* _LoopCore */
static tidal_bound_getter tidal_bound_of = NULL;    /* a loop's bound call_soon, made once */
/* The last class found to derive from _LoopCore (held): EventLoop, as a
   rule, known then by a comparison rather than a walk of its MRO. */
static PyTypeObject *tidal_loop_type_seen = NULL;

static inline int tidal_is_loop(PyObject *op) {
    PyTypeObject *t = Py_TYPE(op);
    if (t == tidal_loop_type_seen) return 1;
    if (!PyType_IsSubtype(t, tidal_loop_core_type)) return 0;
    Py_INCREF(t);
    Py_XSETREF(tidal_loop_type_seen, t);
    return 1;
}

/* call_soon's usual case, as a C function (_loop.py's _soon_plain): the
   handle, or None when the loop is closed or in debug mode (call_soon's
   own path then raises or records). */
typedef PyObject *(*tidal_soon_plain_fn)(PyObject *loop, PyObject *callback, PyObject *args,
                                         PyObject *context);
static tidal_soon_plain_fn tidal_soon_plain = NULL;

/* call_soon(callback, *args, context=ctx), as asyncio's C Task and Future
   make it (the keyword given by name, once, and nothing else), on a loop:
   _soon_plain is called directly, with no pass through Cython's argument
   parsing (~130 instructions of the ~670 a call_soon from a C Task costs,
   3.11).  Any other call, and a closed or debug loop, takes Cython's
   path, with the interned keyword name swapped in. */
static PyObject *tidal_call_soon_entry(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                       PyObject *kwnames) {
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) == 1
            && (PyTuple_GET_ITEM(kwnames, 0) == tidal_str_context || kwnames == tidal_seen_kwnames
                || tidal_is_context_kwnames(kwnames))) {
        if (nargs >= 1 && tidal_is_loop(self)) {
            PyObject *callback_args;
            if (nargs == 2) {  /* a done callback's (fut,): a spare tuple if there is one */
                callback_args = tidal_args_of_one(args[1]);
                if (callback_args == NULL) return NULL;
            } else {
                callback_args = PyTuple_New(nargs - 1);
                if (callback_args == NULL) return NULL;
                for (Py_ssize_t i = 1; i < nargs; i++) {
                    Py_INCREF(args[i]);
                    PyTuple_SET_ITEM(callback_args, i - 1, args[i]);
                }
            }
            PyObject *handle = tidal_soon_plain(self, args[0], callback_args, args[nargs]);
            Py_DECREF(callback_args);
            if (handle != Py_None) return handle;  /* (or NULL: its error) */
            Py_DECREF(handle);
        }
        kwnames = tidal_context_kwnames;
    }
    return tidal_call_soon_body(self, args, nargs, kwnames);
}

static PyMethodDef tidal_call_soon_def = {
    "call_soon", NULL, METH_FASTCALL | METH_KEYWORDS,
    "call_soon($self, callback, /, *args, context=None)\n--\n\n"
    "Arrange for a callback to be called as soon as possible."};

/* A loop's bound builtin method of the entry (tidal_bound_of makes it through this). */
static PyObject *tidal_new_bound_call_soon(PyObject *loop) {
    return PyCFunction_New(&tidal_call_soon_def, loop);
}

static PyObject *tidal_call_soon_descr_get(PyObject *self, PyObject *obj, PyObject *type) {
    PyObject *function = ((tidal_CallSoonDescr *)self)->function;
    if (obj == NULL || obj == Py_None) {
        Py_INCREF(function);
        return function;
    }
    if (!tidal_is_loop(obj))  /* (the cyfunction's own error, later) */
        return Py_TYPE(function)->tp_descr_get(function, obj, type);
    return tidal_bound_of(obj);
}

/* descr(loop, callback, *args, context=...): the unbound call. */
static PyObject *tidal_call_soon_descr_call(PyObject *self, PyObject *const *args, size_t nargsf,
                                            PyObject *kwnames) {
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs < 1 || !tidal_is_loop(args[0]))
        return PyObject_Vectorcall(((tidal_CallSoonDescr *)self)->function, args, nargsf, kwnames);
    if (kwnames == NULL)  /* (nothing for the entry to swap) */
        return tidal_call_soon_body(args[0], args + 1, nargs - 1, NULL);
    return tidal_call_soon_entry(args[0], args + 1, nargs - 1, kwnames);
}

static int tidal_call_soon_descr_traverse(PyObject *self, visitproc visit, void *arg) {
    Py_VISIT(((tidal_CallSoonDescr *)self)->function);
    return 0;
}

static void tidal_call_soon_descr_dealloc(PyObject *self) {
    PyObject_GC_UnTrack(self);
    Py_CLEAR(((tidal_CallSoonDescr *)self)->function);
    PyObject_GC_Del(self);
}

static PyTypeObject tidal_CallSoonDescr_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tidal._loop.call_soon_descriptor",
    .tp_basicsize = sizeof(tidal_CallSoonDescr),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_METHOD_DESCRIPTOR
                | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(tidal_CallSoonDescr, vectorcall),
    .tp_dealloc = tidal_call_soon_descr_dealloc,
    .tp_call = PyVectorcall_Call,
    .tp_descr_get = tidal_call_soon_descr_get,
    .tp_traverse = tidal_call_soon_descr_traverse,
    .tp_free = PyObject_GC_Del,
};

/* Put the entry in front of `function`, call_soon's cyfunction, whose C
   function takes the vectorcall arguments with keyword names (read where
   Cython itself reads it, outside the limited API: the cyfunction starts
   as a builtin function object does), and the descriptor above in its
   place in `core`'s namespace (_LoopCore's), `bound_of` giving a loop's
   bound call_soon, `soon_plain` its usual case.  0, changing nothing, if `function` is not such a
   function (an interpreted module); 1 once done; -1 on an error. */
static int tidal_install_call_soon(PyObject *function, PyObject *core, tidal_bound_getter bound_of,
                                   tidal_soon_plain_fn soon_plain) {
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
    if (!PyType_Check(core) || PyType_Ready(&tidal_CallSoonDescr_Type) < 0) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "install_call_soon: a class is needed");
        return -1;
    }
    tidal_CallSoonDescr *descr = PyObject_GC_New(tidal_CallSoonDescr, &tidal_CallSoonDescr_Type);
    if (descr == NULL) return -1;
    Py_INCREF(function);
    descr->function = function;
    descr->vectorcall = tidal_call_soon_descr_call;
    PyObject_GC_Track(descr);
    PyObject *name = PyUnicode_InternFromString("call_soon");
    int failed = name == NULL || PyDict_SetItem(((PyTypeObject *)core)->tp_dict, name, (PyObject *)descr) < 0;
    Py_XDECREF(name);
    Py_DECREF(descr);  /* (the class's namespace holds it) */
    if (failed) return -1;
    PyType_Modified((PyTypeObject *)core);
    Py_INCREF(core);
    tidal_loop_core_type = (PyTypeObject *)core;
    tidal_bound_of = bound_of;
    tidal_soon_plain = soon_plain;
    tidal_call_soon_body = (tidal_fastcall_kw)(void (*)(void))def->ml_meth;
    def->ml_meth = (PyCFunction)(void (*)(void))tidal_call_soon_entry;
    tidal_call_soon_def.ml_meth = (PyCFunction)(void (*)(void))tidal_call_soon_entry;
    return 1;
}

#endif /* TIDAL_CALL_SOON_ENTRY_H */
