/* The timer heap's three operations in C (push, pop, rebuild) over a list of
   timers and a bytearray of their due times.  _timerheap.pxd declares them
   to Cython and says how they work; _timerheap.py is the interpreted twin. */

#ifndef TIDAL_TIMERHEAP_H
#define TIDAL_TIMERHEAP_H

#include "tidal/_handle_layout.h"  /* tidal_TimerHandleObject */

/* tidal's TimerHandle: an item of exactly this class needs no subclass check. */
static PyTypeObject *tidal_heap_timer_type = NULL;

static inline PyObject *tidal_heap_use_timer_class(PyObject *cls) {
    if (tidal_heap_timer_type == NULL) {
        Py_INCREF(cls);
        tidal_heap_timer_type = (PyTypeObject *)cls;
    }
    Py_RETURN_NONE;
}

#define TIDAL_HEAP_ITEMS(heap) (((PyListObject *)(heap))->ob_item)
/* `whens`' bytes: a count (how many due times it holds; -1: none to
   trust), then that many doubles, then room to grow.  The bytearray's
   length is the capacity: a push or pop resizes it only to double it
   or to give back most of it. */
typedef struct { Py_ssize_t count; double due[]; } tidal_heap_whens;
#define TIDAL_HEAP_WHENS(whens) ((tidal_heap_whens *)PyByteArray_AS_STRING(whens))
#define TIDAL_HEAP_DUE(whens) (TIDAL_HEAP_WHENS(whens)->due)
/* Bytes for a count and n doubles. */
#define TIDAL_HEAP_BYTES(n) ((Py_ssize_t)(offsetof(tidal_heap_whens, due) + (n) * sizeof(double)))
#define TIDAL_HEAP_IN_STEP(heap, whens) \
    (PyByteArray_GET_SIZE(whens) >= TIDAL_HEAP_BYTES(0) \
     && TIDAL_HEAP_WHENS(whens)->count == PyList_GET_SIZE(heap))

/* Room in `whens` for n due times: at least doubled when it grows. */
static inline int tidal_heap_reserve(PyObject *whens, Py_ssize_t n) {
    Py_ssize_t have = PyByteArray_GET_SIZE(whens);
    if (have >= TIDAL_HEAP_BYTES(n)) return 0;
    Py_ssize_t want = TIDAL_HEAP_BYTES(n < 8 ? 8 : n);
    if (want < 2 * have) want = 2 * have;
    return PyByteArray_Resize(whens, want);
}

static int tidal_heap_when_slow(PyObject *item, double *out) {
    if (!PyObject_TypeCheck(item, tidal_heap_timer_type)) {
        PyErr_Format(PyExc_TypeError, "the timer heap holds tidal's TimerHandles, not %R",
                     (PyObject *)Py_TYPE(item));
        return -1;
    }
    PyObject *when = ((tidal_TimerHandleObject *)item)->_when;
    if (when == NULL) {
        PyErr_SetString(PyExc_AttributeError, "_when");
        return -1;
    }
    Py_INCREF(when);  /* __float__ may replace the slot's value */
    double d = PyFloat_AsDouble(when);
    Py_DECREF(when);
    if (d == -1.0 && PyErr_Occurred()) return -1;
    *out = d;
    return 0;
}

/* item._when as a C double (may run Python code, unless it is a float
   on tidal's own class). */
static inline int tidal_heap_when(PyObject *item, double *out) {
    if (Py_IS_TYPE(item, tidal_heap_timer_type)) {
        PyObject *when = ((tidal_TimerHandleObject *)item)->_when;
        if (when != NULL && PyFloat_CheckExact(when)) {
            *out = PyFloat_AS_DOUBLE(when);
            return 0;
        }
    }
    return tidal_heap_when_slow(item, out);
}

/* Bring `whens` in step with `heap`, whose length changed behind the
   heap's back (or which was just replaced): every due time read again.
   On an error `whens` is left out of step, so the next operation tries
   again. */
static int tidal_heap_resync(PyObject *heap, PyObject *whens) {
    if (PyByteArray_GET_SIZE(whens) >= TIDAL_HEAP_BYTES(0))
        TIDAL_HEAP_WHENS(whens)->count = -1;  /* out of step until the end */
    Py_ssize_t size = PyList_GET_SIZE(heap), i;
    if (tidal_heap_reserve(whens, size) < 0) return -1;
    /* The usual case, timers of tidal's class holding floats: read in
       place, no Python code runs. */
    PyObject **items = TIDAL_HEAP_ITEMS(heap);
    double *due = TIDAL_HEAP_DUE(whens);
    for (i = 0; i < size; i++) {
        PyObject *item = items[i], *when;
        if (!Py_IS_TYPE(item, tidal_heap_timer_type)) break;
        when = ((tidal_TimerHandleObject *)item)->_when;
        if (when == NULL || !PyFloat_CheckExact(when)) break;
        due[i] = PyFloat_AS_DOUBLE(when);
    }
    if (i < size) {
        /* Otherwise a conversion may run Python code (__float__), which
           may change the list, or the heap itself: read the due times of
           a copy of the list into a buffer of our own, then check that
           the list still holds the same items in the same order. */
        PyObject *copy = PyList_GetSlice(heap, 0, size);
        double *read = PyMem_Malloc(size * sizeof(double));
        int r = (copy == NULL || read == NULL) ? -1 : 0;
        if (read == NULL && copy != NULL) PyErr_NoMemory();
        for (i = 0; r == 0 && i < size; i++)
            r = tidal_heap_when(PyList_GET_ITEM(copy, i), &read[i]);
        if (r == 0) {
            int same = PyList_GET_SIZE(heap) == size;
            for (i = 0; same && i < size; i++)
                same = PyList_GET_ITEM(heap, i) == PyList_GET_ITEM(copy, i);
            if (!same) {
                PyErr_SetString(PyExc_RuntimeError,
                                "the timer heap's list changed while its due times were read");
                r = -1;
            }
        }
        if (r == 0 && (r = tidal_heap_reserve(whens, size)) == 0)
            memcpy(TIDAL_HEAP_DUE(whens), read, size * sizeof(double));
        PyMem_Free(read);
        Py_XDECREF(copy);
        if (r < 0) {
            if (PyByteArray_GET_SIZE(whens) >= TIDAL_HEAP_BYTES(0))
                TIDAL_HEAP_WHENS(whens)->count = -1;  /* (a nested operation may have set it) */
            return -1;
        }
    }
    TIDAL_HEAP_WHENS(whens)->count = size;
    return 0;
}

/* Every operation starts here: in step, or brought into step.  (A heap
   made with TimerHeap.__new__ alone has no list.) */
static int tidal_heap_uninitialised(void) {
    PyErr_SetString(PyExc_RuntimeError, "TimerHeap.__init__ was not called");
    return -1;
}

static inline int tidal_heap_check(PyObject *heap, PyObject *whens) {
    if (heap == Py_None || whens == Py_None) return tidal_heap_uninitialised();
    return TIDAL_HEAP_IN_STEP(heap, whens) ? 0 : tidal_heap_resync(heap, whens);
}

#if defined(__GNUC__) || defined(__clang__)
#define TIDAL_HEAP_PREFETCH(address) __builtin_prefetch((address))
#else
#define TIDAL_HEAP_PREFETCH(address) ((void)0)
#endif

/* Move items[pos] up while it is due strictly before its parent, never
   above `start`.  (The hole method: the moving item is written once, at
   the end; nothing in between can look at the list.) */
static inline void tidal_heap_sift_toward_root(PyObject **items, double *due,
                                               Py_ssize_t start, Py_ssize_t pos) {
    PyObject *item = items[pos];
    double when = due[pos];
    while (pos > start) {
        Py_ssize_t parent = (pos - 1) >> 1;
        double parent_when = due[parent];
        if (!(when < parent_when)) break;
        items[pos] = items[parent];
        due[pos] = parent_when;
        pos = parent;
    }
    items[pos] = item;
    due[pos] = when;
}

/* Walk items[pos] down to a leaf along the earlier child (the right one
   unless the left is strictly earlier), then settle it upward.  Which
   child is earlier is a coin toss the CPU cannot predict: it is added
   to the index (no branch) rather than tested, while both children
   exist; a last lone left child is taken after the loop. */
/* From this many timers on, the walk prefetches (below): smaller, its two
   arrays stay in the first-level cache, and a prefetch is only more
   instructions. */
#define TIDAL_HEAP_PREFETCH_FROM 2048

static inline void tidal_heap_sift_to_leaf_(PyObject **items, double *due, Py_ssize_t size,
                                            Py_ssize_t pos, const int prefetch) {
    Py_ssize_t start = pos, child = 2 * pos + 1;
    PyObject *item = items[pos];
    double when = due[pos];
    while (child + 1 < size) {
        /* Each step's index depends on the last comparison, so a walk
           through cold memory is a chain of cache misses: the due times
           two levels down (eight, contiguous: one or two cache lines) and
           the items one level down are asked for before they are needed.
           (A prefetch past the arrays' end cannot fault.) */
        if (prefetch) {
            TIDAL_HEAP_PREFETCH(&due[4 * child + 3]);
            TIDAL_HEAP_PREFETCH(&due[4 * child + 10]);
            TIDAL_HEAP_PREFETCH(&items[2 * child + 1]);
        }
        child += !(due[child] < due[child + 1]);
        items[pos] = items[child];
        due[pos] = due[child];
        pos = child;
        child = 2 * pos + 1;
    }
    if (child < size) {
        items[pos] = items[child];
        due[pos] = due[child];
        pos = child;
    }
    items[pos] = item;
    due[pos] = when;
    tidal_heap_sift_toward_root(items, due, start, pos);
}

/* (Two copies of the walk, each with its `prefetch` a constant.) */
static inline void tidal_heap_sift_to_leaf(PyObject **items, double *due, Py_ssize_t size,
                                           Py_ssize_t pos) {
    if (size >= TIDAL_HEAP_PREFETCH_FROM)
        tidal_heap_sift_to_leaf_(items, due, size, pos, 1);
    else
        tidal_heap_sift_to_leaf_(items, due, size, pos, 0);
}

static PyObject *tidal_heap_push(PyObject *heap, PyObject *whens, PyObject *timer) {
    double when;
    if (tidal_heap_when(timer, &when) < 0) return NULL;  /* (before the list is looked at) */
    if (tidal_heap_check(heap, whens) < 0) return NULL;
    Py_ssize_t size = PyList_GET_SIZE(heap);
    if (tidal_heap_reserve(whens, size + 1) < 0) return NULL;
    if (PyList_Append(heap, timer) < 0) return NULL;
    TIDAL_HEAP_DUE(whens)[size] = when;
    TIDAL_HEAP_WHENS(whens)->count = size + 1;
    tidal_heap_sift_toward_root(TIDAL_HEAP_ITEMS(heap), TIDAL_HEAP_DUE(whens), 0, size);
    Py_RETURN_NONE;
}

static PyObject *tidal_heap_pop(PyObject *heap, PyObject *whens) {
    if (tidal_heap_check(heap, whens) < 0) return NULL;
    Py_ssize_t size = PyList_GET_SIZE(heap);
    if (size == 0) {
        PyErr_SetString(PyExc_IndexError, "index out of range");
        return NULL;
    }
    PyObject **items = TIDAL_HEAP_ITEMS(heap);
    double *due = TIDAL_HEAP_DUE(whens);
    PyObject *last = items[size - 1];
    double last_when = due[size - 1];
    /* The root leaves with the list's reference; `last` takes its place. */
    PyObject *first = items[0];
    items[0] = last;
    due[0] = last_when;
    /* The list is one shorter, in place (as list.pop does while the
       list keeps half its allocation; a list that drained keeps its
       allocation until its next append, which trims it): its last slot
       no longer counts, so that reference is not dropped. */
    items[size - 1] = NULL;
    Py_SET_SIZE(heap, size - 1);
    TIDAL_HEAP_WHENS(whens)->count = size - 1;
    /* A heap that drained gives back most of its room (halving keeps a
       heap that breathes in and out from resizing each time). */
    if (PyByteArray_GET_SIZE(whens) > TIDAL_HEAP_BYTES(4 * size + 64)
            && PyByteArray_Resize(whens, TIDAL_HEAP_BYTES(2 * size + 32)) < 0)
        PyErr_Clear();  /* (shrinking: the room it had is still there) */
    if (size > 2)
        tidal_heap_sift_to_leaf(TIDAL_HEAP_ITEMS(heap), TIDAL_HEAP_DUE(whens), size - 1, 0);
    return first;
}

static PyObject *tidal_heap_rebuild(PyObject *heap, PyObject *whens) {
    if (heap == Py_None || whens == Py_None) return (tidal_heap_uninitialised(), NULL);
    if (tidal_heap_resync(heap, whens) < 0) return NULL;
    Py_ssize_t size = PyList_GET_SIZE(heap);
    PyObject **items = TIDAL_HEAP_ITEMS(heap);
    double *due = TIDAL_HEAP_DUE(whens);
    for (Py_ssize_t pos = size / 2 - 1; pos >= 0; pos--)
        tidal_heap_sift_to_leaf(items, due, size, pos);
    Py_RETURN_NONE;
}

#endif /* TIDAL_TIMERHEAP_H */
