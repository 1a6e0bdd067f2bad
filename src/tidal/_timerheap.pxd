# C declarations for _timerheap.py (Cython pure-Python mode).  Keep in step with the .py.
#
# push/pop/rebuild stay the .py's code (cpdef: _loop cimports them as C
# calls, and tests can still call them from Python); the two walks they make
# are the C functions below, which _timerheap.py defines in Python for the
# interpreted build.
#
# The walks move items by swapping two pointers of the list's item array: a
# permutation, so no reference count changes, and the list holds each timer
# exactly once at every step (what the cyclic GC, or any Python code a
# comparison runs, sees).  A comparison reads both due times fresh from the
# list by index, `_when` as a C double: in place for a float (what the loop
# stores for call_later), through PyFloat_AsDouble otherwise (an int given
# to call_at, or anything with __float__).  That conversion may run Python
# code, so its object is held meanwhile and the list's size is checked after
# (heapq's RuntimeError if it changed); an item that is not a TimerHandle is
# a TypeError.  Either error leaves the list a permutation of its timers.

import cython

from tidal._handle_layout cimport layout_matches  # (brings the structs' C definitions in)

cdef extern from *:
    """
    /* tidal's TimerHandle: an item of exactly this class needs no subclass check. */
    static PyTypeObject *tidal_heap_timer_type = NULL;

    static inline PyObject *tidal_heap_use_timer_class(PyObject *cls) {
        if (tidal_heap_timer_type == NULL) {
            Py_INCREF(cls);
            tidal_heap_timer_type = (PyTypeObject *)cls;
        }
        Py_RETURN_NONE;
    }

    static inline int tidal_heap_when_slow(PyObject *heap, Py_ssize_t i, Py_ssize_t size, double *out) {
        PyObject *item = PyList_GET_ITEM(heap, i);
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
        if (PyList_GET_SIZE(heap) != size) {
            PyErr_SetString(PyExc_RuntimeError, "list changed size during iteration");
            return -1;
        }
        *out = d;
        return 0;
    }

    /* heap[i]._when as a C double; i < size == len(heap).  The fast path
       (an item of tidal's class holding a float) runs no Python code, so a
       caller may keep the list's item array across it; the slow path
       fetches it again into *items. */
    static inline int tidal_heap_when(PyObject *heap, PyObject ***items, Py_ssize_t i,
                                      Py_ssize_t size, double *out) {
        PyObject *item = (*items)[i];
        if (Py_IS_TYPE(item, tidal_heap_timer_type)) {
            PyObject *when = ((tidal_TimerHandleObject *)item)->_when;
            if (when != NULL && PyFloat_CheckExact(when)) {
                *out = PyFloat_AS_DOUBLE(when);
                return 0;
            }
        }
        int r = tidal_heap_when_slow(heap, i, size, out);
        *items = ((PyListObject *)heap)->ob_item;
        return r;
    }

    #define TIDAL_HEAP_ITEMS(heap) (((PyListObject *)(heap))->ob_item)

    /* _timerheap._sift_toward_root: move heap[pos] up while it is due
       strictly before its parent, never above `start`. */
    static inline int tidal_heap_sift_toward_root(PyObject *heap, Py_ssize_t start, Py_ssize_t pos) {
        Py_ssize_t size = PyList_GET_SIZE(heap);
        PyObject **items = TIDAL_HEAP_ITEMS(heap);
        double when, parent_when;
        if (pos >= size) return 0;
        if (tidal_heap_when(heap, &items, pos, size, &when) < 0) return -1;
        while (pos > start) {
            Py_ssize_t parent_pos = (pos - 1) >> 1;
            if (tidal_heap_when(heap, &items, parent_pos, size, &parent_when) < 0) return -1;
            if (!(when < parent_when)) break;
            PyObject *moving = items[pos];
            items[pos] = items[parent_pos];
            items[parent_pos] = moving;
            pos = parent_pos;
        }
        return 0;
    }

    /* _timerheap._sift_to_leaf: walk heap[pos] down to a leaf along the
       earlier child (the right one unless the left is strictly earlier),
       then settle it upward. */
    static inline int tidal_heap_sift_to_leaf(PyObject *heap, Py_ssize_t pos) {
        Py_ssize_t size = PyList_GET_SIZE(heap);
        PyObject **items = TIDAL_HEAP_ITEMS(heap);
        Py_ssize_t start = pos, child_pos = 2 * pos + 1;
        double child_when, right_when;
        while (child_pos < size) {
            if (child_pos + 1 < size) {
                if (tidal_heap_when(heap, &items, child_pos, size, &child_when) < 0) return -1;
                if (tidal_heap_when(heap, &items, child_pos + 1, size, &right_when) < 0) return -1;
                if (!(child_when < right_when)) child_pos++;
            }
            PyObject *moving = items[pos];
            items[pos] = items[child_pos];
            items[child_pos] = moving;
            pos = child_pos;
            child_pos = 2 * pos + 1;
        }
        return tidal_heap_sift_toward_root(heap, start, pos);
    }
    """
    object _use_timer_class "tidal_heap_use_timer_class" (object timer_cls)
    int _sift_toward_root "tidal_heap_sift_toward_root" (list heap, Py_ssize_t start,
                                                         Py_ssize_t pos) except -1
    int _sift_to_leaf "tidal_heap_sift_to_leaf" (list heap, Py_ssize_t pos) except -1

cpdef push(list heap, object timer)

cpdef pop(list heap)

@cython.locals(pos=Py_ssize_t)
cpdef rebuild(list heap)
