/* C view of a StreamTransport's fields (the slots of _stream_slots.StreamSlots)
   for the compiled read and write paths of _stream.py, and the import-time
   check that they sit where this struct says.  _stream_layout.pxd declares
   them to Cython and says why they exist. */

#ifndef TIDAL_STREAM_LAYOUT_H
#define TIDAL_STREAM_LAYOUT_H

#include "tidal/_slot_layout.h"

/* The one C list of the fields, in CPython's order: asyncio's BaseTransport's
   slot first, then StreamSlots' own sorted by name (the annotations of
   _stream_slots.py, from which its __slots__ are made).  The struct and the
   check below are generated from it; tests/test_layouts.py checks that it,
   the annotations and _stream_layout.pxd's field list name the same fields. */
#define TIDAL_STREAM_SLOTS(X) \
    X(_extra) \
    X(_big_reads) X(_buffer) X(_buffer_size) X(_buffered) X(_closing) X(_conn_lost) \
    X(_empty_waiter) X(_eof) X(_high_water) X(_io_counts) X(_io_fd) X(_loop) X(_low_water) X(_paused) \
    X(_peername) X(_protocol) X(_protocol_connected) X(_protocol_paused) X(_read_ctx) \
    X(_read_queued) X(_recv_view) \
    X(_server) X(_sock) X(_sock_fd)

typedef struct {
    PyObject_HEAD
    TIDAL_STREAM_SLOTS(TIDAL_SLOT_FIELD)
#if PY_VERSION_HEX < 0x030C0000
    PyObject *_weakreflist;
#endif
} tidal_StreamSlotsObject;

static int tidal_stream_layout_matches(PyObject *cls) {
    #define TIDAL_S(f) tidal_slot_at(cls, #f, offsetof(tidal_StreamSlotsObject, f)) &&
    return TIDAL_STREAM_SLOTS(TIDAL_S) 1  /* each field is "check &&" */
        && ((PyTypeObject *)cls)->tp_basicsize == sizeof(tidal_StreamSlotsObject);
    #undef TIDAL_S
}

#endif /* TIDAL_STREAM_LAYOUT_H */
