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
The class's annotations are the list of fields its ``__slots__`` are made
from.
"""

from __future__ import annotations

import collections
import socket
from asyncio import transports
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._iocount import IOCounts


class StreamSlots(transports.Transport):
    """StreamTransport's state (see _stream.py for what each field means)."""

    # The fields: these annotations are the one Python list of them (the
    # __slots__ below are made from it; _stream_layout.h holds the C list,
    # _stream_layout.pxd the compiler's, and tests/test_layouts.py checks
    # that the three agree).  A new field goes in all three.
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
    _io_counts: IOCounts  # the loop's: each read and write adds its bytes
    _peername: Any  # the peer's address until _extra is filled in (_stream.py's _compact_address)
    # The transport is the loop's reader entry for its fd (no Handle): the
    # context its reads run in, copied when reading started (None while not
    # reading), and that same context once more when the loop queued a read,
    # so a read queued before reading stopped or restarted is skipped, as a
    # cancelled Handle is (the loop's _add_transport_reader).
    _read_ctx: Any
    _read_queued: Any

    # The storage: one slot per annotated field (CPython lays them out sorted
    # by name, whatever the order here), and weak references (the loop's
    # _transports map is a WeakValueDictionary; asyncio's transports take
    # them too).
    __slots__ = (*__annotations__, "__weakref__")
