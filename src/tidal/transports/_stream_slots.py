"""The fields of a StreamTransport, in a class of their own.

``StreamTransport`` (``_stream.py``) derives from this class and adds only
methods.  The split exists for the compiled build: ``_stream.py`` reads these
fields in its read and write paths as C struct members (``_stream_layout.pxd``
declares this class as an external type over a C struct), and Cython imports
such a type when the module that uses it loads, so the type must already exist
in another module by then.  Interpreted, this is an ordinary base class.

The transport must stay a subclass of ``asyncio.Transport`` (libraries check
``isinstance``), so it cannot be a cdef class; ``__slots__`` gives it a fixed
layout instead, which ``_stream.py`` checks against the C struct at import.
"""

from __future__ import annotations

import collections
import socket
from asyncio import transports
from typing import Any


class StreamSlots(transports.Transport):
    """StreamTransport's state (see _stream.py for what each field means)."""

    __slots__ = (
        "_loop",
        "_sock",
        "_sock_fd",
        "_io_fd",
        "_protocol",
        "_protocol_connected",
        "_buffered",
        "_server",
        "_buffer",
        "_buffer_size",
        "_conn_lost",
        "_closing",
        "_paused",
        "_eof",
        "_empty_waiter",
        "_protocol_paused",
        "_high_water",
        "_low_water",
        "_recv_view",
        "_big_reads",
        "_peername",
        "__weakref__",
    )

    # For type checkers (annotations only: the slots are the storage).
    _loop: Any
    _sock: socket.socket | None
    _sock_fd: int
    _io_fd: int
    _protocol: Any
    _protocol_connected: bool
    _buffered: bool
    _server: Any
    _buffer: collections.deque[Any]  # () until the first write is queued
    _buffer_size: int
    _conn_lost: int
    _closing: bool
    _paused: bool
    _eof: bool
    _empty_waiter: Any
    _protocol_paused: bool
    _high_water: int
    _low_water: int
    _recv_view: memoryview
    _big_reads: bool
    _peername: Any  # the peer's address until _extra is filled in (see _stream.py)
