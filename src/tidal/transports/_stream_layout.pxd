# C view of a StreamTransport's fields (the slots of _stream_slots.StreamSlots),
# for the compiled read and write paths of _stream.py.  A declarations-only
# file (no module of this name exists at run time), as _handle_layout.pxd is
# for asyncio's handles, and following the same rule: CPython lays out
# __slots__ as one PyObject* each, after the base class's (asyncio's
# BaseTransport: `_extra`), in sorted name order, then the weak-reference
# pointer on 3.11 (3.12 keeps it before the header).  Cython checks the size
# when _stream loads (check_size error); _stream.py checks every offset against
# the class's member descriptors at import (stream_layout_matches) and refuses
# to load on a mismatch, rather than read the wrong field.  One field is typed:
# _io_counts always holds the loop's IOCounts (StreamTransport.__init__ refuses
# anything else), and the header types its struct member to match, so the
# read and write paths add to its C fields directly.

from tidal._iocount cimport IOCounts

cdef extern from "tidal/transports/_stream_layout.h":
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
        cdef IOCounts _io_counts
        cdef object _io_fd
        cdef object _loop
        cdef object _low_water
        cdef object _paused
        cdef object _peername
        cdef object _protocol
        cdef object _protocol_connected
        cdef object _protocol_paused
        cdef object _read_ctx
        cdef object _read_queued
        cdef object _recv_view
        cdef object _server
        cdef object _sock
        cdef object _sock_fd

    bint stream_layout_matches "tidal_stream_layout_matches" (object cls)
