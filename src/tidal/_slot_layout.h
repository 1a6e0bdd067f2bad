/* What the C views of Python classes with __slots__ share (the handles' in
   _handle_layout.h, the stream transport's in transports/_stream_layout.h):
   a struct member per slot, and the import-time check that a slot sits where
   the struct says. */

#ifndef TIDAL_SLOT_LAYOUT_H
#define TIDAL_SLOT_LAYOUT_H

#include <structmember.h>  /* PyMemberDef, for the layout check (3.11) */

/* One PyObject* struct member per slot, for an X-macro list of slot names. */
#define TIDAL_SLOT_FIELD(f) PyObject *f;
/* A slot that always holds an instance of one cdef class: a pointer to that
   class's object struct (`type`), so that Cython, told the field's class in
   the .pxd, reads the instance's C fields through it with no cast. */
#define TIDAL_SLOT_TYPED_FIELD(type, f) type *f;

/* Whether `cls`'s attribute `name` is a slot at `offset` bytes into its instances. */
static inline int tidal_slot_at(PyObject *cls, const char *name, Py_ssize_t offset) {
    PyObject *d = PyObject_GetAttrString(cls, name);
    if (d == NULL) { PyErr_Clear(); return 0; }
    int ok = Py_IS_TYPE(d, &PyMemberDescr_Type)
             && ((PyMemberDescrObject *)d)->d_member->offset == offset;
    Py_DECREF(d);
    return ok;
}

#endif /* TIDAL_SLOT_LAYOUT_H */
