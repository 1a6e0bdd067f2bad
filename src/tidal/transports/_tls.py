"""TLS over a stream transport, on ``ssl.MemoryBIO`` and ``ssl.SSLObject``.

How it is layered
-----------------
::

    socket ── StreamTransport ── TLSProtocol ── SSLTransport ── app protocol
               (ciphertext)       (the engine)   (what the app holds)

The StreamTransport knows nothing of TLS: ``TLSProtocol`` is its protocol (a
BufferedProtocol), owns the ``SSLObject`` and its two memory BIOs, and drives
the state machine.  ``SSLTransport`` is the thin object the application
writes to; it forwards to the engine.  The same pair serves every entry
point: create_connection / create_server / connect_accepted_socket make it
together with a new StreamTransport, ``start_tls`` swaps it in as the
protocol of a live one (reading paused meanwhile, so no byte the peer sends
after its plaintext can reach the old protocol).

What it costs
-------------
* **Read path.**  The StreamTransport ``recv_into``s the loop's shared
  receive buffer (``get_buffer`` hands it out), the bytes are copied into
  the incoming BIO, and plaintext is decrypted back into that same buffer
  (free again: its ciphertext is in the BIO) and handed on as one ``bytes``
  per batch of records, not one per record.  A BufferedProtocol app has its
  own buffer filled by ``SSLObject.read`` directly: no copy at all.
* **Write path.**  Once the handshake is done, ``write()`` encrypts at once
  into the outgoing BIO and the ciphertext goes to the StreamTransport, which
  sends it at once when its queue is empty.  It is moved in chunks while the
  StreamTransport accepts more (it has not called ``pause_writing``); what
  the kernel cannot take yet stays in the BIO, where
  ``get_write_buffer_size`` counts it, so the app's ``pause_writing`` follows
  the real backlog instead of one big write hiding in the socket's queue.

The state machine (asyncio's, so callbacks come in the same order)
------------------------------------------------------------------
``UNWRAPPED → HANDSHAKE → WRAPPED → FLUSHING → SHUTDOWN``, and back to
``UNWRAPPED`` on abort or connection loss.  FLUSHING delivers what is
already decrypted and encrypts what is queued; SHUTDOWN sends close_notify
and waits for the peer's (or for its EOF) before closing the socket, no
longer than ``ssl_shutdown_timeout``.  The app sees ``connection_made`` when
the handshake succeeds (never for start_tls: its protocol already had it),
``connection_lost`` only if it saw ``connection_made``, and a handshake
failure only as the exception the awaiting call raises.  Where asyncio loses
something (writes queued when the app closes while reading is paused, the
records left in the BIO when the socket was paused at shutdown, the socket
of a connection cancelled before its handshake began), tidal sends or closes it.
"""

from __future__ import annotations

import collections
import logging
import warnings
from asyncio import constants, exceptions, protocols, transports
from collections.abc import Callable, Iterable
from typing import Any, TYPE_CHECKING

if TYPE_CHECKING:
    from .._loop import EventLoop  # annotations only: _loop imports this module

try:
    import ssl
except ImportError:  # pragma: no cover - Python built without OpenSSL
    ssl = None  # type: ignore[assignment]

from ._base import checked_write_buffer_limits as _flow_limits
from ._base import tell_writing_paused
from ._stream import StreamTransport, _byte_view, _shared_recv_view

logger = logging.getLogger("asyncio")

# asyncio's defaults (asyncio.constants): seconds for the handshake and for
# the close_notify exchange.
SSL_HANDSHAKE_TIMEOUT = 60.0
SSL_SHUTDOWN_TIMEOUT = 30.0
# Plaintext queued + ciphertext not yet handed to the socket above which the
# app is asked to pause writing (low = high // 4): asyncio's SSL values.
_WRITE_HIGH_WATER = 512 * 1024
# Ciphertext waiting in the incoming BIO (the app paused reading) above which
# the socket stops being read.
_READ_HIGH_WATER = 256 * 1024
# Ciphertext moved from the outgoing BIO to the StreamTransport per write():
# small enough that a paused socket never holds more than this beyond its
# own high-water mark, large enough that a bulk transfer costs few sends.
_OUTGOING_CHUNK = 256 * 1024
# After the connection is closed, write() warns once this many writes were
# dropped (asyncio's LOG_THRESHOLD_FOR_CONNLOST_WRITES).
_LOG_THRESHOLD_FOR_CONNLOST_WRITES = 5

# TLS states.  Small ints, not an Enum: compared on every read and write.
_UNWRAPPED = 0
_HANDSHAKE = 1
_WRAPPED = 2
_FLUSHING = 3
_SHUTDOWN = 4
_STATE_NAMES = ("UNWRAPPED", "HANDSHAKE", "WRAPPED", "FLUSHING", "SHUTDOWN")

# What the app protocol has been told: INIT -made-> CONNECTED [-eof-> EOF] -lost-> LOST.
_APP_INIT = 0
_APP_CONNECTED = 1
_APP_EOF = 2
_APP_LOST = 3

if ssl is not None:
    # "Not now": the BIO needs more bytes (or, for SSLSyscallError, asyncio's
    # choice, kept so both loops treat the same errors as retryable).
    _AGAIN = (ssl.SSLWantReadError, ssl.SSLSyscallError)
    _SSLError: type[BaseException] = ssl.SSLError
    _CertificateError: type[BaseException] = ssl.CertificateError
else:  # pragma: no cover
    _AGAIN = ()
    _SSLError = _CertificateError = OSError


def check_timeouts(
    ssl_handshake_timeout: float | None, ssl_shutdown_timeout: float | None
) -> tuple[float, float]:
    """The two TLS timeouts with defaults filled in; asyncio's ValueError if not positive."""
    if ssl_handshake_timeout is None:
        ssl_handshake_timeout = SSL_HANDSHAKE_TIMEOUT
    elif ssl_handshake_timeout <= 0:
        raise ValueError(
            f"ssl_handshake_timeout should be a positive number, got {ssl_handshake_timeout}"
        )
    if ssl_shutdown_timeout is None:
        ssl_shutdown_timeout = SSL_SHUTDOWN_TIMEOUT
    elif ssl_shutdown_timeout <= 0:
        raise ValueError(
            f"ssl_shutdown_timeout should be a positive number, got {ssl_shutdown_timeout}"
        )
    return ssl_handshake_timeout, ssl_shutdown_timeout


def _default_context(server_side: bool, server_hostname: str | None) -> Any:
    """``ssl=True``: the secure client defaults; a server must bring its own context."""
    if server_side:
        raise ValueError("Server side SSL needs a valid SSLContext")
    # Looked up at call time (not bound at import): tests and users patch it.
    context = ssl.create_default_context()
    if not server_hostname:
        context.check_hostname = False
    return context


class SSLTransport(transports.Transport):
    """The transport a TLS connection's protocol writes to (named as asyncio's: code checks for 'ssl')."""

    # "__dict__": asyncio's transports accept attributes (tests patch write()).
    __slots__ = ("__dict__", "__weakref__", "_closed", "_loop", "_ssl_protocol")

    _start_tls_compatible = True
    # loop.sendfile over TLS must read the file and write() it.
    _sendfile_compatible = constants._SendfileMode.FALLBACK

    def __init__(self, loop: Any, ssl_protocol: TLSProtocol) -> None:
        self._extra: dict[str, Any] = {}
        self._loop = loop
        self._ssl_protocol = ssl_protocol
        self._closed = False

    def __repr__(self) -> str:
        proto = self._ssl_protocol
        closed = " closed" if self._closed else ""
        return f"<{type(self).__name__} {_STATE_NAMES[proto._state]}{closed} over {proto._transport!r}>"

    def __del__(self, _warn: Any = warnings.warn) -> None:
        if not getattr(self, "_closed", True):
            self._closed = True
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """TLS details ('ssl_object', 'peercert', 'cipher', ...), else the socket's."""
        return self._ssl_protocol._get_extra_info(name, default)

    def set_protocol(self, protocol: protocols.BaseProtocol) -> None:
        self._ssl_protocol._set_app_protocol(protocol)

    def get_protocol(self) -> protocols.BaseProtocol:
        return self._ssl_protocol._app_protocol

    def is_closing(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Flush, send close_notify, then close; connection_lost(None) follows."""
        if not self._closed:
            self._closed = True
            self._ssl_protocol._start_shutdown()
        else:
            # asyncio's rule: closing a closed transport lets go of the TLS
            # objects (the app may keep this transport for a long time).
            self._ssl_protocol._release()

    def abort(self) -> None:
        """Close now, without close_notify; queued data is dropped."""
        self._closed = True
        self._ssl_protocol._abort(None)

    def _force_close(self, exc: BaseException | None) -> None:
        # What a TLS layer above this one (TLS over TLS) calls on fatal errors.
        self._closed = True
        self._ssl_protocol._abort(exc)

    # Reading ----------------------------------------------------------

    def is_reading(self) -> bool:
        return not self._ssl_protocol._app_reading_paused

    def pause_reading(self) -> None:
        """Stop data_received; records wait in the BIO (the socket pauses when it is full)."""
        self._ssl_protocol._app_reading_paused = True

    def resume_reading(self) -> None:
        self._ssl_protocol._resume_reading()

    def set_read_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        proto = self._ssl_protocol
        proto._read_high, proto._read_low = _flow_limits(high, low, _READ_HIGH_WATER)
        proto._control_ssl_reading()

    def get_read_buffer_limits(self) -> tuple[int, int]:
        return (self._ssl_protocol._read_low, self._ssl_protocol._read_high)

    def get_read_buffer_size(self) -> int:
        return self._ssl_protocol._incoming.pending

    # Writing ----------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt and send (or queue, during the handshake); never blocks."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data: expecting a bytes-like instance, got {type(data).__name__}")
        if data:
            self._ssl_protocol._write_appdata(data)

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        """Encrypt each buffer, then hand the ciphertext to the socket once."""
        self._ssl_protocol._write_appdata_many(list_of_data)

    def write_eof(self) -> None:
        """TLS has no half-close asyncio supports: NotImplementedError, as asyncio."""
        raise NotImplementedError

    def can_write_eof(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        """Plaintext not yet encrypted plus ciphertext not yet handed to the socket."""
        return self._ssl_protocol._get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (self._ssl_protocol._write_low, self._ssl_protocol._write_high)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        proto = self._ssl_protocol
        proto._write_high, proto._write_low = _flow_limits(high, low, _WRITE_HIGH_WATER)
        proto._control_app_writing()

    @property
    def _protocol_paused(self) -> bool:
        # asyncio's sendfile fallback reads this on the transport.
        return self._ssl_protocol._app_writing_paused

    def _test__append_write_backlog(self, data: bytes) -> None:
        # CPython's test_ssl fills the backlog through this (asyncio has it too).
        proto = self._ssl_protocol
        proto._backlog.append(data)
        proto._backlog_size += len(data)


class TLSProtocol(protocols.BufferedProtocol):
    """The TLS engine: protocol of the stream transport below, driver of the app protocol above."""

    __slots__ = (
        "__weakref__",
        "_app_is_buffered",
        "_app_protocol",
        "_app_reading_paused",
        "_app_state",
        "_app_transport",
        "_app_writing_paused",
        "_backlog",
        "_backlog_size",
        "_conn_lost",
        "_eof_received",
        "_extra",
        "_handshake_start",
        "_handshake_timeout",
        "_handshake_timer",
        "_incoming",
        "_loop",
        "_outgoing",
        "_read_high",
        "_read_low",
        "_recv_view",
        "_release_on_lost",
        "_server_hostname",
        "_server_side",
        "_shutdown_timeout",
        "_shutdown_timer",
        "_ssl_reading_paused",
        "_ssl_writing_paused",
        "_sslcontext",
        "_sslobj",
        "_state",
        "_transport",
        "_waiter",
        "_write_high",
        "_write_low",
    )

    def __init__(
        self,
        loop: Any,
        app_protocol: protocols.BaseProtocol,
        sslcontext: Any,
        waiter: Any,
        server_side: bool = False,
        server_hostname: str | None = None,
        call_connection_made: bool = True,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
    ) -> None:
        if ssl is None:
            raise RuntimeError("stdlib ssl module not available")
        self._handshake_timeout, self._shutdown_timeout = check_timeouts(
            ssl_handshake_timeout, ssl_shutdown_timeout
        )
        if not sslcontext:
            sslcontext = _default_context(server_side, server_hostname)
        self._loop = loop
        self._server_side = server_side
        self._server_hostname = server_hostname if server_hostname and not server_side else None
        self._sslcontext = sslcontext
        # More is added when the handshake completes.
        self._extra: dict[str, Any] = {"sslcontext": sslcontext}
        self._waiter = waiter
        self._transport: Any = None
        self._app_protocol: Any = None
        self._app_is_buffered = False
        self._set_app_protocol(app_protocol)
        # start_tls: the app protocol was told connection_made long ago.
        self._app_state = _APP_INIT if call_connection_made else _APP_CONNECTED
        self._state = _UNWRAPPED
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._sslobj = sslcontext.wrap_bio(
            self._incoming,
            self._outgoing,
            server_side=server_side,
            server_hostname=self._server_hostname,
        )
        self._recv_view = _shared_recv_view(loop)
        self._backlog: collections.deque[Any] = collections.deque()
        self._backlog_size = 0
        self._conn_lost = 0
        self._eof_received = False
        self._app_reading_paused = False
        self._ssl_reading_paused = False
        self._app_writing_paused = False
        self._ssl_writing_paused = False
        self._read_high, self._read_low = _flow_limits(None, None, _READ_HIGH_WATER)
        self._write_high, self._write_low = _flow_limits(None, None, _WRITE_HIGH_WATER)
        self._handshake_timer: Any = None
        self._shutdown_timer: Any = None
        self._handshake_start: float | None = None
        self._release_on_lost = False
        self._app_transport: SSLTransport | None = SSLTransport(loop, self)

    def __repr__(self) -> str:
        return f"<TLSProtocol {_STATE_NAMES[self._state]} server_side={self._server_side}>"

    def _set_app_protocol(self, app_protocol: Any) -> None:
        self._app_protocol = app_protocol
        self._app_is_buffered = isinstance(app_protocol, protocols.BufferedProtocol)

    def _wakeup_waiter(self, exc: BaseException | None = None) -> None:
        waiter = self._waiter
        if waiter is None:
            return
        self._waiter = None
        if not waiter.cancelled():
            if exc is not None:
                waiter.set_exception(exc)
            else:
                waiter.set_result(None)

    def _get_extra_info(self, name: str, default: Any = None) -> Any:
        if name in self._extra:
            return self._extra[name]
        if self._transport is not None:
            return self._transport.get_extra_info(name, default)
        return default

    def _release(self) -> None:
        """Drop the SSLObject and context (extra info too) once the connection is gone."""
        if self._app_transport is not None:  # connection_lost has not run yet
            self._release_on_lost = True
            return
        self._sslobj = None
        self._sslcontext = None
        self._extra = {}

    def _get_write_buffer_size(self) -> int:
        return self._outgoing.pending + self._backlog_size

    # ------------------------------------------------------------------
    # Protocol of the transport below
    # ------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        """The socket is connected (or handed over by start_tls): start the handshake."""
        self._transport = transport
        if self._state != _UNWRAPPED:
            raise RuntimeError(f"cannot start a TLS handshake in state {_STATE_NAMES[self._state]}")
        if self._loop.get_debug():
            logger.debug("%r starts SSL handshake", self)
            self._handshake_start = self._loop.time()
        self._state = _HANDSHAKE
        self._handshake_timer = self._loop.call_later(
            self._handshake_timeout, self._check_handshake_timeout
        )
        self._do_handshake()

    def connection_lost(self, exc: BaseException | None) -> None:
        """The socket is closed: tell the app (if it was told connection_made)."""
        self._backlog.clear()
        self._backlog_size = 0
        self._outgoing.read()
        self._conn_lost += 1
        app_transport = self._app_transport
        if app_transport is not None:
            # Closed now: its __del__ must not warn.
            app_transport._closed = True
        if self._state != _HANDSHAKE and (
            self._app_state == _APP_CONNECTED or self._app_state == _APP_EOF
        ):
            self._app_state = _APP_LOST
            self._loop.call_soon(self._app_protocol.connection_lost, exc)
        self._state = _UNWRAPPED
        self._transport = None
        self._app_transport = None
        self._app_protocol = None
        self._wakeup_waiter(exc)
        self._cancel_timers()
        if self._release_on_lost:
            self._release()

    def get_buffer(self, sizehint: int) -> memoryview:
        # The loop's shared receive buffer: buffer_updated copies it into the
        # BIO before anything else can run, so sharing it is safe.
        return self._recv_view

    def buffer_updated(self, nbytes: int) -> None:
        """Ciphertext arrived: feed the BIO, then advance whatever state we are in."""
        self._incoming.write(self._recv_view[:nbytes])
        try:
            state = self._state
            if state == _WRAPPED:
                self._do_read()
            elif state == _HANDSHAKE:
                self._do_handshake()
            elif state == _FLUSHING:
                self._do_flush()
            elif state == _SHUTDOWN:
                self._do_shutdown()
        except Exception:
            if self._transport is not None:
                self._transport.close()
            raise

    def eof_received(self) -> bool | None:
        """TCP EOF (no close_notify, or after it): finish what can be finished, then close."""
        self._eof_received = True
        try:
            if self._loop.get_debug():
                logger.debug("%r received EOF", self)
            state = self._state
            if state == _HANDSHAKE:
                self._on_handshake_complete(ConnectionResetError())
            elif state == _WRAPPED:
                self._state = _FLUSHING
                if self._app_reading_paused:
                    # Keep the socket open: resume_reading flushes later.
                    return True
                self._do_flush()
            elif state == _FLUSHING:
                self._do_write()
                self._state = _SHUTDOWN
                self._do_shutdown()
            elif state == _SHUTDOWN:
                self._do_shutdown()
        except Exception:
            if self._transport is not None:
                self._transport.close()
            raise
        return None

    def pause_writing(self) -> None:
        """The socket's queue is full: keep ciphertext in the BIO for now."""
        self._ssl_writing_paused = True

    def resume_writing(self) -> None:
        self._ssl_writing_paused = False
        self._flush_outgoing()

    # ------------------------------------------------------------------
    # Handshake
    # ------------------------------------------------------------------

    def _check_handshake_timeout(self) -> None:
        self._handshake_timer = None
        if self._state == _HANDSHAKE:
            msg = (
                f"SSL handshake is taking longer than {self._handshake_timeout} "
                f"seconds: aborting the connection"
            )
            self._fatal_error(ConnectionAbortedError(msg))

    def _do_handshake(self) -> None:
        try:
            self._sslobj.do_handshake()
        except _AGAIN:
            self._flush_outgoing()
        except _SSLError as exc:
            self._on_handshake_complete(exc)
        else:
            self._on_handshake_complete(None)

    def _on_handshake_complete(self, exc: BaseException | None) -> None:
        timer = self._handshake_timer
        if timer is not None:
            self._handshake_timer = None
            timer.cancel()
        sslobj = self._sslobj
        if exc is None:
            try:
                peercert = sslobj.getpeercert()
            except Exception as err:  # noqa: BLE001 - goes to the waiter
                exc = err
        if exc is not None:
            self._state = _UNWRAPPED
            # The alert OpenSSL wrote stays unsent, as with asyncio: the peer
            # sees the connection close (its error reads the same on both loops).
            if isinstance(exc, _CertificateError):
                msg = "SSL handshake failed on verifying the certificate"
            else:
                msg = "SSL handshake failed"
            self._fatal_error(exc, msg)
            self._wakeup_waiter(exc)
            return

        if self._loop.get_debug() and self._handshake_start is not None:
            dt = self._loop.time() - self._handshake_start
            logger.debug("%r: SSL handshake took %.1f ms", self, dt * 1e3)
        self._state = _WRAPPED
        self._extra.update(
            peercert=peercert,
            cipher=sslobj.cipher(),
            compression=sslobj.compression(),
            ssl_object=sslobj,
        )
        if self._app_state == _APP_INIT:
            self._app_state = _APP_CONNECTED
            self._app_protocol.connection_made(self._app_transport)
        self._wakeup_waiter()
        # Records that came with the handshake's last flight, and writes
        # queued meanwhile.
        self._do_read()

    # ------------------------------------------------------------------
    # Shutdown
    # ------------------------------------------------------------------

    def _start_shutdown(self) -> None:
        """The app closed: flush, then exchange close_notify (bounded by the shutdown timeout)."""
        state = self._state
        if state == _FLUSHING or state == _SHUTDOWN or state == _UNWRAPPED:
            return
        if self._app_transport is not None:
            self._app_transport._closed = True
        if state == _HANDSHAKE:
            self._abort(None)
            return
        self._state = _FLUSHING
        self._shutdown_timer = self._loop.call_later(
            self._shutdown_timeout, self._check_shutdown_timeout
        )
        self._do_flush()

    def _check_shutdown_timeout(self) -> None:
        self._shutdown_timer = None
        state = self._state
        if (state == _FLUSHING or state == _SHUTDOWN) and self._transport is not None:
            self._transport._force_close(TimeoutError("SSL shutdown timed out"))

    def _do_flush(self) -> None:
        self._do_read()
        if self._state != _FLUSHING:
            return  # the app aborted, or a fatal error, while data was delivered
        if self._backlog:
            self._do_write()
        self._state = _SHUTDOWN
        self._do_shutdown()

    def _do_shutdown(self) -> None:
        try:
            if not self._eof_received:
                self._sslobj.unwrap()
        except _AGAIN:
            self._flush_outgoing()  # our close_notify; the peer's is awaited
        except _SSLError as exc:
            self._on_shutdown_complete(exc)
        else:
            self._flush_outgoing()
            self._call_eof_received()
            self._on_shutdown_complete(None)

    def _on_shutdown_complete(self, exc: BaseException | None) -> None:
        timer = self._shutdown_timer
        if timer is not None:
            self._shutdown_timer = None
            timer.cancel()
        if exc is not None:
            self._fatal_error(exc)
        elif self._transport is not None:
            # Whatever is still in the BIO goes out before the socket closes
            # (closing flushes the transport's queue, not our BIO).
            self._send_all_outgoing()
            self._loop.call_soon(self._transport.close)

    def _abort(self, exc: BaseException | None) -> None:
        self._state = _UNWRAPPED
        if self._transport is not None:
            self._transport._force_close(exc)

    def _cancel_timers(self) -> None:
        timer = self._handshake_timer
        if timer is not None:
            self._handshake_timer = None
            timer.cancel()
        timer = self._shutdown_timer
        if timer is not None:
            self._shutdown_timer = None
            timer.cancel()

    # ------------------------------------------------------------------
    # Outgoing: app plaintext -> SSLObject -> outgoing BIO -> transport
    # ------------------------------------------------------------------

    def _write_after_close(self) -> None:
        if self._conn_lost >= _LOG_THRESHOLD_FOR_CONNLOST_WRITES:
            logger.warning("SSL connection is closed")
        self._conn_lost += 1

    def _queue(self, data: Any, offset: int) -> None:
        """Keep data[offset:] for later, as bytes of our own (a caller may reuse its buffer)."""
        if offset or type(data) is not bytes:
            data = bytes(memoryview(data)[offset:])
        self._backlog.append(data)
        self._backlog_size += len(data)

    def _write_appdata(self, data: Any) -> None:
        """One write: encrypted at once when wrapped and nothing is queued ahead of it."""
        state = self._state
        if state != _WRAPPED and state != _HANDSHAKE:
            self._write_after_close()
            return
        if type(data) is memoryview:
            data = _byte_view(data)  # so len() counts bytes
        try:
            if state == _WRAPPED and not self._backlog:
                try:
                    n = self._sslobj.write(data)
                except _AGAIN:
                    n = 0  # a renegotiation wants the peer first: queue it
                if n < len(data):
                    self._queue(data, n)
                self._flush_outgoing()
            else:
                self._queue(data, 0)
                if state == _WRAPPED:
                    self._do_write()
        except Exception as exc:  # noqa: BLE001 - asyncio's rule: any failure here is fatal
            self._fatal_error(exc, "Fatal error on SSL protocol")

    def _write_appdata_many(self, list_of_data: Iterable[Any]) -> None:
        state = self._state
        if state != _WRAPPED and state != _HANDSHAKE:
            self._write_after_close()
            return
        for data in list_of_data:
            if type(data) is memoryview:
                data = _byte_view(data)
            if len(data):
                self._queue(data, 0)
        try:
            if state == _WRAPPED:
                self._do_write()
        except Exception as exc:  # noqa: BLE001 - asyncio's rule: any failure here is fatal
            self._fatal_error(exc, "Fatal error on SSL protocol")

    def _do_write(self) -> None:
        """Encrypt the queued plaintext, then hand the ciphertext on."""
        backlog = self._backlog
        write = self._sslobj.write
        try:
            while backlog:
                data = backlog[0]
                n = write(data)
                size = len(data)
                if n < size:
                    backlog[0] = memoryview(data)[n:]
                    self._backlog_size -= n
                else:
                    backlog.popleft()
                    self._backlog_size -= size
        except _AGAIN:
            pass
        self._flush_outgoing()

    def _flush_outgoing(self) -> None:
        """Move ciphertext to the transport while it takes more; then app flow control."""
        if not self._ssl_writing_paused:
            transport = self._transport
            if transport is not None:
                outgoing = self._outgoing
                # The transport calls pause_writing() from inside write()
                # once its queue passes its high-water mark.
                while outgoing.pending and not self._ssl_writing_paused:
                    transport.write(outgoing.read(_OUTGOING_CHUNK))
        self._control_app_writing()

    def _send_all_outgoing(self) -> None:
        """Hand every pending byte to the transport, paused or not (we are closing)."""
        transport = self._transport
        if transport is not None and self._outgoing.pending:
            transport.write(self._outgoing.read())

    def _control_app_writing(self) -> None:
        if self._app_protocol is None:
            return
        size = self._outgoing.pending + self._backlog_size
        if size >= self._write_high and not self._app_writing_paused:
            self._app_writing_paused = True
        elif size <= self._write_low and self._app_writing_paused:
            self._app_writing_paused = False
        else:
            return
        # (Reported as asyncio's TLS layer does: with itself as the protocol.)
        tell_writing_paused(
            self._loop, self._app_protocol, self._app_writing_paused, self._app_transport, self
        )

    # ------------------------------------------------------------------
    # Incoming: incoming BIO -> SSLObject -> app protocol
    # ------------------------------------------------------------------

    def _do_read(self) -> None:
        """Decrypt and deliver while the app reads, then answer what reading produced."""
        state = self._state
        if state != _WRAPPED and state != _FLUSHING:
            return
        try:
            if not self._app_reading_paused:
                # One batch (one buffer) per round; another round if the
                # buffer was filled, as long as the app still reads.
                while True:
                    if self._app_is_buffered:
                        more = self._read_buffered()
                    else:
                        more = self._read_copied()
                    if not more or self._app_reading_paused:
                        break
                    state = self._state
                    if state != _WRAPPED and state != _FLUSHING:
                        break
                # Reading may produce records to send (key updates,
                # renegotiation), and the handshake's end releases the backlog.
                # (Nothing to send: skip the flush; every earlier flush already
                # ran the app's flow control.)
                if self._backlog:
                    self._do_write()
                elif self._outgoing.pending:
                    self._flush_outgoing()
            self._control_ssl_reading()
        except Exception as exc:  # noqa: BLE001 - the app's errors too: reported, then closed
            self._fatal_error(exc, "Fatal error on SSL protocol")

    def _read_copied(self) -> bool:
        """Decrypt into the shared buffer, deliver one bytes; True if the buffer filled."""
        view = self._recv_view
        size = len(view)
        read = self._sslobj.read
        offset = 0
        eof = False
        try:
            while offset < size:
                n = read(size - offset, view[offset:] if offset else view)
                if not n:
                    eof = True  # close_notify
                    break
                offset += n
        except _AGAIN:
            pass
        except _SSLError:
            # What decrypted cleanly before the bad record is the app's.
            if offset:
                self._app_protocol.data_received(view[:offset].tobytes())
            raise
        if offset:
            self._app_protocol.data_received(view[:offset].tobytes())
        if eof:
            self._call_eof_received()
            self._start_shutdown()
            return False
        return offset == size

    def _read_buffered(self) -> bool:
        """Decrypt straight into the app's buffer; True if it filled."""
        buf = self._app_protocol.get_buffer(self._incoming.pending)
        size = len(buf)
        if not size:
            raise RuntimeError("get_buffer() returned an empty buffer")
        read = self._sslobj.read
        mv = None
        offset = 0
        eof = False
        try:
            while offset < size:
                if offset:
                    if mv is None:
                        mv = memoryview(buf)  # slicing a bytearray would copy it
                    n = read(size - offset, mv[offset:])
                else:
                    n = read(size, buf)
                if not n:
                    eof = True
                    break
                offset += n
        except _AGAIN:
            pass
        except _SSLError:
            if offset:
                self._app_protocol.buffer_updated(offset)
            raise
        finally:
            if mv is not None:
                mv.release()  # the app may resize its bytearray next
        if offset:
            self._app_protocol.buffer_updated(offset)
        if eof:
            self._call_eof_received()
            self._start_shutdown()
            return False
        return offset == size

    def _call_eof_received(self) -> None:
        try:
            if self._app_state == _APP_CONNECTED:
                self._app_state = _APP_EOF
                keep_open = self._app_protocol.eof_received()
                if keep_open:
                    logger.warning(
                        "returning true from eof_received() has no effect when using ssl"
                    )
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - the app's error: reported, then closed
            self._fatal_error(exc, "Error calling eof_received()")

    def _resume_reading(self) -> None:
        if self._app_reading_paused:
            self._app_reading_paused = False
            self._loop.call_soon(self._resume_read)

    def _resume_read(self) -> None:
        state = self._state
        if state == _WRAPPED:
            self._do_read()
        elif state == _FLUSHING:
            self._do_flush()
        elif state == _SHUTDOWN:
            self._do_shutdown()

    def _control_ssl_reading(self) -> None:
        """Stop reading the socket while the BIO holds more than the app takes."""
        transport = self._transport
        if transport is None:
            return
        size = self._incoming.pending
        if size >= self._read_high and not self._ssl_reading_paused:
            self._ssl_reading_paused = True
            transport.pause_reading()
        elif size <= self._read_low and self._ssl_reading_paused:
            self._ssl_reading_paused = False
            transport.resume_reading()

    # ------------------------------------------------------------------
    # Errors
    # ------------------------------------------------------------------

    def _fatal_error(self, exc: BaseException, message: str = "Fatal error on transport") -> None:
        transport = self._transport
        if transport is not None:
            transport._force_close(exc)
        # Network and TLS errors (ssl.SSLError is an OSError) are the peer's
        # business: logged in debug mode only, as asyncio does.
        if isinstance(exc, OSError):
            if self._loop.get_debug():
                logger.debug("%r: %s", self, message, exc_info=exc)
        elif not isinstance(exc, exceptions.CancelledError):
            self._loop.call_exception_handler(
                {
                    "message": message,
                    "exception": exc,
                    "transport": transport,
                    "protocol": self,
                }
            )


# ----------------------------------------------------------------------
# Entry points (the loop's methods call these)
# ----------------------------------------------------------------------


async def open_tls(
    loop: Any,
    sock: Any,
    protocol_factory: Callable[[], Any],
    ssl_arg: Any,
    server_hostname: str | None,
    *,
    owned: bool,
    server_side: bool = False,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
) -> tuple[SSLTransport, Any]:
    """Wrap a connected socket in TLS; return once the handshake is done (or raise its error).

    Until the transport exists, a socket we connected ourselves (`owned`) is
    ours to close on failure; after that the transport owns it.
    """
    sslcontext = None if isinstance(ssl_arg, bool) else ssl_arg
    try:
        sock.setblocking(False)
        protocol = protocol_factory()
        waiter = loop.create_future()
        tls = TLSProtocol(
            loop,
            protocol,
            sslcontext,
            waiter,
            server_side,
            server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
        )
        raw = StreamTransport(loop, sock, tls, None, None)
    except BaseException:
        if owned:
            sock.close()
        raise
    transport = tls._app_transport
    assert transport is not None
    try:
        await waiter
    except BaseException:
        transport.close()
        if tls._transport is None and not tls._conn_lost:
            # Cancelled before the handshake even began: nothing else will
            # close the socket (asyncio leaks it here).
            raw.abort()
        # The exception set on the waiter would keep the protocol alive
        # through this frame (gh-109534).
        waiter = None
        raise
    return transport, protocol


def _report_accept_failure(loop: Any, protocol: Any, transport: Any, waiter: Any) -> None:
    """A server's TLS handshake failed: asyncio reports it in debug mode only."""
    if waiter.cancelled():
        return
    exc = waiter.exception()
    if exc is None:
        return
    transport.close()
    if loop.get_debug():
        loop.call_exception_handler(
            {
                "message": "Error on transport creation for incoming connection",
                "exception": exc,
                "protocol": protocol,
                "transport": transport,
            }
        )


def accept_tls(
    loop: Any,
    conn: Any,
    protocol: Any,
    sslcontext: Any,
    peername: Any,
    server: Any,
    ssl_handshake_timeout: float | None,
    ssl_shutdown_timeout: float | None,
) -> SSLTransport:
    """Serve TLS on an accepted connection (no Task per connection: a waiter callback reports)."""
    waiter = loop.create_future()
    tls = TLSProtocol(
        loop,
        protocol,
        sslcontext,
        waiter,
        server_side=True,
        ssl_handshake_timeout=ssl_handshake_timeout,
        ssl_shutdown_timeout=ssl_shutdown_timeout,
    )
    transport = tls._app_transport
    assert transport is not None
    waiter.add_done_callback(lambda fut: _report_accept_failure(loop, protocol, transport, fut))
    StreamTransport(loop, conn, tls, None, None, server, peername)
    return transport


async def start_tls(
    self: EventLoop,
    transport: Any,
    protocol: protocols.BaseProtocol,
    sslcontext: Any,
    *,
    server_side: bool = False,
    server_hostname: str | None = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
) -> SSLTransport:
    """Upgrade a live connection to TLS; return the transport `protocol` must use from now on.

    Reading is paused at once, so nothing the peer sends from here on reaches
    the old protocol as plaintext; the handshake starts on the next turn.
    """
    if ssl is None:
        raise RuntimeError("Python ssl module is not available")
    if not isinstance(sslcontext, ssl.SSLContext):
        raise TypeError(
            f"sslcontext is expected to be an instance of ssl.SSLContext, got {sslcontext!r}"
        )
    if not getattr(transport, "_start_tls_compatible", False):
        raise TypeError(f"transport {transport!r} is not supported by start_tls()")

    waiter = self.create_future()
    tls = TLSProtocol(
        self,
        protocol,
        sslcontext,
        waiter,
        server_side,
        server_hostname,
        call_connection_made=False,
        ssl_handshake_timeout=ssl_handshake_timeout,
        ssl_shutdown_timeout=ssl_shutdown_timeout,
    )
    # Pause first, so no data_received reaches the TLS layer before its
    # connection_made (nor the old protocol after this call).
    transport.pause_reading()
    # If the socket's queue is over its high-water mark, the old protocol was
    # paused: the TLS layer inherits that (asyncio's asserts when the socket
    # later resumes a pause it never saw).
    tls._ssl_writing_paused = bool(getattr(transport, "_protocol_paused", False))
    transport.set_protocol(tls)
    conmade_cb = self.call_soon(tls.connection_made, transport)
    resume_cb = self.call_soon(transport.resume_reading)
    try:
        await waiter
    except BaseException:
        transport.close()
        conmade_cb.cancel()
        resume_cb.cancel()
        waiter = None  # type: ignore[assignment]  # (breaks the frame -> waiter -> exception cycle)
        raise
    return tls._app_transport  # type: ignore[return-value]


__all__ = ["SSLTransport", "TLSProtocol", "accept_tls", "check_timeouts", "open_tls", "start_tls"]
