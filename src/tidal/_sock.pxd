# C declarations for _sock.py (Cython pure-Python mode).  Keep in step with the .py.

import cython

# The first try of sock_recv/recv_into/sendall (_syscalls.py says why): C functions.
from tidal._syscalls_c cimport recv_into, recv_nowait, send


# Called per sock_* call, and by the uncompiled modules: a C call here.
cpdef check_not_ssl(object sock)

# Per sock_* call: a C call (its fd a C int, or -1; -2 never is one).
cdef int _check_sock(object loop, object sock) except -2


# What _retry calls again once the fd is ready, and sock_accept's first try:
# cpdef, so the compiled first try is a C call.
cpdef tuple _accept(object sock)
cpdef _sendto(object sock, object data, object address)
cpdef _connect_result(object sock, object address)


# The two helper objects of a pending sock_* operation: cdef classes, so
# their state is a C struct and __call__/on_writable read it as fields.
cdef class _IoDone:
    cdef object _fd
    cdef object _handle
    cdef object _loop
    cdef bint _writer


cdef class _SendAll:
    cdef object _fut
    cdef Py_ssize_t _pos
    cdef object _sock
    cdef object _view

    @cython.locals(pos=Py_ssize_t, n=Py_ssize_t)
    cpdef on_writable(self)
