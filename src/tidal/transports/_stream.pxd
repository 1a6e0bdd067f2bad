# C declarations for this module (Cython pure-Python mode).  Keep in step with the .py.
#
# Almost nothing of the class.  The transport class derives from asyncio's
# Transport, whose BaseTransport has __slots__ = ('_extra',): a cdef base class
# would conflict with that instance layout, and libraries check
# isinstance(transport, asyncio.Transport).  So the class stays a Python class
# whose methods are compiled (the read and write paths run as C, without the
# bytecode loop), and a .pxd cannot type the attributes or locals of a Python
# class.  Module constants are left as Python objects on purpose: they are
# compared with Python ints (len(), send() results), and a C-typed constant
# would be boxed into a new int object at every such comparison.

import cython

# The read and write paths' syscalls (_syscalls.py says why): C functions.
from tidal._syscalls_c cimport recv_bytes, recv_into, send

# The transport's fields as C struct members, and the import-time check that
# they are where the struct says (_stream_layout.pxd).
from tidal.transports._stream_layout cimport StreamSlots as CStream, stream_layout_matches

# The loop's byte counts (a transport's _io_counts, always one of these, as
# __init__ checks: _stream_layout.pxd types the field, unchecked after that).
from tidal._iocount cimport IOCounts

# Compared with len() (a C integer) on every read: a C constant.
cdef Py_ssize_t _DIRECT_READ
# The bound of the read loop of one readiness event: a C loop.
cdef int _READS_PER_EVENT
# Compared with a read's length (a C integer) on every read, and only used
# here: a C constant.
cdef Py_ssize_t STREAM_READ
# Whether the read loop of one event goes on (compiled: a C function).
cdef bint _reads_on(CStream tr, object protocol, int reads) except -1

# The read path (see _stream.py): C functions.  read_event is the loop's:
# its run phase cimports it and calls it for a readable transport.
@cython.locals(tr=CStream, n=Py_ssize_t, reads=int)
cdef object read_event(object transport)
@cython.locals(tr=CStream, nbytes=Py_ssize_t, size=Py_ssize_t, reads=int)
cdef object _read_buffered(object self)
