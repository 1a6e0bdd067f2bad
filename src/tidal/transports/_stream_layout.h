/* C view of a StreamTransport's fields (the slots of _stream_slots.StreamSlots)
   for the compiled read and write paths of _stream.py, and the import-time
   check that they sit where this struct says.  _stream_layout.pxd declares
   them to Cython and says why they exist. */

#ifndef TIDAL_STREAM_LAYOUT_H
#define TIDAL_STREAM_LAYOUT_H

#include "tidal/_slot_layout.h"

/* The object struct Cython generates for tidal._iocount.IOCounts (its name is
   Cython's mangling of module and class name; Cython defines the struct in
   every module that cimports the class, as this header's users do through
   _stream_layout.pxd).  Declared here so that the _io_counts field can point
   to it: `tr._io_counts.read += n` is then one C add, compiled, and the same
   line is an attribute add interpreted. */
struct __pyx_obj_5tidal_8_iocount_IOCounts;

/* The one C list of the fields, in CPython's order: asyncio's BaseTransport's
   slot first, then StreamSlots' own sorted by name (the annotations of
   _stream_slots.py, from which its __slots__ are made).  X(f) is a field
   holding any object, T(type, f) one that always holds a `type` instance.
   The struct and the check below are generated from it; tests/test_layouts.py
   checks that it, the annotations and _stream_layout.pxd's field list name
   the same fields. */
#define TIDAL_STREAM_SLOTS(X, T) \
    X(_extra) \
    X(_big_reads) X(_buffer) X(_buffer_size) X(_buffered) X(_closing) X(_conn_lost) \
    X(_empty_waiter) X(_eof) X(_high_water) \
    T(struct __pyx_obj_5tidal_8_iocount_IOCounts, _io_counts) \
    X(_io_fd) X(_loop) X(_low_water) X(_paused) \
    X(_peername) X(_protocol) X(_protocol_connected) X(_protocol_paused) X(_read_ctx) \
    X(_read_queued) X(_recv_view) \
    X(_server) X(_sock) X(_sock_fd)

typedef struct {
    PyObject_HEAD
    TIDAL_STREAM_SLOTS(TIDAL_SLOT_FIELD, TIDAL_SLOT_TYPED_FIELD)
#if PY_VERSION_HEX < 0x030C0000
    PyObject *_weakreflist;
#endif
} tidal_StreamSlotsObject;

static int tidal_stream_layout_matches(PyObject *cls) {
    #define TIDAL_S(f) tidal_slot_at(cls, #f, offsetof(tidal_StreamSlotsObject, f)) &&
    #define TIDAL_ST(type, f) TIDAL_S(f)
    return TIDAL_STREAM_SLOTS(TIDAL_S, TIDAL_ST) 1  /* each field is "check &&" */
        && ((PyTypeObject *)cls)->tp_basicsize == sizeof(tidal_StreamSlotsObject);
    #undef TIDAL_ST
    #undef TIDAL_S
}

#endif /* TIDAL_STREAM_LAYOUT_H */
