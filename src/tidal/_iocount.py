"""The bytes a loop's transports have read and written, kept as they go.

One :class:`IOCounts` per loop (``loop._io_counts``); each transport holds
the loop's and adds what each read and write moved, where the length is
already at hand (a ``recv``'s result, a ``send``'s return value).  Compiled
it is a C struct (``_iocount.pxd``), and the stream transport's field for it
is typed (``_stream_layout.pxd``): counting a read or a write is one C
integer add.  ``loop.stats()`` reports the totals.

Bytes are counted where they cross the kernel: TCP and Unix streams, UDP and
Unix datagrams, pipes (subprocesses' too), ``loop.sendfile`` on a transport.
TLS is counted on the wire (its stream transport's ciphertext), not as the
plaintext the application sees.  The program's own socket calls
(``loop.sock_recv``/``sock_sendall`` ...) are not a transport's and are not
counted.
"""

from __future__ import annotations


class IOCounts:
    """Bytes read and written by one loop's transports, since the loop was made."""

    read: int
    written: int

    def __init__(self) -> None:
        self.read = 0
        self.written = 0
