# C declarations for _iocount.py (Cython pure-Python mode).  Keep in step with the .py.
#
# The counts as C integers: a transport adding a read's length is one add
# to a struct field (the transports that count hold a typed reference).

cdef class IOCounts:
    cdef public unsigned long long read
    cdef public unsigned long long written
