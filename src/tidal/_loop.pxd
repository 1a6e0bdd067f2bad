# C declarations for _loop.py (Cython pure-Python mode: the .py is the source,
# this file only says which names are C).  Keep it in the same commit as the .py.

import cython

# asyncio's Handle/TimerHandle as C structs, and the C constructors and
# runner (see _handle_layout.pxd); _loop.py imports the same names from
# _handles when interpreted.
from tidal._handle_layout cimport Handle as CHandle, TimerHandle as CTimerHandle
from tidal._handle_layout cimport new_handle, new_timer, run_handle, use_freelist, use_timer_freelist
from tidal._handle_layout cimport use_fast_sleep, reraise, as_handle, as_timer
from tidal._timerheap cimport TimerHeap
from tidal._syscalls_c cimport monotonic, send as send_keeping_gil, event_fd, event_mask
from tidal._handles cimport hook_subclass, set_cancel_hook
from tidal._instrument cimport Instruments
from tidal._clock cimport ManualClock
from tidal._poller cimport DirectPoller, EpollPoller
from cpython.object cimport PyObject_Call, Py_SIZE
from cpython.contextvars cimport PyContext_Enter, PyContext_Exit
# A stream transport's fields as a C struct, and its read path as a C
# function: the loop runs a readable transport directly (_run_transport).
from tidal.transports._stream_layout cimport StreamSlots as CStream
from tidal.transports._stream cimport read_event

# The ready deque's bound methods called as C functions (_bound_call.h): a
# call through Cython's generic path costs ~50 instructions of checks
# (vectorcall lookup, recursion guard, result check) around deque's own
# ~20, twice per handle (queued, then run): ~5% of a call_soon chain.
cdef extern from "tidal/_bound_call.h":
    object call_one "tidal_call_one" (object f, object arg)
    object call_none "tidal_call_none" (object f)

# create_future's Future, allocated with its loop set (_new_future.h says
# why and when): use_fast_future checks once that asyncio's Future can be
# made so, and says whether it can.  new_task: create_task's Task, called
# with a reused tuple of arguments.
cdef extern from "tidal/_new_future.h":
    object new_future "tidal_new_future" (object loop)
    object new_task "tidal_new_task" (object task_cls, object coro, object kwargs)
    bint use_fast_future "tidal_use_fast_future" (object future_cls) except -1

# The loop's instance dict, unmade while empty (see _LoopDict): Cython's
# tp_new makes one for every instance.  (A dict Python manages, EventLoop's
# on 3.11, has no offset: left alone.)
cdef extern from *:
    """
    static inline void tidal_unmake_empty_dict(PyObject *obj) {
        Py_ssize_t offset = Py_TYPE(obj)->tp_dictoffset;
        if (offset <= 0) return;
        PyObject **dict = (PyObject **)((char *)obj + offset);
        if (*dict != NULL && PyDict_CheckExact(*dict) && PyDict_GET_SIZE(*dict) == 0)
            Py_CLEAR(*dict);
    }
    """
    void unmake_empty_dict "tidal_unmake_empty_dict" (object obj)

# Whether `time` is set on the loop instance itself (mock.patch.object(loop,
# "time", ...)): asyncio's loop then reads it for every due time, as it calls
# self.time().  From 3.12 the dict is _LoopDict's, NULL until something is
# stored: two loads.  3.11's managed dict is made once by the lookup (its
# method loads then specialize past the dict, LOAD_METHOD_WITH_DICT).
cdef extern from *:
    """
    static int __attribute__((noinline)) tidal_has_own_time_in_dict(PyObject *obj) {
        static PyObject *name = NULL;
        PyObject **dict = _PyObject_GetDictPtr(obj);
        if (dict == NULL || *dict == NULL || !PyDict_GET_SIZE(*dict)) return 0;
        if (name == NULL && (name = PyUnicode_InternFromString("time")) == NULL) {
            PyErr_Clear();
            return 0;
        }
        return PyDict_GetItem(*dict, name) != NULL;
    }
    static inline int tidal_has_own_time(PyObject *obj) {
        Py_ssize_t offset = Py_TYPE(obj)->tp_dictoffset;
        if (offset > 0 && *(PyObject **)((char *)obj + offset) == NULL) return 0;
        return tidal_has_own_time_in_dict(obj);
    }
    """
    bint has_own_time "tidal_has_own_time" (object obj)

# call_soon's C entry (_call_soon_entry.h says why): installed once.
cdef extern from "tidal/_call_soon_entry.h":
    ctypedef object (*bound_getter "tidal_bound_getter")(object)
    ctypedef object (*soon_plain_fn "tidal_soon_plain_fn")(object, object, object, object)
    bint install_call_soon "tidal_install_call_soon" (object function, object core,
                                                      bound_getter bound_of, soon_plain_fn soon_plain) except -1
    object new_bound_call_soon "tidal_new_bound_call_soon" (object loop)


# Cython's coroutine type, its never-awaited warning made as CPython's
# (_coroutine_finalize.h says why).
cdef extern from "tidal/_coroutine_finalize.h":
    object wrap_coroutine_finalize "tidal_wrap_coroutine_finalize" (object coro)


# Tuning constants as C numbers: the pruning test in _run_once is C arithmetic.
cdef Py_ssize_t _MIN_SCHEDULED_TIMER_HANDLES
cdef double _MIN_CANCELLED_TIMER_HANDLES_FRACTION

cdef object _Deque                         # collections.deque (_ready_len)
cdef object _StreamTransport               # compared with type(): a pointer test
cdef object _copy_context
cdef object _MAXIMUM_SELECT_TIMEOUT
cdef double _MAXIMUM_WAIT_S

# Module globals read per callback, future or timer (call_soon, create_future,
# call_later): C globals, not a lookup in the module's dict per use.
cdef object Handle
cdef object TimerHandle
cdef object _Future
cdef object _Task
cdef bint _FAST_FUTURE


# The hot state as a C struct: each field read below is a pointer load, not
# a dict lookup.  `public`: tests, the transports and CPython's test suite
# read them from Python (loop._ready, loop._readers, loop._timer_cancelled_count).
cdef class _LoopCore:
    cdef public object _clock
    cdef public object _clock_now          # the clock's bound C function
    cdef public double _clock_resolution
    cdef public bint _clock_is_monotonic   # _clock_now is time.monotonic: read monotonic() in C
    cdef public ManualClock _clock_field   # the clock, if its time is a field (else None)
    cdef public object _poller             # any object with the poller interface
    cdef public object _poll               # _poller.poll, bound once
    cdef DirectPoller _direct_poller       # _poller if it is one (its poll_wait is a C call), else None
    cdef EpollPoller _epoll_poller         # _poller if exactly an EpollPoller (its wait_events), else None
    cdef int _poll_readable                # _poller.READABLE and WRITABLE, read once (_queue_events)
    cdef int _poll_writable
    cdef public object _park               # _poller.park, bound once (None: it has none)
    cdef public object _ready              # collections.deque (no C API: its methods are bound once)
    cdef public object _ready_append
    cdef public object _soon_append        # call_soon's: _ready_append, or the instruments' report_append
    cdef public object _ready_popleft
    cdef readonly TimerHeap _timers        # the timer heap (_timerheap); set once (_init_timers)
    cdef readonly list _scheduled          # _timers.items: len() and [0] are C macros
    cdef public Py_ssize_t _timer_cancelled_count
    cdef public Py_ssize_t _queued_reads   # stream transports in _ready (see _run_ready)
    cdef public bint _wakeup_pending       # a wake-up byte is on its way (call_soon_threadsafe)
    cdef bint _run_once_is_ours            # no override of _run_once / _run_ready: called as C
    cdef bint _run_ready_is_ours           # (_note_overrides)
    cdef bint _get_debug_is_ours           # (_note_overrides; create_future)
    cdef public dict _readers
    cdef public dict _read_handles         # transport -> its observed reads' Handle (_transport_handle)
    cdef public dict _writers
    cdef public dict _fileobjs             # fd -> the object it was registered by (not ints)
    cdef public bint _closed
    cdef public bint _stopping
    cdef public bint _debug
    cdef public Instruments _instruments   # None, or this loop's instruments (_instrument.py)
    cdef public bint _observed             # _debug or _instruments: the run phase's one test
    # Bumped before and after each wait for I/O: odd while the loop waits,
    # even while it runs callbacks; read by the watchdog's thread.
    cdef public Py_ssize_t _turn
    cdef public object _watchdog           # None (TIDAL_WATCHDOG decides), False (off), a Watchdog
    cdef public object _thread_id
    cdef public object _current_handle
    cdef public double slow_callback_duration
    # Not per turn, but here so that an EventLoop's __dict__ stays empty (see
    # _loop.py): asyncio's C Task/Future look loop methods up per step.
    cdef public object _transports
    cdef public object _io_counts         # _iocount.IOCounts: bytes the transports read and wrote
    cdef public object _exception_handler
    cdef public object _task_factory
    cdef public object _default_executor
    cdef public object _executor_shutdown_called
    cdef public object _asyncgens
    cdef public object _asyncgens_shutdown_called
    cdef public object _old_agen_hooks
    cdef public object _coroutine_origin_tracking_enabled
    cdef public object _coroutine_origin_tracking_saved_depth
    cdef public dict _signal_handlers      # (a dict: the turn's emptiness test is C)
    cdef public object _ssock
    cdef public object _csock
    cdef public object _socket_factory    # tidal.abc.SocketFactory: every socket opened for the program
    cdef public object _resolver          # tidal.abc.Resolver: the loop's getaddrinfo/getnameinfo
    cdef public dict _loop_kwargs          # {"loop": self}: asyncio's Future/Task keyword, made once
    cdef object _call_soon_bound           # loop.call_soon as asyncio's C Task gets it (_call_soon_of)

    # Internal, so cdef: a plain C call from call_at/call_later.
    @cython.locals(timer=CTimerHandle)
    cdef object _call_at(self, object when, object callback, tuple args, object context)

    cpdef _run_turns(self)

    cpdef _park_reader(self, int fd)

    # cpdef, not cdef: one call per turn, and still replaceable by a subclass
    # (the schedule seam is _run_ready).
    @cython.locals(timers=TimerHeap, sched_count=Py_ssize_t, nready=Py_ssize_t, live=list, timer=CTimerHandle,
                   when=double, wait=double, end_time=double, instruments=Instruments, nevents=int)
    cpdef _run_once(self)

    @cython.locals(_=Py_ssize_t, handle=CHandle)
    cpdef _run_ready(self, Py_ssize_t ntodo)

    @cython.locals(_=Py_ssize_t, instruments=Instruments, handle=CHandle, tr=CStream)
    cdef _run_ready_observed(self, Py_ssize_t ntodo)


# EventLoop's base from 3.12 (on 3.11, _LoopCore itself): _LoopCore with an
# instance dict of its own.  Python gives a subclass of a C type a "managed"
# dict, and from 3.12 a managed dict of an object made by a C type's tp_new
# (Cython's) never gets its inline values: Python then never specializes a
# method load on the loop (loop.call_later in asyncio.sleep, loop.create_future
# in any library: a full lookup each time, ~130 instructions).  This dict,
# unmade (EventLoop.__init__) and left so (nothing of tidal's writes to it),
# is one 3.12 and 3.13 specialize past (LOAD_ATTR_METHOD_LAZY_DICT), and one
# the C Task and Future's lookups on the loop skip.  3.11 does give the
# managed dict its values, and specializes nothing past a dict that is not
# made (LOAD_METHOD_WITH_DICT wants one to exist): it keeps Python's.
cdef class _LoopDict(_LoopCore):
    cdef dict __dict__


# The loop's time (see _now in _loop.py): inline, so the default clock is a
# field test and clock_gettime, as if written out at each of its uses.
cdef inline double _now(_LoopCore core) except? -1.0
cdef double _time_by_call(_LoopCore core, bint own) except? -1.0


# The ready queue's length (see _ready_len in _loop.py): one load for a deque.
cdef inline Py_ssize_t _ready_len(object ready) except -1


# Whether phases 1a and 2 would leave the timers alone (see _timers_at_rest
# in _loop.py): asked by _run_once's merged turns.
@cython.locals(sched_count=Py_ssize_t, timer=CTimerHandle, when=double)
cdef bint _timers_at_rest(_LoopCore core, list scheduled) except -1


# One ready handle run (see _run_one in _loop.py): inline, as if written out
# in each of the run phase's two loops.
cdef inline object _run_one(CHandle handle)
cdef object _callback_raised(CHandle handle)


# Phase 1c (see _queue_events in _loop.py): a loop over the poll's list, and
# its compiled-only twin over an EpollPoller's C array of events; each event
# queued by _queue_fd, inline.  mask/readable: the poller's event bits as C
# ints (one C `&` per event, not a Python int operation).
@cython.locals(readers=dict, mask=int, readable=int)
cdef object _queue_events(_LoopCore core, object event_list)
@cython.locals(readers=dict, readable=int, i=Py_ssize_t)
cdef object _queue_epoll_events(_LoopCore core, bytearray events, Py_ssize_t nevents)
@cython.locals(tr=CStream, handle=CHandle, writer=CHandle)
cdef inline object _queue_fd(_LoopCore core, int fd, unsigned int mask, int readable, dict readers,
                             object append)


# A handle run in debug mode (see _run_debug in _loop.py).
@cython.locals(t0=double, dt=double)
cdef _run_debug(_LoopCore core, object handle)

# A readable stream transport run (see _run_transport in _loop.py).
@cython.locals(tr=CStream)
cdef object _run_transport(_LoopCore core, object transport)
@cython.locals(tr=CStream, handle=CHandle)
cdef object _transport_handle(_LoopCore core, object transport)


# create_task's work: a C call from create_task, and callable from Python
# (the instruments' dispatch makes tasks through it).
cpdef object _make_task(_LoopCore loop, object coro, object name, object context)


# Called by _call_soon_entry.h's descriptor and entry as C function pointers.
@cython.locals(core=_LoopCore)
cdef object _call_soon_of(object loop)
@cython.locals(core=_LoopCore)
cdef object _soon_plain(object loop, object callback, object args, object context)


# Called by _handles as a C function pointer (set_cancel_hook), so cdef.
@cython.locals(core=_LoopCore, scheduled_timer=CTimerHandle)
cdef bint _handle_cancelled(object loop, object handle, bint timer) except -1
