"""The simulated network: TCP and UDP between hosts, in virtual time.

Sockets here are objects with the socket module's methods (``SimSocket``),
handed to tidal's own transports by the loop's socket factory, and their fds
are simulated ones (``_poller.VIRTUAL_FD_BASE`` and up) whose readiness the
simulated poller asks this module about.  Nothing in tidal's transports,
servers or streams knows the difference.

TCP
  A connection is two ``_Pipe`` s, one per direction.  A pipe delivers its
  segments (data, FIN, RST, and the SYN-ACK that completes a connect) in
  order, each after the link's latency.  A segment that reaches a cut link
  stalls the pipe: it resumes when the link heals, or after ``tcp_timeout``
  the sender's socket fails with ETIMEDOUT and the receiver gets a reset
  once the link comes back.  Flow control: a sender may have at most
  ``tcp_window`` bytes unread by the peer (in flight plus in the peer's
  receive buffer), so a peer that stops reading pauses the writer.  A SYN
  to a port nobody listens on is refused; one that meets a cut link is
  retried at 1, 3, 7, ... s and fails with ETIMEDOUT after 127 s, as
  Linux's defaults do.  A crashed host's connections are reset.

UDP
  Each datagram is dropped, duplicated, delayed (latency) and reordered
  (an extra delay) by draws from the seed; one that meets a cut link or a
  host that is down is lost.
"""

from __future__ import annotations

import array
import collections
import contextvars
import errno
import hashlib
import marshal
import os
import random
import socket
from heapq import heappop, heappush
from typing import TYPE_CHECKING, Any, Callable, TypeAlias

from .._loop import EventLoop

try:
    # Compiled, `cython` is Cython's compile-time module.
    import cython
except ImportError:  # interpreted, without Cython installed
    from types import SimpleNamespace

    cython = SimpleNamespace(compiled=False, cast=lambda type, value: type(value), longlong=int)
from ._clock import NS_PER_S, to_ns
from ._host import Host, current_host, host_address
from ._poller import VIRTUAL_FD_BASE, SimFile, TimedEvent, TimedEvents

if TYPE_CHECKING:
    from ._poller import SimPoller

_DATA, _FIN, _RST, _SYNACK = 0, 1, 2, 3

# SYN retries (s after the first try) and the give-up time: Linux's
# tcp_syn_retries=6 with a 1 s initial timeout.
_SYN_RETRIES = (1, 3, 7, 15, 31, 63)
_SYN_GIVE_UP = 127
# A UDP socket's receive buffer: datagrams beyond it are dropped.
_UDP_RCVBUF = 212_992
_MAX_DATAGRAM = 65_507
# Host numbers are below 2**_HOST_BITS (an address is 127 and three bytes).
_HOST_BITS = 24
_ANY = ("", "0.0.0.0", "127.0.0.1", "localhost")
# IPv6: a host's address is its IPv4 one mapped (::ffff:127.1.0.1, still
# loopback); "::" and "::1" mean what 0.0.0.0 and 127.0.0.1 do.  The
# network keys everything by the IPv4 form, so v4 and v6 sockets reach each
# other as on a dual-stack host.
_MAPPED = "::ffff:"
_V6_SPECIAL = {"::": "0.0.0.0", "::1": "127.0.0.1"}


def _to_v4(ip: str) -> str:
    """An address as the network keys it (an IPv6 literal as its IPv4 form)."""
    if ip.startswith(_MAPPED):
        return ip[len(_MAPPED) :]
    return _V6_SPECIAL.get(ip, ip)


def _oserror(code: int) -> OSError:
    """The OSError subclass the socket module raises for errno `code`."""
    return OSError(code, f"[simulated] {os.strerror(code)}")


# How a generic event (a tuple with strs) is hashed (see Trace).
_MARSHAL_VERSION = 2

# The events made per datagram and per segment hold ints only (a host as
# its number, a pipe's label as its number from Trace.name_id), and are
# written as fixed records of _RECORD unsigned 32-bit slots (see
# Trace.record): code, the virtual ns (low and high halves), six fields.
# Trace.events writes them as text again: code -> (kind, how many of the
# six fields it uses, the fields that are hosts' numbers, those that are
# names' numbers; as indexes into the event (ns, kind, fields...)).
_UDP_SENT, _UDP_DELIVERED, _UDP_LOST, _UDP_OVERFLOW, _TCP_SEGMENT, _UNIX_SEGMENT, _NAME = range(7)
_EVENT_TEXT: dict[int, tuple[str, int, tuple[int, ...], tuple[int, ...]]] = {
    _UDP_SENT: ("udp sent", 6, (2, 4), ()),
    _UDP_DELIVERED: ("udp delivered", 4, (2, 4), ()),
    _UDP_LOST: ("udp lost", 4, (2, 4), ()),
    _UDP_OVERFLOW: ("udp overflow", 4, (2, 4), ()),
    _TCP_SEGMENT: ("tcp", 3, (), (3,)),
    _UNIX_SEGMENT: ("unix", 3, (), (3,)),
}
_RECORD = 9
# Records' slots filled before they are hashed (36 KiB).
_TRACE_SLOTS = _RECORD * 1024


class Trace:
    """The run's events, folded into a hash (and counted, and kept if asked).

    The events made per datagram and segment (ints only) are written as
    fixed records into an array of unsigned 32-bit slots, hashed as its
    bytes when full: compiled, a record is nine C stores, with no tuple
    made and nothing encoded (marshalling each event cost more than the
    datagram's whole delivery).  Any other event is a tuple (virtual ns,
    fields...) of ints and strs, hashed at once (after the records before
    it) in marshal's format version 2: equal values give the same bytes in
    every process and mode (versions 3 and up mark objects that happen to
    have several references, which differs between the interpreted and
    compiled code).  The slots are native-endian: a hash is compared
    between runs on one kind of machine.
    """

    __slots__ = ("_hash", "_count", "keep", "_kept", "_names", "_slots", "_view", "_used")

    def __init__(self, keep: bool = False) -> None:
        # SHA-256, not BLAKE2b: OpenSSL's runs on the CPU's SHA extensions
        # where it has them (1.8x BLAKE2b's bytes per second here, 3.12),
        # and every datagram and segment feeds it a record.  The digest is
        # cut to 128 bits, as long as trace hashes were.
        self._hash = hashlib.sha256()
        self._count = 0
        self.keep = keep
        self._kept: list[tuple[Any, ...]] = []
        self._names: list[str] = []
        self._slots = array.array("I", bytes(4 * _TRACE_SLOTS))
        # The slots as record() writes them (compiled: a typed memoryview).
        self._view = self._slots
        self._used = 0

    def name_id(self, now_ns: int, name: str) -> int:
        """A number that stands for `name` (a pipe's label) in later events;
        the pairing is an event itself, so the hash still covers the name."""
        number = len(self._names)
        self._names.append(name)
        self.add_event((now_ns, _NAME, number, name))
        return number

    def add(self, now_ns: int, *fields: Any) -> None:
        self.add_event((now_ns, *fields))

    def add_event(self, event: tuple[Any, ...]) -> None:
        """add(), given the whole event."""
        self._flush()
        self._hash.update(marshal.dumps(event, _MARSHAL_VERSION))
        self._count += 1
        if self.keep:
            self._kept.append(event)

    def record(
        self, now_ns: int, code: int, a: int, b: int, c: int, d: int, e: int, f: int
    ) -> None:
        """An event of ints only (< 2**32; the fields a code does not use
        are 0) as a record (compiled: a C call, stores into C slots)."""
        used = self._used
        if used + _RECORD > _TRACE_SLOTS:
            self._flush()
            used = 0
        view = self._view
        view[used] = code
        high = now_ns >> 32
        view[used + 1] = now_ns - (high << 32)  # (C arithmetic compiled: no mask constant)
        view[used + 2] = high
        view[used + 3] = a
        view[used + 4] = b
        view[used + 5] = c
        view[used + 6] = d
        view[used + 7] = e
        view[used + 8] = f
        self._used = used + _RECORD
        self._count += 1
        if self.keep:
            self._kept.append((now_ns, code, a, b, c, d, e, f))

    def _flush(self) -> None:
        """Hash the records written so far."""
        if self._used:
            self._hash.update(memoryview(self._slots)[: self._used])
            self._used = 0

    @property
    def count(self) -> int:
        return self._count

    @property
    def events(self) -> list[str]:
        """The kept events as lines (keep=True)."""
        lines = []
        for event in self._kept:
            code = event[1]
            if type(code) is int:
                if code == _NAME:
                    continue  # (its name shows where the number is used)
                kind, used, hosts, names = _EVENT_TEXT[code]
                fields = list(event[: 2 + used])
                fields[1] = kind
                for i in hosts:
                    fields[i] = host_address(fields[i])
                for i in names:
                    fields[i] = self._names[fields[i]]
                event = tuple(fields)
            lines.append(" ".join(map(str, event)) + "\n")
        return lines

    def hexdigest(self) -> str:
        self._flush()
        return self._hash.hexdigest()[:32]


class LinkParams:
    """One direction's faults (the network's defaults unless set per link)."""

    __slots__ = ("latency", "drop", "duplicate", "reorder", "low_ns", "span_ns")

    def __init__(
        self, latency: tuple[float, float], drop: float, duplicate: float, reorder: float
    ) -> None:
        lo, hi = latency
        if not 0 <= lo <= hi:
            raise ValueError(f"latency must be (low, high) with 0 <= low <= high, got {latency!r}")
        for name, p in (("drop", drop), ("duplicate", duplicate), ("reorder", reorder)):
            if not 0 <= p <= 1:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p!r}")
        self.latency = (to_ns(lo), to_ns(hi))
        # The same, as Network.latency() draws from (compiled: C integers).
        self.low_ns, high_ns = self.latency
        self.span_ns = high_ns - self.low_ns
        self.drop = drop
        self.duplicate = duplicate
        self.reorder = reorder


# What the network's event heap runs: a callable, or a pipe whose next
# segment is due (see Network.run_due).
_Callback: TypeAlias = "Callable[..., object] | _Pipe"


class _Event(TimedEvent):
    """A network event: `callback(*args)`, or a pipe's next segment (the
    _Pipe as the callback); a None callback is a cancelled one."""

    __slots__ = ("callback", "args")
    callback: _Callback | None
    args: tuple[Any, ...]


class _Datagram(TimedEvent):
    """A datagram on its way: it reaches `dst`'s port `key` (address, port)
    from `source` (sent by `src`) when due.  Its own heap entry, run by
    run_due as a C call: no callback, argument tuple or Python call per
    datagram."""

    __slots__ = ("net", "src", "source", "dst", "key", "payload", "src_number", "dst_number")
    net: Network
    src: Host
    source: tuple[str, int]
    dst: Host
    key: tuple[str, int]
    payload: bytes
    src_number: int
    dst_number: int

    def _arrive(self) -> None:
        net = self.net
        dst = self.dst
        payload = self.payload
        source = self.source
        sock = net.udp_ports.get(self.key)
        if (
            sock is None
            or sock._state == "closed"
            or not dst.up
            or net.cut
            and net.is_cut(self.src, dst)
        ):
            outcome = _UDP_LOST
        elif sock._datagram_bytes + len(payload) > _UDP_RCVBUF:
            outcome = _UDP_OVERFLOW
        else:
            datagrams = sock._datagrams
            datagrams.append((payload, source))
            sock._datagram_bytes += len(payload)
            if len(datagrams) == 1:
                # Readable now: the poller is told so directly.
                net.poller.ready_now(sock._fd, sock)
            else:
                sock._wake()
            outcome = _UDP_DELIVERED
        net.trace.record(
            net.clock.ns, outcome, self.src_number, source[1], self.dst_number, self.key[1], 0, 0
        )


class Network(TimedEvents):
    """Hosts' sockets, links and faults, driven by the loop's timers."""

    def __init__(
        self,
        loop: Any,
        poller: SimPoller,
        seed: int,
        defaults: LinkParams,
        tcp_window: int,
        tcp_timeout: float,
        trace: Trace,
    ) -> None:
        self.loop = loop
        self.clock = loop.virtual_clock
        self.poller = poller
        self.READ, self.WRITE = poller.READ_ONLY, poller.WRITE_ONLY
        # fd -> the socket, whose readiness the poller asks.
        self._readiness_of = poller.readiness_of
        self.rng = random.Random(f"tidal.sim:{seed}:network")
        self._random = self.rng.random
        self.defaults = defaults
        self.links: dict[tuple[str, str], LinkParams] = {}
        self.cut: set[tuple[str, str]] = set()
        self.tcp_window = tcp_window
        self.tcp_timeout_ns = to_ns(tcp_timeout)
        self.trace = trace
        self.hosts: dict[str, Host] = {}
        self.by_address: dict[str, Host] = {}
        self.sockets: dict[int, SimSocket] = {}
        self.next_fd = VIRTUAL_FD_BASE
        self.tcp_ports: dict[tuple[str, int], SimSocket] = {}
        self.udp_ports: dict[tuple[str, int], SimSocket] = {}
        self.stalled: dict[_Pipe, None] = {}
        self.last_arrival: dict[int, int] = {}  # (see in_order)
        # Actions scheduled on the loop (Simulation.at) run outside every
        # host (an empty context).
        self._context = contextvars.Context()
        # The loop's own call_at: the simulation's time, whatever the hosts' clocks.
        self._call_at = EventLoop.call_at
        # The network's own events (segments, datagrams, SYNs, timeouts):
        # a heap of TimedEvent (_Event: a callback, or a _Pipe whose next
        # segment is due; _Datagram: a datagram) that the simulated
        # poller runs when virtual time reaches them (see
        # SimPoller.poll), not loop timers.  They run no program code, so
        # they need no Handle, context or turn of their own: a delivery and
        # the program reading it share one turn.  `tie` orders events due
        # at the same ns: 0 (the order they were scheduled in), or with
        # schedule exploration a draw from the seed.
        self.events: list[TimedEvent] = []
        self._seq = 0  # (compiled: a C integer)
        explore = getattr(loop, "_schedule_random", None)
        self._tie = (
            random.Random(f"tidal.sim:{seed}:network-order").random if explore is not None else None
        )
        poller.network = self
        # socket.socket() called by a host's code (a library that opens its
        # own sockets, as aiohttp's client does through aiohappyeyeballs)
        # makes a simulated socket of that host, while the loop runs.
        loop._entropy.patches.append((socket, "socket", host_socket_class(self)))

    # -- plumbing ----------------------------------------------------------

    def at(self, when_ns: int, callback: Callable[..., object], *args: Any) -> Any:
        """Run `callback` at the simulation's time `when_ns` as a loop timer,
        outside every host (nothing, once the loop is closed)."""
        if self.loop.is_closed():
            return None
        return self._call_at(self.loop, when_ns / NS_PER_S, callback, *args, context=self._context)

    def schedule(self, when_ns: int, callback: _Callback, *args: Any) -> _Event:
        """The network's event `callback(*args)` at the simulation's time
        `when_ns`; the entry returned is what _cancel() takes."""
        return self._push_event(when_ns, callback, args)

    def _push_event(self, when_ns: int, callback: _Callback, args: tuple[Any, ...]) -> _Event:
        """schedule(), with the arguments as a tuple (compiled: a C call)."""
        event = _Event.__new__(_Event)
        event.callback = callback
        event.args = args
        self._push(event, when_ns)
        return event

    def _push(self, event: TimedEvent, when_ns: int) -> None:
        """Put `event` on the heap, due at `when_ns`."""
        self._seq += 1
        tie = self._tie
        event.when = when_ns
        event.tie = 0.0 if tie is None else tie()
        event.seq = self._seq
        heappush(self.events, event)

    def run_due(self) -> None:
        """Run the events due by now (called by the poller, which moved the
        clock).  One that raises goes to the loop's exception handler."""
        events = self.events
        now = self.clock.ns
        while events:
            first = events[0]
            if first.when > now:
                break
            heappop(events)
            try:
                if type(first) is _Datagram:
                    datagram = first  # (compiled: a C call)
                    datagram._arrive()
                    continue
                assert isinstance(first, _Event)  # (the heap's only other kind)
                entry = first
                callback = entry.callback
                if callback is None:
                    continue  # cancelled
                args = entry.args
                if isinstance(callback, _Pipe):
                    pipe = callback  # (compiled: a C call)
                    pipe._arrive()
                elif args:
                    callback(*args)
                else:
                    callback()
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self.loop.call_exception_handler(
                    {"message": "simulated network event failed", "exception": exc}
                )

    def link(self, src: str, dst: str) -> LinkParams:
        return self.links.get((src, dst), self.defaults)

    def latency(self, params: LinkParams) -> int:
        span = params.span_ns
        if span == 0:
            return params.low_ns
        # (compiled: C arithmetic, the cast a C truncation as int() is for
        # a product >= 0; it is below span + 1, < 2**53)
        draw = self._random()
        return params.low_ns + cython.cast(cython.longlong, draw * (span + 1))

    def in_order(self, src_number: int, dst_number: int, arrival: int) -> int:
        """`arrival`, or just after the link's previous datagram: a link
        (from the host numbered `src_number` to `dst_number`) keeps its order
        unless a reorder fault (or jitter) says otherwise."""
        # (An int key: a tuple of two hosts costs a tuple, and its hash.)
        key = (src_number << _HOST_BITS) | dst_number
        last = self.last_arrival.get(key, 0)
        if arrival <= last:
            arrival = last + 1
        self.last_arrival[key] = arrival
        return arrival

    def is_cut(self, src: Host, dst: Host) -> bool:
        return (src.name, dst.name) in self.cut

    def new_fd(self, sock: SimSocket) -> int:
        fd = self.next_fd
        self.next_fd += 1
        self.sockets[fd] = sock
        self._readiness_of[fd] = sock
        return fd

    def host_of(self, ip: str, asking: Host) -> Host | None:
        ip = _to_v4(ip)
        if ip in ("127.0.0.1", "localhost"):
            return asking
        return self.by_address.get(ip)

    def address_of(self, name: str, asking: Host) -> str:
        """An address given to connect/sendto: a literal, or a host's name
        (the socket module resolves names there too)."""
        name = _to_v4(name)
        if name in _ANY:
            return asking.address
        host = self.hosts.get(name)
        return name if host is None else host.address

    # -- the seams ---------------------------------------------------------

    def socket_factory(self, family: int, type: int, proto: int) -> SimSocket:
        """tidal.abc.SocketFactory: a simulated socket of the calling host."""
        host = current_host.get(None)
        if host is None:
            raise RuntimeError(
                "socket opened outside a simulated host: inside a Simulation, sockets "
                "belong to hosts (open them from a host's tasks)"
            )
        if family == socket.AF_UNIX:
            from ._unix import socket_factory  # (it builds on this module)

            return socket_factory(self, host, type, proto)
        if family not in (socket.AF_INET, socket.AF_INET6):
            raise RuntimeError(
                f"the simulated network has TCP and UDP over IPv4 and IPv6, and Unix "
                f"stream sockets, only (socket family {family!r})"
            )
        if type not in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            raise RuntimeError(f"the simulated network has TCP and UDP only (socket type {type!r})")
        return SimSocket(self, host, type, proto, family)

    async def getaddrinfo(
        self,
        host: bytes | str | None,
        port: bytes | str | int | None,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[tuple[Any, ...]]:
        """tidal.abc.Resolver: hosts' names resolve to their simulated addresses."""
        if isinstance(host, bytes):
            host = host.decode("idna")
        if isinstance(port, bytes):
            port = port.decode()
        if family not in (0, socket.AF_INET, socket.AF_INET6):
            raise socket.gaierror(socket.EAI_FAMILY, "[simulated] only IPv4 and IPv6 are simulated")
        if host is not None and ":" in host:
            # An IPv6 literal: answered in IPv6, as its IPv4 form otherwise.
            family = family or socket.AF_INET6
            host = _to_v4(host)
        asking = current_host.get(None)
        if host is None or host in _ANY:
            address = "0.0.0.0" if host is None else host
            if host in ("127.0.0.1", "localhost") and asking is not None:
                address = asking.address
        elif host in self.hosts:
            address = self.hosts[host].address
        elif host in self.by_address:
            address = host
        else:
            raise socket.gaierror(socket.EAI_NONAME, f"[simulated] unknown host {host!r}")
        try:
            number = int(port or 0)
        except ValueError:
            number = socket.getservbyname(str(port))
        kinds = [type] if type else [socket.SOCK_STREAM, socket.SOCK_DGRAM]
        v6 = family == socket.AF_INET6
        return [
            (
                socket.AF_INET6 if v6 else socket.AF_INET,
                kind,
                proto or (socket.IPPROTO_TCP if kind == socket.SOCK_STREAM else socket.IPPROTO_UDP),
                "",
                _v6_address(address, number) if v6 else (address, number),
            )
            for kind in kinds
        ]

    async def getnameinfo(self, sockaddr: tuple[Any, ...], flags: int = 0) -> tuple[str, str]:
        ip, port = _to_v4(sockaddr[0]), sockaddr[1]
        host = self.by_address.get(ip)
        name = host.name if host is not None and not flags & socket.NI_NUMERICHOST else ip
        return name, str(port)

    # -- faults --------------------------------------------------------------

    def partition(self, a: set[str], b: set[str], one_way: bool) -> None:
        for x in sorted(a):
            for y in sorted(b):
                self.cut.add((x, y))
                if not one_way:
                    self.cut.add((y, x))

    def heal(self, a: set[str] | None, b: set[str] | None) -> None:
        if a is None or b is None:
            self.cut.clear()
        else:
            for x in a:
                for y in b:
                    self.cut.discard((x, y))
                    self.cut.discard((y, x))
        for pipe in list(self.stalled):
            if not self.is_cut(pipe.src.host, pipe.dst_host):
                del self.stalled[pipe]
                pipe.resume()

    def crash(self, host: Host) -> None:
        """The host's process dies: its sockets go, its connections are reset."""
        for fd in [fd for fd, sock in self.sockets.items() if sock.host is host]:
            self.sockets[fd]._die()

    def forget(self, sock: SimSocket) -> None:
        self.sockets.pop(sock._fd, None)
        self._readiness_of.pop(sock._fd, None)


def _v6_address(ip: str, port: int) -> tuple[str, int, int, int]:
    """An IPv4 address and port as an IPv6 socket reports them."""
    return ("::" if ip == "0.0.0.0" else _MAPPED + ip, port, 0, 0)


def _cancel(entry: _Event) -> None:
    """Cancel a network event (Network.schedule's entry): it stays in the
    heap, and is skipped when due."""
    entry.callback = None


_REAL_SOCKET = socket.socket


class _SocketType(type):
    """socket.socket's type while a simulation runs: simulated sockets are
    socket.socket instances too (isinstance checks in libraries pass)."""

    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, (_REAL_SOCKET, SimSocket))

    def __subclasscheck__(cls, sub: Any) -> bool:
        return issubclass(sub, (_REAL_SOCKET, SimSocket))


def host_socket_class(net: Network) -> type:
    """What socket.socket is inside a running simulation: called from a
    host's code, a simulated socket of that host (the loop's socket factory,
    so the same checks and errors); anywhere else, or with a fileno (an fd
    the process has), a real socket."""

    class socket_(_REAL_SOCKET, metaclass=_SocketType):  # type: ignore[misc]
        __doc__ = _REAL_SOCKET.__doc__

        def __new__(
            cls, family: int = -1, type: int = -1, proto: int = -1, fileno: Any = None
        ) -> Any:
            if fileno is not None or current_host.get(None) is None:
                return _REAL_SOCKET(family, type, proto, fileno)
            return net.socket_factory(
                socket.AF_INET if family == -1 else family,
                socket.SOCK_STREAM if type == -1 else type,
                0 if proto == -1 else proto,
            )

    socket_.__name__ = socket_.__qualname__ = "socket"
    socket_.__module__ = "socket"
    return socket_


class _Pipe:
    """One direction of a TCP connection: segments delivered in order."""

    __slots__ = (
        "net",
        "label",
        "label_id",
        "key",
        "src",
        "dst",
        "dst_host",
        "queue",
        "queued_bytes",
        "last_arrival",
        "timer",
        "stalled_since",
        "give_up",
    )

    def __init__(self, net: Network, src: SimSocket, dst: SimSocket) -> None:
        self.net = net
        # What the trace calls it, and the link it runs over.
        self.label = f"{src.name()}>{dst.name()}"
        self.label_id = net.trace.name_id(net.clock.ns, self.label)
        self.key = (src.host.name, dst.host.name)
        self.src = src
        self.dst = dst
        self.dst_host = dst.host
        # [arrival_ns, kind, payload]
        self.queue: collections.deque[list[Any]] = collections.deque()
        self.queued_bytes = 0
        self.last_arrival = 0
        self.timer: Any = None
        self.stalled_since = -1
        self.give_up: Any = None

    def _arrival(self) -> int:
        """When a segment sent now arrives: after the link's latency, and
        not before the one sent before it."""
        net = self.net
        params = net.defaults
        if net.links:
            params = net.links.get(self.key, params)
        arrival = net.clock.ns + net.latency(params)
        if arrival < self.last_arrival:
            arrival = self.last_arrival
        self.last_arrival = arrival
        return arrival

    def push(self, kind: int, payload: bytes = b"") -> None:
        arrival = self._arrival()
        self.queue.append([arrival, kind, payload])
        self.queued_bytes += len(payload)
        if self.timer is None and self.stalled_since < 0:
            self.timer = self.net._push_event(arrival, self, ())

    def _arrive(self) -> None:
        self.timer = None
        net = self.net
        now = net.clock.ns
        if net.cut and self.key in net.cut:
            self.stalled_since = now
            net.stalled[self] = None
            net.trace.add(now, "tcp stall", self.label)
            if self.give_up is None and self.queue[0][1] != _RST:
                self.give_up = net.schedule(now + net.tcp_timeout_ns, self._timed_out)
            return
        queue = self.queue
        _, kind, payload = queue.popleft()
        self.queued_bytes -= len(payload)
        net.trace.record(now, _TCP_SEGMENT, kind, self.label_id, len(payload), 0, 0, 0)
        self.dst._receive(kind, payload)
        if queue:
            self.timer = net._push_event(queue[0][0], self, ())

    def resume(self) -> None:
        """The link healed: what waited goes now, after the latency, in order."""
        self.stalled_since = -1
        if self.give_up is not None:
            _cancel(self.give_up)
            self.give_up = None
        self.last_arrival = 0
        for segment in self.queue:
            segment[0] = self._arrival()
        if self.queue:
            self.timer = self.net.schedule(self.queue[0][0], self)

    def _timed_out(self) -> None:
        """Retransmissions gave up: the sender fails; the receiver is reset when the link heals."""
        self.give_up = None
        if self.stalled_since < 0:
            return
        self.net.trace.add(self.net.clock.ns, "tcp timeout", self.label)
        self.queue.clear()
        self.queued_bytes = 0
        self.queue.append([self.net.clock.ns, _RST, b""])
        self.src._fail(errno.ETIMEDOUT)

    def abort(self) -> None:
        """The sender is gone: drop what is queued, send a reset."""
        self.queue.clear()
        self.queued_bytes = 0
        if self.timer is not None:
            _cancel(self.timer)
            self.timer = None
        self.last_arrival = 0
        if self.stalled_since < 0:
            self.push(_RST)
        else:
            self.queue.append([self.net.clock.ns, _RST, b""])


class SimSocket(SimFile):
    """A socket of a simulated host, with the socket module's interface."""

    def __init__(
        self, net: Network, host: Host, type: int, proto: int, family: int = socket.AF_INET
    ) -> None:
        super().__init__()
        self.net = net
        self.host = host
        self._host_number = host.number  # (its trace events carry it)
        self.family = family
        self._v6 = family == socket.AF_INET6  # (addresses reported in IPv6 form)
        self.type = type
        self.proto = proto
        self._tcp = type == socket.SOCK_STREAM
        self._fd = net.new_fd(self)
        self._local: tuple[str, int] | None = None
        self._peer: tuple[str, int] | None = None
        self._state = "new"  # new, connecting, connected, listening, closed
        self._error = 0  # pending SO_ERROR
        self._reset = 0  # errno every call now raises (connection reset/timed out)
        self._recv = bytearray()
        self._eof = False
        self._wr_shut = False
        self._full = False  # a send() found the peer's window full
        self._out: _Pipe | None = None
        self._peer_sock: SimSocket | None = None
        self._backlog: collections.deque[SimSocket] = collections.deque()
        self._backlog_max = 0
        self._datagrams: collections.deque[tuple[bytes, tuple[str, int]]] = collections.deque()
        self._datagram_bytes = 0
        self._opts: dict[tuple[int, int], int] = {}
        self._timeout: float | None = None

    def __repr__(self) -> str:
        kind = "tcp" if self._tcp else "udp"
        return f"<SimSocket {kind} fd={self.fileno()} host={self.host.name} laddr={self._local} raddr={self._peer} {self._state}>"

    def name(self) -> str:
        return f"{self._local[0]}:{self._local[1]}" if self._local else f"{self.host.name}:?"

    # -- what the poller asks ----------------------------------------------

    def _wake(self) -> None:
        """This socket's state changed: the poller looks at it again."""
        self.net.poller.notify(self._fd)

    def _readiness(self) -> int:
        net = self.net
        state = self._state
        # (The common states first: each test of the state is a string compare.)
        if not self._tcp:
            if state == "closed" or state == "dead":
                return 0
            return (net.READ if self._datagrams else 0) | net.WRITE
        if self._reset or self._error:
            if state == "closed" or state == "dead":
                return 0
            if state == "listening":
                return net.READ if self._backlog else 0
            return net.READ | net.WRITE
        if state == "connected":
            ready = net.READ if (self._recv or self._eof) else 0
            if self._wr_shut or self._window() > 0:
                ready |= net.WRITE
            return ready
        if state == "listening":
            return net.READ if self._backlog else 0
        return net.WRITE if state == "new" else 0

    def _window(self) -> int:
        out, peer = self._out, self._peer_sock
        if out is None or peer is None:
            return 0
        return self.net.tcp_window - out.queued_bytes - len(peer._recv)

    # -- the socket module's interface -------------------------------------

    def fileno(self) -> int:
        return -1 if self._state == "closed" else self._fd

    def __enter__(self) -> SimSocket:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def setblocking(self, flag: bool) -> None:
        if flag:
            raise RuntimeError(
                "simulated sockets are non-blocking (the loop's); setblocking(True) would block the simulation"
            )
        self._timeout = 0.0

    def settimeout(self, value: float | None) -> None:
        if value != 0:
            raise RuntimeError("simulated sockets are non-blocking (the loop's)")
        self._timeout = 0.0

    def gettimeout(self) -> float | None:
        return self._timeout

    def setsockopt(self, level: int, option: int, value: Any, *more: Any) -> None:
        self._check_open()
        self._opts[(level, option)] = value

    def getsockopt(self, level: int, option: int, *more: Any) -> int:
        self._check_open()
        if (level, option) == (socket.SOL_SOCKET, socket.SO_ERROR):
            error, self._error = self._error, 0
            return error
        if (level, option) == (socket.SOL_SOCKET, socket.SO_TYPE):
            return self.type
        return self._opts.get((level, option), 0)  # type: ignore[return-value]

    def _address(self, address: tuple[str, int]) -> Any:
        """An address as this socket's family reports it."""
        return _v6_address(*address) if self._v6 else address

    def getsockname(self) -> Any:
        self._check_open()
        return self._address(self._local if self._local is not None else ("0.0.0.0", 0))

    def getpeername(self) -> Any:
        self._check_open()
        if self._peer is None or self._state not in ("connected",) and self._tcp:
            raise _oserror(errno.ENOTCONN)
        return self._address(self._peer)

    def _check_open(self) -> None:
        if self._state == "closed":
            raise _oserror(errno.EBADF)

    def _own_ip(self, ip: str) -> str:
        ip = _to_v4(ip)
        if ip in _ANY or ip == self.host.address:
            return self.host.address
        raise _oserror(errno.EADDRNOTAVAIL)

    def bind(self, address: tuple[Any, ...]) -> None:
        self._check_open()
        if self._local is not None:
            raise _oserror(errno.EINVAL)
        ip, port = self._own_ip(address[0]), int(address[1])
        table = self.net.tcp_ports if self._tcp else self.net.udp_ports
        if port == 0:
            port = self.host.ephemeral_port()
            while (ip, port) in table:
                port = self.host.ephemeral_port()
        elif (ip, port) in table:
            raise _oserror(errno.EADDRINUSE)
        table[(ip, port)] = self
        self._local = (ip, port)

    def _autobind(self) -> None:
        if self._local is None:
            self.bind((self.host.address, 0))

    def listen(self, backlog: int = 128) -> None:
        self._check_open()
        if not self._tcp:
            raise _oserror(errno.EOPNOTSUPP)
        self._autobind()
        self._state = "listening"
        self._backlog_max = max(1, backlog)

    def accept(self) -> tuple[SimSocket, tuple[str, int]]:
        self._check_open()
        if self._state != "listening":
            raise _oserror(errno.EINVAL)
        if not self._backlog:
            raise BlockingIOError(errno.EAGAIN, "[simulated] no connection pending")
        conn = self._backlog.popleft()
        assert conn._peer is not None
        return conn, conn._address(conn._peer)

    def connect(self, address: tuple[Any, ...]) -> None:
        self._check_open()
        net = self.net
        ip, port = net.address_of(str(address[0]), self.host), int(address[1])
        if not self._tcp:
            self._autobind()
            self._peer = (ip, port)
            return
        if self._state == "connected":
            raise _oserror(errno.EISCONN)
        if self._state == "connecting":
            raise _oserror(errno.EALREADY)
        self._autobind()
        self._peer = (ip, port)
        self._state = "connecting"
        start = net.clock.ns
        net.trace.add(start, f"tcp connect {self.name()}>{ip}:{port}")
        net.schedule(start + net.latency(net.defaults), self._syn_arrives, start, 0)
        raise BlockingIOError(errno.EINPROGRESS, "[simulated] connecting")

    def _syn_arrives(self, start: int, attempt: int) -> None:
        net = self.net
        if self._state != "connecting":
            return
        assert self._peer is not None
        dst = net.host_of(self._peer[0], self.host)
        if dst is None:
            # No such address on the loopback network: refused at once.
            net.schedule(net.clock.ns + net.latency(net.defaults), self._refused)
            return
        if not net.is_cut(self.host, dst) and self.host.up:
            listener = net.tcp_ports.get((dst.address, self._peer[1])) if dst.up else None
            if listener is None or listener._state != "listening":
                # Refused: the RST comes back (or is lost on a cut link: retry).
                if not net.is_cut(dst, self.host):
                    net.schedule(
                        net.clock.ns + net.latency(net.link(dst.name, self.host.name)),
                        self._refused,
                    )
                    return
            elif len(listener._backlog) < listener._backlog_max:
                listener._open_child(self)
                return
        if attempt < len(_SYN_RETRIES):
            net.schedule(
                start + _SYN_RETRIES[attempt] * NS_PER_S, self._syn_arrives, start, attempt + 1
            )
        else:
            net.schedule(start + _SYN_GIVE_UP * NS_PER_S, self._connect_failed, errno.ETIMEDOUT)

    def _refused(self) -> None:
        self._connect_failed(errno.ECONNREFUSED)

    def _connect_failed(self, code: int) -> None:
        if self._state != "connecting":
            return
        self.net.trace.add(
            self.net.clock.ns, f"tcp connect-failed {self.name()} {errno.errorcode[code]}"
        )
        self._state = "new"
        self._error = code
        self._wake()

    def _open_child(self, client: SimSocket) -> None:
        """A SYN reached this listener: the server's end, queued for accept()."""
        net = self.net
        conn = SimSocket(net, self.host, socket.SOCK_STREAM, self.proto, self.family)
        conn._local = self._local
        conn._peer = client._local
        conn._state = "connected"
        conn._peer_sock = client
        client._peer_sock = conn
        conn._out = _Pipe(net, conn, client)
        client._out = _Pipe(net, client, conn)
        self._backlog.append(conn)
        net.trace.add(net.clock.ns, f"tcp accept {conn.name()}<{client.name()}")
        self._wake()
        # The SYN-ACK goes first on the server's pipe: its data follows.
        conn._out.push(_SYNACK)

    def _receive(self, kind: int, payload: bytes) -> None:
        """A segment arrived from the peer."""
        if self._state == "closed" or self._reset:
            if kind == _DATA and self._out is not None:
                self._out.abort()
            return
        if kind == _DATA:
            if not self._recv:
                # Readable now (the common case: the reader took all of the
                # last segment), and the poller can be told so directly.
                self._recv += payload
                self.net.poller.ready_now(self._fd, self)
                return
            self._recv += payload
        elif kind == _FIN:
            self._eof = True
        elif kind == _RST:
            self._fail(errno.ECONNRESET if self._state == "connected" else errno.ECONNREFUSED)
            return
        elif kind == _SYNACK:
            if self._state == "connecting":
                self._state = "connected"
        self._wake()

    def _fail(self, code: int) -> None:
        if self._state == "connecting":
            self._connect_failed(code)
            return
        self._reset = code
        self._wake()

    def _raise_reset(self) -> None:
        code = self._reset
        if code == errno.ECONNRESET:
            raise ConnectionResetError(code, "[simulated] Connection reset by peer")
        raise _oserror(code)

    def recv(self, size: int, flags: int = 0) -> bytes:
        if self._state == "closed":
            raise _oserror(errno.EBADF)
        if not self._tcp:
            return self.recvfrom(size)[0]
        buffered = self._recv
        if buffered:
            if size >= len(buffered):  # all of it (the common case): one copy
                data = bytes(buffered)
                buffered.clear()
            else:
                data = bytes(buffered[:size])
                del buffered[:size]
            peer = self._peer_sock
            if peer is not None and peer._full:
                # The window opened for a sender that found it full.
                peer._full = False
                peer._wake()
            return data
        if self._reset:
            self._raise_reset()
        if self._eof:
            return b""
        if self._state != "connected":
            raise _oserror(errno.ENOTCONN)
        raise BlockingIOError(errno.EAGAIN, "[simulated] nothing to read")

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        view = memoryview(buffer).cast("B")
        data = self.recv(nbytes or len(view))
        view[: len(data)] = data
        return len(data)

    def send(self, data: Any, flags: int = 0) -> int:
        if self._state == "closed":
            raise _oserror(errno.EBADF)
        if not self._tcp:
            if self._peer is None:
                raise _oserror(errno.EDESTADDRREQ)
            return self._sendto(data, self._peer)
        if self._reset:
            self._raise_reset()
        if self._wr_shut:
            raise BrokenPipeError(errno.EPIPE, "[simulated] Broken pipe")
        if self._state != "connected":
            raise _oserror(errno.ENOTCONN)
        window = self._window()
        if window <= 0:
            self._full = True
            raise BlockingIOError(errno.EAGAIN, "[simulated] the peer's window is full")
        out = self._out
        assert out is not None
        if type(data) is bytes and len(data) <= window:
            if data:
                out.push(_DATA, data)
            return len(data)
        view = memoryview(data).cast("B")
        n = len(view)
        if n > window:
            n = window
            self._full = True  # the rest waits for the window to open
        if n:
            out.push(_DATA, bytes(view[:n]))
        return n

    def sendall(self, data: Any, flags: int = 0) -> None:
        view = memoryview(data).cast("B")
        if self.send(view) != len(view):
            raise BlockingIOError(errno.EAGAIN, "[simulated] the peer's window is full")

    def sendmsg(self, buffers: Any, *rest: Any) -> int:
        return self.send(b"".join(bytes(b) for b in buffers))

    def shutdown(self, how: int) -> None:
        self._check_open()
        if self._tcp and self._state == "connected" and how in (socket.SHUT_WR, socket.SHUT_RDWR):
            if not self._wr_shut and not self._reset:
                self._wr_shut = True
                assert self._out is not None
                self._out.push(_FIN)
        elif self._tcp and self._state != "connected":
            raise _oserror(errno.ENOTCONN)

    def close(self) -> None:
        if self._state == "closed":
            return
        if self._state == "connected" and not self._reset and self._out is not None:
            if self._recv:
                self._out.abort()  # unread data: Linux resets
            elif not self._wr_shut:
                self._out.push(_FIN)
        elif self._state == "listening":
            for conn in self._backlog:
                conn.close()
            self._backlog.clear()
        self._release()

    def _unbind(self) -> None:
        if self._local is not None:
            table = self.net.tcp_ports if self._tcp else self.net.udp_ports
            if table.get(self._local) is self:
                del table[self._local]

    def _release(self) -> None:
        net = self.net
        self._unbind()
        self._state = "closed"
        self._recv.clear()
        self._datagrams.clear()
        net.forget(self)

    def detach(self) -> int:
        fd = self.fileno()
        self._release()
        return fd

    def _die(self) -> None:
        """The host crashed: connections reset, ports freed.  The object
        stays open (its fd valid) until its owner closes it: the loop and
        the crashed host's transports and servers still refer to it."""
        if self._state == "connected" and not self._reset and self._out is not None:
            self._out.abort()
        elif self._state == "listening":
            for conn in self._backlog:
                conn._die()
            self._backlog.clear()
        self._reset = errno.ECONNRESET
        if self._state in ("listening", "connecting", "new"):
            self._state = "dead"
        self._datagrams.clear()
        self._unbind()
        # Its own transport meets the reset and cleans up.
        self._wake()

    # -- UDP ---------------------------------------------------------------

    def sendto(self, data: Any, *args: Any) -> int:
        return self._sendto(data, args[-1])

    def _sendto(self, data: Any, address: Any) -> int:
        """sendto(data, address) (compiled: a C call from send())."""
        if self._state == "closed":
            raise _oserror(errno.EBADF)
        if type(data) is bytes:
            payload = data  # (immutable: no copy)
        else:
            payload = bytes(memoryview(data).cast("B"))
        if len(payload) > _MAX_DATAGRAM:
            raise _oserror(errno.EMSGSIZE)
        if self._local is None:
            self._autobind()
        net = self.net
        host = self.host
        ip, port = address[0], address[1]
        # A host's own address (what a reply, or a connected socket, sends
        # to) needs no resolving; a name, a wildcard or an IPv6 form does.
        dst = net.by_address.get(ip) if type(ip) is str and ip not in net.hosts else None
        if dst is None:
            ip = net.address_of(str(ip), host)
            dst = net.by_address.get(ip)
        if type(port) is not int:
            port = int(port)
        params = net.defaults
        if dst is not None and net.links:
            params = net.link(host.name, dst.name)
        local = self._local
        assert local is not None
        size = len(payload)
        if not host.up or dst is None or (params.drop and net._random() < params.drop):
            net.trace.add(net.clock.ns, "udp dropped", local[0], local[1], ip, port, size)
            return size
        copies = 2 if params.duplicate and net._random() < params.duplicate else 1
        dst_number = dst.number
        key = (ip, port)
        for _ in range(copies):
            arrival = net.clock.ns + net.latency(params)
            if params.reorder and net._random() < params.reorder:
                # Held back by up to twice the link's latency: overtaken.
                arrival += net.rng.randint(0, max(params.latency[1], 1) * 2)
            else:
                arrival = net.in_order(self._host_number, dst_number, arrival)
            # (Each copy its own entry: the heap orders them by their fields.)
            datagram = _Datagram.__new__(_Datagram)
            datagram.net = net
            datagram.src = host
            datagram.source = local
            datagram.dst = dst
            datagram.key = key
            datagram.payload = payload
            datagram.src_number = self._host_number
            datagram.dst_number = dst_number
            net._push(datagram, arrival)
        net.trace.record(
            net.clock.ns, _UDP_SENT, self._host_number, local[1], dst_number, port, size, copies
        )
        return size

    def recvfrom(self, size: int, flags: int = 0) -> tuple[bytes, Any]:
        if self._state == "closed":
            raise _oserror(errno.EBADF)
        if not self._datagrams:
            raise BlockingIOError(errno.EAGAIN, "[simulated] no datagram")
        data, source = self._datagrams.popleft()
        self._datagram_bytes -= len(data)
        if self._v6:
            return data[:size], _v6_address(*source)
        if len(data) > size:
            data = data[:size]
        return data, source

    def recvfrom_into(
        self, buffer: Any, nbytes: int = 0, flags: int = 0
    ) -> tuple[int, tuple[str, int]]:
        view = memoryview(buffer).cast("B")
        data, source = self.recvfrom(nbytes or len(view))
        view[: len(data)] = data
        return len(data), source
