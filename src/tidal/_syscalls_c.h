/* The compiled twins of _syscalls.py's functions (socket reads and writes, the
   epoll wait, the monotonic clock).  _syscalls_c.pxd declares them to Cython
   and says why they exist. */

#ifndef TIDAL_SYSCALLS_C_H
#define TIDAL_SYSCALLS_C_H

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#ifdef __linux__
#include <sys/epoll.h>
#endif

/* sock.<name>(arg), the name interned once in *cache: a simulated socket
   (or any socket object but a plain one) takes this call per read and per
   write, and PyObject_CallMethod would make the name's str and parse a
   format for its arguments each time (~1,500 instructions a call). */
static PyObject *tidal_call_method(PyObject *sock, PyObject **cache, const char *name, PyObject *arg) {
    PyObject *args[2];
    if (*cache == NULL) {
        *cache = PyUnicode_InternFromString(name);
        if (*cache == NULL)
            return NULL;
    }
    args[0] = sock;
    args[1] = arg;
    return PyObject_VectorcallMethod(*cache, args, 2, NULL);
}

static PyObject *tidal_name_send = NULL;
static PyObject *tidal_name_recv = NULL;
static PyObject *tidal_name_recv_into = NULL;

/* sock.recv(size), through tidal_call_method. */
static PyObject *tidal_call_recv(PyObject *sock, Py_ssize_t size) {
    PyObject *res, *arg = PyLong_FromSsize_t(size);
    if (arg == NULL)
        return NULL;
    res = tidal_call_method(sock, &tidal_name_recv, "recv", arg);
    Py_DECREF(arg);
    return res;
}

/* sock.<name>(arg), for a socket whose own method must run: its int result. */
static Py_ssize_t tidal_call_for_size(PyObject *sock, PyObject **cache, const char *name, PyObject *arg) {
    Py_ssize_t n;
    PyObject *res = tidal_call_method(sock, cache, name, arg);
    if (res == NULL)
        return -1;
    n = PyLong_AsSsize_t(res);
    Py_DECREF(res);
    return n;
}

/* The bytes of `buf` for a syscall, without a buffer export, for the
   types the read and write paths pass (bytes, bytearray, a C-contiguous
   memoryview that is still open; `writable`: not a read-only one):
   1 and the pointer and size, or 0 for anything else, which then goes
   to the socket's own method, so an odd or unusable buffer gets exactly
   the socket module's answer (a read-only one is a TypeError there).
   No Python code runs between this and the syscall, so a bytearray
   cannot be resized in between. */
static inline int tidal_plain_buffer(PyObject *buf, int writable, char **p, Py_ssize_t *len) {
    if (PyByteArray_CheckExact(buf)) {
        *p = PyByteArray_AS_STRING(buf);
        *len = PyByteArray_GET_SIZE(buf);
        return 1;
    }
    if (!writable && PyBytes_CheckExact(buf)) {
        *p = PyBytes_AS_STRING(buf);
        *len = PyBytes_GET_SIZE(buf);
        return 1;
    }
    if (PyMemoryView_Check(buf)) {
        PyMemoryViewObject *mv = (PyMemoryViewObject *)buf;
        /* what memory_getbuf refuses (released view or base, a
           restricted view) goes to the socket's method too */
        if (!(mv->flags & _Py_MEMORYVIEW_RELEASED)
                && !(mv->mbuf->flags & _Py_MANAGED_BUFFER_RELEASED)
#ifdef _Py_MEMORYVIEW_RESTRICTED
                && !(mv->flags & _Py_MEMORYVIEW_RESTRICTED)
#endif
                && (mv->flags & _Py_MEMORYVIEW_C)
                && !(writable && mv->view.readonly)) {
            *p = (char *)mv->view.buf;
            *len = mv->view.len;
            return 1;
        }
    }
    return 0;
}

static Py_ssize_t tidal_recv_into(PyObject *sock, int fd, PyObject *buf) {
    char *p;
    Py_ssize_t len;
    ssize_t n;
    if (fd < 0 || !tidal_plain_buffer(buf, 1, &p, &len))
        return tidal_call_for_size(sock, &tidal_name_recv_into, "recv_into", buf);
    n = recv(fd, p, (size_t)len, 0);
    if (n < 0)
        PyErr_SetFromErrno(PyExc_OSError);
    return (Py_ssize_t)n;
}

/* The last bytes object tidal_bytes_copy made, kept (one per process): once
   everything else has let go of it (its count back to 1, this reference),
   the next copy of the same length is made into it instead of a new object.
   A 1 KiB read is past pymalloc's 512 bytes: its object costs glibc's malloc
   and free, ~450 instructions a read, where an echo or a request-reply
   protocol reads the same length over and over.  No one else holds it when
   it changes, so no one can see it change; its cached hash is forgotten. */
static PyObject *tidal_bytes_kept = NULL;
#define TIDAL_BYTES_KEPT_MAX 65536

static PyObject *tidal_bytes_copy(const char *p, Py_ssize_t n) {
    PyObject *data = tidal_bytes_kept;
    if (data != NULL && Py_REFCNT(data) == 1 && Py_SIZE(data) == n) {
        memcpy(PyBytes_AS_STRING(data), p, (size_t)n);
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
        ((PyBytesObject *)data)->ob_shash = -1;
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
        Py_INCREF(data);
        return data;
    }
    data = PyBytes_FromStringAndSize(p, n);
    /* (0 and 1 bytes are shared objects: never kept) */
    if (data != NULL && n > 1 && n <= TIDAL_BYTES_KEPT_MAX) {
        Py_INCREF(data);
        Py_XSETREF(tidal_bytes_kept, data);
    }
    return data;
}

/* What the kernel has, up to len(buf) bytes, as a bytes object.
   Received into `buf` (a scratch buffer) and copied out (tidal_bytes_copy), or, `direct`,
   straight into a bytes object of len(buf) that is then shrunk to what
   came (in place: glibc's realloc only splits the chunk); what a large
   read saves is its copy (~10% of a 100 KiB echo's CPU outside the
   kernel), what a small one would pay is a large malloc and the split. */
static PyObject *tidal_recv_bytes(PyObject *sock, int fd, PyObject *buf, int direct) {
    char *p;
    Py_ssize_t len;
    ssize_t n;
    if (fd < 0 || !tidal_plain_buffer(buf, 1, &p, &len)) {
        /* sock.recv(len(view)), as asyncio's transport reads */
        Py_ssize_t size = PyObject_Length(buf);
        return size < 0 ? NULL : tidal_call_recv(sock, size);
    }
    if (direct) {
        PyObject *data = PyBytes_FromStringAndSize(NULL, len);
        if (data == NULL)
            return NULL;
        n = recv(fd, PyBytes_AS_STRING(data), (size_t)len, 0);
        if (n < 0) {
            PyErr_SetFromErrno(PyExc_OSError);  /* (before the free, which may touch errno) */
            Py_DECREF(data);
            return NULL;
        }
        if (n != len && _PyBytes_Resize(&data, (Py_ssize_t)n) < 0)
            return NULL;
        return data;
    }
    n = recv(fd, p, (size_t)len, 0);
    if (n < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return NULL;
    }
    return tidal_bytes_copy(p, (Py_ssize_t)n);
}

/* sock.recv(size), or None where it would block: a sock_recv that must
   wait (the usual case for a server waiting on its client) then costs no
   BlockingIOError, made and caught. */
static PyObject *tidal_recv_nowait(PyObject *sock, int fd, Py_ssize_t size) {
    PyObject *buf;
    ssize_t n;
    if (fd < 0) {
        buf = tidal_call_recv(sock, size);
        if (buf == NULL && (PyErr_ExceptionMatches(PyExc_BlockingIOError)
                            || PyErr_ExceptionMatches(PyExc_InterruptedError))) {
            PyErr_Clear();
            Py_RETURN_NONE;
        }
        return buf;
    }
    if (size < 0) {
        PyErr_SetString(PyExc_ValueError, "negative buffersize in recv");
        return NULL;
    }
    buf = PyBytes_FromStringAndSize(NULL, size);
    if (buf == NULL)
        return NULL;
    n = recv(fd, PyBytes_AS_STRING(buf), (size_t)size, 0);
    if (n < 0) {
        Py_DECREF(buf);
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            Py_RETURN_NONE;
        PyErr_SetFromErrno(PyExc_OSError);
        return NULL;
    }
    if (n != size && _PyBytes_Resize(&buf, (Py_ssize_t)n) < 0)
        return NULL;
    return buf;
}

static Py_ssize_t tidal_send(PyObject *sock, int fd, PyObject *data) {
    char *p;
    Py_ssize_t len;
    ssize_t n;
    if (fd < 0 || !tidal_plain_buffer(data, 0, &p, &len))
        return tidal_call_for_size(sock, &tidal_name_send, "send", data);
    n = send(fd, p, (size_t)len, 0);
    if (n < 0)
        PyErr_SetFromErrno(PyExc_OSError);
    return (Py_ssize_t)n;
}

/* CLOCK_MONOTONIC in integer ns: what time.perf_counter_ns() and
   time.monotonic_ns() read on Linux (the tracer's records are stamped with
   it, and a trace session's start measured on it). */
static inline long long tidal_monotonic_ns(void) {
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* time.monotonic() as a C double, computed as CPython computes it (the
   clock in integer nanoseconds, then seconds), so the loop's time and
   time.monotonic() read at the same instant are the same float. */
static inline double tidal_monotonic(void) {
    struct timespec ts;
    long long ns;
    /* Cannot fail on Linux (a valid clock id and pointer), the one
       platform the loop uses this on: elsewhere time.monotonic() may
       read another clock (macOS: mach_absolute_time). */
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    ns = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    if (ns % 1000000000LL == 0)
        return (double)(ns / 1000000000LL);
    return (double)ns / 1e9;
}

#ifdef __linux__
/* Whether the calling thread is the only thread of the only interpreter:
   then no thread can be waiting for the GIL.  (Python threads are added
   to the list by the thread that starts them, which holds the GIL; a
   thread made by C code that then calls PyGILState_Ensure adds itself,
   and waits at most until the loop's next wait that can block, or the
   interpreter's switch interval.) */
static inline int tidal_alone(void) {
    return PyThreadState_Next(PyInterpreterState_ThreadHead(PyInterpreterState_Get())) == NULL
        && PyInterpreterState_Next(PyInterpreterState_Head()) == NULL;
}

/* After a first poll found nothing (the wait then blocked), the next
   TIDAL_PROBE_BACKOFF waits that can block go straight to the kernel: a
   loop that sleeps at each wait (one client, a reply away) makes one
   extra epoll_wait per nine waits, not one per wait. */
#define TIDAL_PROBE_BACKOFF 8
static int tidal_probe_misses = 0;

/* The epoll wait itself (timeout in seconds, negative: wait for ever) into
   `events`: the number of events kept, or -1 with an exception set.  A
   signal (EINTR) runs the Python handlers and returns no events (the loop
   recomputes its timeout and polls again) where the select module would
   retry itself.
   The timeout is counted in milliseconds, rounded up, as the select
   module (and so asyncio's loop) counts it: a timer due in 0.3 ms is one
   wait of 1 ms, never a wait of 0 over and over.  (Waiting to the
   microsecond, with epoll_pwait2, was tried: a timer due in 50 us then
   ran after ~0.13 ms instead of ~1.1 ms, but a loop with 100 sleeping
   tasks woke for nearly every timer on its own and spent 1.5x asyncio's
   CPU time where milliseconds let one wake-up run several timers.) */
static int tidal_epoll_wait_n(int epfd, double timeout, struct epoll_event *events, int maxevents) {
    int ms, n, i, kept;
    if (epfd < 0) {
        PyErr_SetString(PyExc_ValueError, "I/O operation on closed epoll object");
        return -1;
    }
    if (isnan(timeout)) {  /* (call_at(nan)): the select module's error */
        PyErr_SetString(PyExc_ValueError, "Invalid value NaN (not a number)");
        return -1;
    }
    if (timeout < 0) {
        ms = -1;  /* negative: wait for ever, as the select module does */
    } else if (timeout == 0) {
        ms = 0;
    } else {
        /* seconds -> ns -> ms, each rounded up, as the select module does */
        double m = ceil(ceil(timeout * 1e9) / 1e6);
        ms = m > (double)INT_MAX ? INT_MAX : (int)m;
    }
    /* With other threads about, the GIL is let go even for a poll that
       cannot block: it is where another thread (an executor worker, a
       call_soon_threadsafe producer) gets to run while the loop is busy,
       as on asyncio's loop; holding it would make them wait for the
       interpreter's switch interval (5 ms) instead.  With none, letting
       it go and taking it back is ~300 instructions of mutexes and a
       condition signal for nobody: a poll that cannot block keeps it, and
       so does a first poll that cannot block before a wait that can, as
       long as such polls find something (a busy server's, whose next
       event is already there; see tidal_probe_misses). */
    if ((ms == 0 || tidal_probe_misses == 0) && tidal_alone()) {
        n = epoll_wait(epfd, events, maxevents, 0);
        if (n != 0 || ms == 0)
            goto done;
        tidal_probe_misses = TIDAL_PROBE_BACKOFF + 1;
    }
    if (ms != 0 && tidal_probe_misses > 0)
        tidal_probe_misses--;
    Py_BEGIN_ALLOW_THREADS
    n = epoll_wait(epfd, events, maxevents, ms);
    Py_END_ALLOW_THREADS
done:
    if (n < 0) {
        if (errno != EINTR) {
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        return PyErr_CheckSignals() < 0 ? -1 : 0;
    }
    /* a parked registration's one report (tidal_epoll_park) is dropped */
    kept = 0;
    for (i = 0; i < n; i++)
        if (events[i].data.fd >= 0)
            events[kept++] = events[i];
    return kept;
}

/* epoll.poll(timeout, maxevents): the same list of (fd, events), built
   without parsing arguments or Py_BuildValue, and the event array on the
   stack when it is small. */
static PyObject *tidal_epoll_wait(PyObject *ep, int epfd, double timeout, int maxevents) {
    struct epoll_event stack_events[64];
    struct epoll_event *events = stack_events;
    PyObject *list, *item;
    int n, i;
    (void)ep;
    if (maxevents < 1)
        maxevents = 1;
    if (maxevents > 64) {
        events = PyMem_New(struct epoll_event, (size_t)maxevents);
        if (events == NULL)
            return PyErr_NoMemory();
    }
    n = tidal_epoll_wait_n(epfd, timeout, events, maxevents);
    if (n < 0) {
        list = NULL;
        goto done;
    }
    list = PyList_New(n);
    if (list == NULL)
        goto done;
    for (i = 0; i < n; i++) {
        PyObject *fd = PyLong_FromLong(events[i].data.fd);
        PyObject *mask = PyLong_FromUnsignedLong(events[i].events);
        item = (fd && mask) ? PyTuple_Pack(2, fd, mask) : NULL;
        Py_XDECREF(fd);
        Py_XDECREF(mask);
        if (item == NULL) {
            Py_CLEAR(list);
            goto done;
        }
        /* Two ints cannot be part of a cycle: the collector need never
           see this pair (it would untrack it itself, at the first
           collection it survives).  With thousands of connections a
           turn's list holds thousands of pairs at once, enough to set
           off collections mid-list that move them, tracked, into the
           older generations; at 10,000 connections that made 20x the
           young collections of 10 connections, and full ones. */
        PyObject_GC_UnTrack(item);
        PyList_SET_ITEM(list, i, item);
    }
done:
    if (events != stack_events)
        PyMem_Free(events);
    return list;
}

/* The wait of tidal_epoll_wait, into the bytearray `buf` (grown to hold
   `maxevents` events if it is smaller) instead of a list: the number of
   events, read in place with tidal_event_fd/tidal_event_mask until the
   next wait.  A list costs a tuple and two ints per event, made here and
   taken apart again by the loop (~1,500 instructions a 1 KiB echo round
   trip, which has two events). */
static int tidal_epoll_wait_into(PyObject *ep, int epfd, double timeout, int maxevents, PyObject *buf) {
    Py_ssize_t size;
    (void)ep;
    if (maxevents < 1)
        maxevents = 1;
    size = (Py_ssize_t)maxevents * (Py_ssize_t)sizeof(struct epoll_event);
    if (PyByteArray_GET_SIZE(buf) < size && PyByteArray_Resize(buf, size) < 0)
        return -1;
    return tidal_epoll_wait_n(epfd, timeout, (struct epoll_event *)PyByteArray_AS_STRING(buf), maxevents);
}

/* Event `i` of a tidal_epoll_wait_into: its fd, its mask.  The buffer is
   found anew each time (one load): nothing can move it between the wait
   and the reading of its events, but then nothing has to be sure of it. */
static inline int tidal_event_fd(PyObject *buf, Py_ssize_t i) {
    return ((struct epoll_event *)PyByteArray_AS_STRING(buf))[i].data.fd;
}

static inline unsigned int tidal_event_mask(PyObject *buf, Py_ssize_t i) {
    return ((struct epoll_event *)PyByteArray_AS_STRING(buf))[i].events;
}

/* Silence registered `fd`: EPOLLONESHOT with no events (at most one error
   or hang-up report, then nothing until modified again) and -1 as the
   registration's data, which tidal_epoll_wait drops.  1 if done; 0 if
   not (the fd is closed or not registered): the caller unregisters. */
static int tidal_epoll_park(PyObject *ep, int epfd, int fd) {
    struct epoll_event ev;
    (void)ep;
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLONESHOT;
    ev.data.fd = -1;
    return epfd >= 0 && epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) == 0;
}
#else
static int tidal_epoll_park(PyObject *ep, int epfd, int fd) {
    (void)ep; (void)epfd; (void)fd;
    return 0;
}

static PyObject *tidal_epoll_wait(PyObject *ep, int epfd, double timeout, int maxevents) {
    (void)epfd;
    return PyObject_CallMethod(ep, "poll", "di", timeout, maxevents);
}

/* (No epoll here: EpollPoller is never made, so this is never called.) */
static int tidal_epoll_wait_into(PyObject *ep, int epfd, double timeout, int maxevents, PyObject *buf) {
    (void)ep; (void)epfd; (void)timeout; (void)maxevents; (void)buf;
    PyErr_SetString(PyExc_OSError, "no epoll on this platform");
    return -1;
}

static inline int tidal_event_fd(PyObject *buf, Py_ssize_t i) {
    (void)buf; (void)i;
    return -1;
}

static inline unsigned int tidal_event_mask(PyObject *buf, Py_ssize_t i) {
    (void)buf; (void)i;
    return 0;
}
#endif

#endif /* TIDAL_SYSCALLS_C_H */
