# C declarations for _net.py (Cython pure-Python mode).  Keep in step with the .py.

import cython

from tidal.sim._clock cimport VirtualClock
from tidal.sim._poller cimport SimFile, SimPoller, TimedEvent, TimedEvents

# cdef classes: a simulated segment or datagram goes through send(),
# push(), the network's event heap, _receive() and the poller's readiness
# test, each reading a handful of fields; as C struct members those reads
# cost no dict lookup.  Every field stays public (the simulation, the fault
# plans and tests read them; untyped locals in this module reach them as
# attributes too).  A new field needs a line here.

cdef class SimSocket(SimFile)
cdef class _Pipe
cdef class _Datagram(TimedEvent)

# (C globals: Trace.record tests the slots' count per record; in_order
# makes its keys with _HOST_BITS.)
cdef Py_ssize_t _HOST_BITS
cdef Py_ssize_t _RECORD
cdef Py_ssize_t _TRACE_SLOTS


cdef class Trace:
    cdef public object _hash
    cdef public Py_ssize_t _count
    cdef public bint keep
    cdef public list _kept
    cdef public list _names
    cdef public object _slots
    cdef unsigned int[::1] _view
    cdef public Py_ssize_t _used

    cpdef _flush(self)
    cpdef add_event(self, tuple event)
    @cython.locals(used=Py_ssize_t, high=cython.longlong)
    cpdef record(self, long long now_ns, unsigned int code, unsigned int a, unsigned int b, unsigned int c, unsigned int d, unsigned int e, unsigned int f)


cdef class LinkParams:
    cdef public tuple latency
    cdef public double drop
    cdef public double duplicate
    cdef public double reorder
    cdef public long long low_ns
    cdef public long long span_ns


cdef class _Event(TimedEvent):
    cdef public object callback
    cdef public tuple args


cdef class Network(TimedEvents):
    cdef public object loop
    cdef public VirtualClock clock
    cdef public SimPoller poller
    cdef public int READ
    cdef public int WRITE
    cdef public dict _readiness_of
    cdef public object rng
    cdef public object _random
    cdef public LinkParams defaults
    cdef public dict links
    cdef public set cut
    cdef public Py_ssize_t tcp_window
    cdef public object tcp_timeout_ns
    cdef public Trace trace
    cdef public dict hosts
    cdef public dict by_address
    cdef public dict sockets
    cdef public object next_fd
    cdef public dict tcp_ports
    cdef public dict udp_ports
    cdef public dict stalled
    cdef public dict last_arrival
    cdef public object _context
    cdef public object _call_at
    cdef public long long _seq
    cdef public object _tie

    @cython.locals(event=_Event)
    cpdef _Event _push_event(self, object when_ns, object callback, tuple args)
    cpdef _push(self, TimedEvent event, long long when_ns)

    @cython.locals(events=list, first=TimedEvent, datagram=_Datagram, entry=_Event, pipe=_Pipe)
    cpdef run_due(self)
    @cython.locals(key=cython.longlong)
    cpdef object in_order(self, Py_ssize_t src_number, Py_ssize_t dst_number, object arrival)

    @cython.locals(span=cython.longlong, draw=cython.double)
    cpdef long long latency(self, LinkParams params) except? -1


cdef class _Pipe:
    cdef public Network net
    cdef public str label
    cdef public Py_ssize_t label_id
    cdef public tuple key
    cdef public SimSocket src
    cdef public SimSocket dst
    cdef public object dst_host
    cdef public object queue
    cdef public Py_ssize_t queued_bytes
    cdef public object last_arrival
    cdef public object timer
    cdef public object stalled_since
    cdef public object give_up

    @cython.locals(net=Network, params=LinkParams)
    cpdef object _arrival(self)

    cpdef push(self, int kind, object payload=*)

    @cython.locals(net=Network)
    cpdef _arrive(self)


cdef class SimSocket(SimFile):
    cdef public Network net
    cdef public object host
    cdef public Py_ssize_t _host_number
    cdef public object family
    cdef public bint _v6
    cdef public object type
    cdef public object proto
    cdef public bint _tcp
    cdef public object _fd
    cdef public object _local
    cdef public object _peer
    cdef public str _state
    cdef public int _error
    cdef public int _reset
    cdef public bytearray _recv
    cdef public bint _eof
    cdef public bint _wr_shut
    cdef public bint _full
    cdef public _Pipe _out
    cdef public SimSocket _peer_sock
    cdef public object _backlog
    cdef public int _backlog_max
    cdef public object _datagrams
    cdef public Py_ssize_t _datagram_bytes
    cdef public dict _opts
    cdef public object _timeout
    cdef object __weakref__

    cpdef _wake(self)

    @cython.locals(net=Network)
    cpdef int _readiness(self) except? -1

    @cython.locals(out=_Pipe, peer=SimSocket)
    cpdef Py_ssize_t _window(self)

    cpdef _receive(self, int kind, object payload)

    @cython.locals(window=Py_ssize_t, out=_Pipe, n=Py_ssize_t)
    cpdef send(self, object data, int flags=*)

    @cython.locals(buffered=bytearray, peer=SimSocket)
    cpdef recv(self, object size, int flags=*)

    @cython.locals(net=Network, params=LinkParams, size=Py_ssize_t, copies=int, datagram=_Datagram)
    cpdef _sendto(self, object data, object address)

    cpdef recvfrom(self, object size, int flags=*)


cdef class _Datagram(TimedEvent):
    cdef public Network net
    cdef public object src
    cdef public tuple source
    cdef public object dst
    cdef public tuple key
    cdef public object payload
    cdef public Py_ssize_t src_number
    cdef public Py_ssize_t dst_number

    @cython.locals(net=Network, sock=SimSocket, datagrams=object)
    cpdef _arrive(self)
