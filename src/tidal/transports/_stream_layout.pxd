# C view of a StreamTransport's fields (the slots of _stream_slots.StreamSlots),
# for the compiled read and write paths of _stream.py.  A declarations-only
# file (no module of this name exists at run time), as _handle_layout.pxd is
# for asyncio's handles, and following the same rule: CPython lays out
# __slots__ as one PyObject* each, after the base class's (asyncio's
# BaseTransport: `_extra`), in sorted name order, then the weak-reference
# pointer on 3.11 (3.12 keeps it before the header).  Cython checks the size
# when _stream loads (check_size error); _stream.py checks every offset against
# the class's member descriptors at import (stream_layout_matches) and refuses
# to load on a mismatch, rather than read the wrong field.

cdef extern from *:
    """
    #include <structmember.h>  /* PyMemberDef, for the layout check (3.11) */

    typedef struct {
        PyObject_HEAD
        PyObject *_extra;
        PyObject *_big_reads;
        PyObject *_buffer;
        PyObject *_buffer_size;
        PyObject *_buffered;
        PyObject *_closing;
        PyObject *_conn_lost;
        PyObject *_empty_waiter;
        PyObject *_eof;
        PyObject *_high_water;
        PyObject *_io_fd;
        PyObject *_loop;
        PyObject *_low_water;
        PyObject *_paused;
        PyObject *_peername;
        PyObject *_protocol;
        PyObject *_protocol_connected;
        PyObject *_protocol_paused;
        PyObject *_recv_view;
        PyObject *_server;
        PyObject *_sock;
        PyObject *_sock_fd;
    #if PY_VERSION_HEX < 0x030C0000
        PyObject *_weakreflist;
    #endif
    } tidal_StreamSlotsObject;

    static int tidal_stream_slot_at(PyObject *cls, const char *name, Py_ssize_t offset) {
        PyObject *d = PyObject_GetAttrString(cls, name);
        int ok;
        if (d == NULL) { PyErr_Clear(); return 0; }
        ok = Py_IS_TYPE(d, &PyMemberDescr_Type)
             && ((PyMemberDescrObject *)d)->d_member->offset == offset;
        Py_DECREF(d);
        return ok;
    }

    static int tidal_stream_layout_matches(PyObject *cls) {
        #define TIDAL_S(f) tidal_stream_slot_at(cls, #f, offsetof(tidal_StreamSlotsObject, f))
        return TIDAL_S(_extra) && TIDAL_S(_big_reads) && TIDAL_S(_buffer) && TIDAL_S(_buffer_size) && TIDAL_S(_buffered)
            && TIDAL_S(_closing) && TIDAL_S(_conn_lost) && TIDAL_S(_empty_waiter) && TIDAL_S(_eof)
            && TIDAL_S(_high_water) && TIDAL_S(_io_fd) && TIDAL_S(_loop) && TIDAL_S(_low_water)
            && TIDAL_S(_paused) && TIDAL_S(_peername) && TIDAL_S(_protocol) && TIDAL_S(_protocol_connected)
            && TIDAL_S(_protocol_paused) && TIDAL_S(_recv_view) && TIDAL_S(_server)
            && TIDAL_S(_sock) && TIDAL_S(_sock_fd)
            && ((PyTypeObject *)cls)->tp_basicsize == sizeof(tidal_StreamSlotsObject);
        #undef TIDAL_S
    }
    """

    ctypedef class tidal.transports._stream_slots.StreamSlots [object tidal_StreamSlotsObject, check_size error]:
        cdef object _extra
        cdef object _big_reads
        cdef object _buffer
        cdef object _buffer_size
        cdef object _buffered
        cdef object _closing
        cdef object _conn_lost
        cdef object _empty_waiter
        cdef object _eof
        cdef object _high_water
        cdef object _io_fd
        cdef object _loop
        cdef object _low_water
        cdef object _paused
        cdef object _peername
        cdef object _protocol
        cdef object _protocol_connected
        cdef object _protocol_paused
        cdef object _recv_view
        cdef object _server
        cdef object _sock
        cdef object _sock_fd

    bint stream_layout_matches "tidal_stream_layout_matches" (object cls)
