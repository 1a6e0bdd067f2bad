# The compiled twins of _syscalls.py's functions: same names, same arguments,
# same results and exceptions (see that module for why they exist).  A
# declarations-only file (no module of this name exists at run time): the
# transports' .pxd files cimport from it, and their .py files import the
# Python versions from _syscalls under `if not cython.compiled:`.
#
# The transport passes its fd, which stays open for as long as it may call
# these (it closes the socket only after removing its reader and writer and
# marking the connection lost), or -1 when its socket is not exactly a
# socket.socket: then the socket's own method runs, as asyncio would call it
# (a subclass may override it).  No
# Py_BEGIN_ALLOW_THREADS: the socket is non-blocking, so the call returns at
# once, and the GIL round trip would cost more than the syscall's own setup.

cdef extern from *:
    """
    #include <errno.h>
    #include <sys/socket.h>

    static Py_ssize_t tidal_recv_into(PyObject *sock, int fd, PyObject *buf) {
        Py_buffer view;
        ssize_t n;
        if (fd < 0) {
            PyObject *res = PyObject_CallMethod(sock, "recv_into", "O", buf);
            if (res == NULL)
                return -1;
            n = PyLong_AsSsize_t(res);
            Py_DECREF(res);
            return (Py_ssize_t)n;
        }
        if (PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE) < 0)
            return -1;
        n = recv(fd, view.buf, (size_t)view.len, 0);
        if (n < 0)
            PyErr_SetFromErrno(PyExc_OSError);
        PyBuffer_Release(&view);
        return (Py_ssize_t)n;
    }

    static PyObject *tidal_recv_bytes(PyObject *sock, int fd, PyObject *buf) {
        Py_buffer view;
        ssize_t n;
        PyObject *res;
        if (fd < 0) {
            /* sock.recv(len(view)), as asyncio's transport reads */
            return PyObject_CallMethod(sock, "recv", "n", PyObject_Length(buf));
        }
        if (PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE) < 0)
            return NULL;
        n = recv(fd, view.buf, (size_t)view.len, 0);
        if (n < 0) {
            PyErr_SetFromErrno(PyExc_OSError);
            res = NULL;
        } else {
            res = PyBytes_FromStringAndSize((const char *)view.buf, (Py_ssize_t)n);
        }
        PyBuffer_Release(&view);
        return res;
    }

    static Py_ssize_t tidal_send(PyObject *sock, int fd, PyObject *data) {
        Py_buffer view;
        ssize_t n;
        if (fd < 0) {
            PyObject *res = PyObject_CallMethod(sock, "send", "O", data);
            if (res == NULL)
                return -1;
            n = PyLong_AsSsize_t(res);
            Py_DECREF(res);
            return (Py_ssize_t)n;
        }
        if (PyBytes_CheckExact(data)) {
            n = send(fd, PyBytes_AS_STRING(data), (size_t)PyBytes_GET_SIZE(data), 0);
        } else {
            if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
                return -1;
            n = send(fd, view.buf, (size_t)view.len, 0);
            if (n < 0)
                PyErr_SetFromErrno(PyExc_OSError);
            PyBuffer_Release(&view);
            return (Py_ssize_t)n;
        }
        if (n < 0)
            PyErr_SetFromErrno(PyExc_OSError);
        return (Py_ssize_t)n;
    }
    """
    Py_ssize_t recv_into "tidal_recv_into" (object sock, int fd, object buf) except -1
    object recv_bytes "tidal_recv_bytes" (object sock, int fd, object buf)
    Py_ssize_t send "tidal_send" (object sock, int fd, object data) except -1
