"""Trace events -> Perfetto's protobuf trace format (``.pftrace``), for traces too big for JSON.

Perfetto's UI loads a protobuf trace of gigabytes where a JSON one of a few
hundred megabytes fails, and the file is several times smaller.  This
module writes the protobuf wire format itself (no protobuf dependency): a
``Trace`` is a sequence of ``TracePacket`` messages (field 1), each either
a ``TrackDescriptor`` (a loop as a process, its I/O-wait, callback and task
tracks as threads of it, a counter track per counter) or a ``TrackEvent``
on one of those tracks: a slice's begin and end, a counter's value.  The
wake-up arrows are flows: the slice that queued a task's step carries the
flow's id in ``flow_ids``, the step it queued in ``terminating_flow_ids``.
Slice arguments (where a step resumed, what it awaited, its lag) become
debug annotations.

The input is the trace-event JSON ``_chrome.py`` makes (one source for both
formats, so names, tracks and arrows are the same in each).  Field numbers
are those of Perfetto's protos/perfetto/trace/ (trace_packet.proto,
track_event/track_event.proto, track_descriptor.proto, ...).
"""

from __future__ import annotations

import struct
import zlib
from bisect import bisect_right
from collections import defaultdict
from typing import Any, Iterable

from ._chrome import flow_event

# Trace
TRACE_PACKET = 1
# TracePacket
PACKET_TIMESTAMP = 8
PACKET_SEQUENCE_ID = 10  # trusted_packet_sequence_id
PACKET_TRACK_EVENT = 11
PACKET_SEQUENCE_FLAGS = 13
PACKET_TRACK_DESCRIPTOR = 60
SEQ_INCREMENTAL_STATE_CLEARED = 1
# TrackDescriptor
TRACK_UUID = 1
TRACK_NAME = 2
TRACK_PROCESS = 3
TRACK_THREAD = 4
TRACK_PARENT_UUID = 5
TRACK_COUNTER = 8
# ProcessDescriptor / ThreadDescriptor
PROCESS_PID = 1
PROCESS_NAME = 6
THREAD_PID = 1
THREAD_TID = 2
THREAD_NAME = 5
# TrackEvent
EVENT_DEBUG_ANNOTATIONS = 4
EVENT_TYPE = 9
EVENT_TRACK_UUID = 11
EVENT_CATEGORIES = 22
EVENT_NAME = 23
EVENT_DOUBLE_COUNTER_VALUE = 44
EVENT_FLOW_IDS = 47
EVENT_TERMINATING_FLOW_IDS = 48
TYPE_SLICE_BEGIN, TYPE_SLICE_END, TYPE_COUNTER = 1, 2, 4
# DebugAnnotation
ANNOTATION_BOOL = 2
ANNOTATION_INT = 4
ANNOTATION_DOUBLE = 5
ANNOTATION_STRING = 6
ANNOTATION_NAME = 10

SEQUENCE_ID = 1  # one writer, one sequence


# -- the wire format -----------------------------------------------------------


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int64 fields: two's complement, ten bytes
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _key(field: int, wire_type: int) -> bytes:
    return _varint(field << 3 | wire_type)


def _int(field: int, value: int) -> bytes:
    return _key(field, 0) + _varint(value)


def _bytes(field: int, value: bytes) -> bytes:
    return _key(field, 2) + _varint(len(value)) + value


def _str(field: int, value: str) -> bytes:
    return _bytes(field, value.encode("utf-8", "surrogatepass"))


def _double(field: int, value: float) -> bytes:
    return _key(field, 1) + struct.pack("<d", value)


def _fixed64(field: int, value: int) -> bytes:
    return _key(field, 1) + struct.pack("<Q", value & 0xFFFFFFFFFFFFFFFF)


def _annotation(name: str, value: Any) -> bytes | None:
    if isinstance(value, bool):
        body = _int(ANNOTATION_BOOL, int(value))
    elif isinstance(value, int):
        body = _int(ANNOTATION_INT, value)
    elif isinstance(value, float):
        body = _double(ANNOTATION_DOUBLE, value)
    elif value is None:
        return None
    else:
        body = _str(ANNOTATION_STRING, str(value))
    return _bytes(EVENT_DEBUG_ANNOTATIONS, _str(ANNOTATION_NAME, name) + body)


def _packet(body: bytes, ts_ns: int | None = None, first: bool = False) -> bytes:
    packet = _int(PACKET_SEQUENCE_ID, SEQUENCE_ID)
    if ts_ns is not None:
        packet += _int(PACKET_TIMESTAMP, ts_ns)
    if first:
        packet += _int(PACKET_SEQUENCE_FLAGS, SEQ_INCREMENTAL_STATE_CLEARED)
    return _bytes(TRACE_PACKET, packet + body)


def _uuid(*parts: Any) -> int:
    """A stable 63-bit track uuid from what names the track."""
    text = "\x00".join(map(str, parts)).encode()
    return (zlib.crc32(text) << 31 ^ zlib.crc32(text[::-1])) & 0x7FFFFFFFFFFFFFFF or 1


def _ns(us: float) -> int:
    return max(0, round(us * 1000))


# -- trace events -> packets ------------------------------------------------------


def perfetto_trace(events: Iterable[dict[str, Any]]) -> bytes:
    """The Perfetto protobuf trace of a list of trace-event JSON events (chrome_events)."""
    events = list(events)
    processes: dict[Any, str] = {}
    threads: dict[tuple[Any, Any], str] = {}
    slices: dict[tuple[Any, Any], list[dict[str, Any]]] = defaultdict(list)
    counters: dict[tuple[Any, str], list[tuple[float, float]]] = defaultdict(list)
    flow_ends: list[dict[str, Any]] = []
    for e in events:
        ph = e.get("ph")
        if ph == "X":
            slices[(e["pid"], e["tid"])].append(e)
        elif ph == "M" and e.get("name") == "process_name":
            processes[e["pid"]] = str(e["args"]["name"])
        elif ph == "M" and e.get("name") == "thread_name":
            threads[(e["pid"], e["tid"])] = str(e["args"]["name"])
        elif ph == "C":
            for key, value in (e.get("args") or {}).items():
                name = e["name"] if len(e["args"]) == 1 else f"{e['name']} {key}"
                counters[(e["pid"], name)].append((e["ts"], float(value)))
        elif ph in ("s", "f"):
            flow_ends.append(e)

    # Each flow end belongs to the innermost slice around it on its track:
    # the waker's slice carries the flow's start, the woken step its end.
    starts_of: dict[int, list[int]] = defaultdict(list)  # id(slice) -> flow ids it starts
    ends_of: dict[int, list[int]] = defaultdict(list)  # id(slice) -> flow ids it ends
    ordered = {track: sorted(items, key=lambda s: (s["ts"], -s["dur"])) for track, items in slices.items()}
    begins = {track: [s["ts"] for s in items] for track, items in ordered.items()}
    for e in flow_ends:
        key = (e["pid"], e["tid"])
        around = _enclosing(ordered.get(key, []), begins.get(key, []), e["ts"])
        if around is not None:
            (starts_of if e["ph"] == "s" else ends_of)[id(around)].append(int(e["id"]))

    out = bytearray()
    first = True
    for pid in sorted({*processes, *(t[0] for t in slices), *(c[0] for c in counters)}, key=str):
        body = _int(PROCESS_PID, _small_int(pid)) + _str(PROCESS_NAME, processes.get(pid, f"process {pid}"))
        descriptor = _int(TRACK_UUID, _uuid("process", pid)) + _bytes(TRACK_PROCESS, body)
        out += _packet(_bytes(PACKET_TRACK_DESCRIPTOR, descriptor), first=first)
        first = False
    for pid, tid in sorted({*threads, *slices}, key=str):
        body = (
            _int(THREAD_PID, _small_int(pid))
            + _int(THREAD_TID, _small_int(tid))
            + _str(THREAD_NAME, threads.get((pid, tid), f"track {tid}"))
        )
        descriptor = (
            _int(TRACK_UUID, _uuid("thread", pid, tid))
            + _int(TRACK_PARENT_UUID, _uuid("process", pid))
            + _bytes(TRACK_THREAD, body)
        )
        out += _packet(_bytes(PACKET_TRACK_DESCRIPTOR, descriptor))
    for pid, name in sorted(counters, key=str):
        descriptor = (
            _int(TRACK_UUID, _uuid("counter", pid, name))
            + _int(TRACK_PARENT_UUID, _uuid("process", pid))
            + _str(TRACK_NAME, name)
            + _bytes(TRACK_COUNTER, b"")
        )
        out += _packet(_bytes(PACKET_TRACK_DESCRIPTOR, descriptor))

    # The events, in time order; at one instant, ends before begins (a slice
    # ending as the next begins), outer begins before inner, inner ends
    # before outer; a zero-length slice's end right after its begin.
    timed: list[tuple[int, int, float, int, bytes]] = []
    n = 0
    for (pid, tid), items in ordered.items():
        track = _uuid("thread", pid, tid)
        for s in items:
            begin, end = _ns(s["ts"]), _ns(s["ts"] + s["dur"])
            event = (
                _int(EVENT_TYPE, TYPE_SLICE_BEGIN)
                + _int(EVENT_TRACK_UUID, track)
                + _str(EVENT_NAME, str(s["name"]))
            )
            if s.get("cat"):
                event += _str(EVENT_CATEGORIES, str(s["cat"]))
            for key, value in (s.get("args") or {}).items():
                annotation = _annotation(str(key), value)
                if annotation is not None:
                    event += annotation
            for flow in starts_of.get(id(s), ()):
                event += _fixed64(EVENT_FLOW_IDS, flow)
            for flow in ends_of.get(id(s), ()):
                event += _fixed64(EVENT_TERMINATING_FLOW_IDS, flow)
            timed.append((begin, 1, -s["dur"], n, _packet(_bytes(PACKET_TRACK_EVENT, event), begin)))
            end_event = _int(EVENT_TYPE, TYPE_SLICE_END) + _int(EVENT_TRACK_UUID, track)
            # (A zero-length slice's end sorts right after its begin.)
            rank = (1, -s["dur"], n + 1) if end == begin else (0, -s["ts"], n + 1)
            timed.append((end, *rank, _packet(_bytes(PACKET_TRACK_EVENT, end_event), end)))
            n += 2
    for (pid, name), points in counters.items():
        track = _uuid("counter", pid, name)
        for ts, value in points:
            event = (
                _int(EVENT_TYPE, TYPE_COUNTER)
                + _int(EVENT_TRACK_UUID, track)
                + _double(EVENT_DOUBLE_COUNTER_VALUE, value)
            )
            timed.append((_ns(ts), 0, 0.0, n, _packet(_bytes(PACKET_TRACK_EVENT, event), _ns(ts))))
            n += 1
    timed.sort(key=lambda item: item[:4])
    for item in timed:
        out += item[4]
    return bytes(out)


def _small_int(value: Any) -> int:
    """A pid or tid as Perfetto's int32 wants it (ours are small ints already)."""
    return value if isinstance(value, int) else zlib.crc32(str(value).encode()) & 0x7FFFFFFF


def _enclosing(items: list[dict[str, Any]], begins: list[float], ts: float) -> dict[str, Any] | None:
    """The innermost slice of a track (sorted by start) that contains `ts`."""
    i = bisect_right(begins, ts + 1e-6)
    while i > 0:
        i -= 1
        s = items[i]
        if s["ts"] - 1e-6 <= ts <= s["ts"] + s["dur"] + 1e-6:
            return s
    return None


# -- packets -> trace events (the reader) ------------------------------------------


class TraceFormatError(ValueError):
    """A file that is not a trace this module can read (corrupt, truncated, or another format)."""


def _fields(data: bytes | memoryview, where: str) -> Iterable[tuple[int, int, Any]]:
    """The (field number, wire type, value) of a message: an int for varints
    and fixed-width numbers, a memoryview for length-delimited fields."""
    buf = memoryview(data)
    n, i = len(buf), 0

    def varint() -> int:
        nonlocal i
        value = shift = 0
        while True:
            if i >= n:
                raise TraceFormatError(f"{where}: truncated (a number runs past the end)")
            byte = buf[i]
            i += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7
            if shift > 63:
                raise TraceFormatError(f"{where}: corrupt (a number longer than ten bytes)")

    while i < n:
        key = varint()
        field, wire_type = key >> 3, key & 7
        if wire_type == 0:
            yield field, 0, varint()
        elif wire_type in (1, 5):
            size = 8 if wire_type == 1 else 4
            if i + size > n:
                raise TraceFormatError(f"{where}: truncated (a fixed-width field runs past the end)")
            yield field, wire_type, int.from_bytes(buf[i : i + size], "little")
            i += size
        elif wire_type == 2:
            size = varint()
            if i + size > n:
                raise TraceFormatError(f"{where}: truncated ({size}-byte field {field} runs past the end)")
            yield field, 2, buf[i : i + size]
            i += size
        else:
            raise TraceFormatError(f"{where}: corrupt (wire type {wire_type} of field {field})")


def _text(value: Any) -> str:
    return bytes(value).decode("utf-8", "surrogatepass")


def _signed(value: int) -> int:
    """An int32/int64 varint as the signed number it encodes."""
    return value - (1 << 64) if value >= 1 << 63 else value


class _Message:
    """A decoded message: each field's last value of the wire type it should
    have (protobuf: the last of a singular field wins), or all of them."""

    def __init__(self, data: Any, where: str) -> None:
        self.fields: dict[tuple[int, int], list[Any]] = defaultdict(list)
        for field, wire_type, value in _fields(data, where):
            self.fields[(field, wire_type)].append(value)

    def get(self, field: int, wire_type: int, default: Any = None) -> Any:
        values = self.fields.get((field, wire_type))
        return values[-1] if values else default

    def all(self, field: int, wire_type: int) -> list[Any]:
        return self.fields.get((field, wire_type), [])


_VARINT, _FIXED64, _BYTES = 0, 1, 2


def _double_of(value: int) -> float:
    return float(struct.unpack("<d", value.to_bytes(8, "little"))[0])


def _annotation_of(data: memoryview, where: str) -> tuple[str, Any]:
    m = _Message(data, where)
    value: Any = None
    if (ANNOTATION_BOOL, _VARINT) in m.fields:
        value = bool(m.get(ANNOTATION_BOOL, _VARINT))
    elif (ANNOTATION_INT, _VARINT) in m.fields:
        value = _signed(m.get(ANNOTATION_INT, _VARINT))
    elif (ANNOTATION_DOUBLE, _FIXED64) in m.fields:
        value = _double_of(m.get(ANNOTATION_DOUBLE, _FIXED64))
    elif (ANNOTATION_STRING, _BYTES) in m.fields:
        value = _text(m.get(ANNOTATION_STRING, _BYTES))
    return _text(m.get(ANNOTATION_NAME, _BYTES, b"")), value


def _us(ns: int) -> float:
    return round(ns / 1000.0, 3)


def read_perfetto(data: bytes, where: str = "trace") -> list[dict[str, Any]]:
    """The trace events (as chrome_events makes them) of a protobuf trace this module wrote.

    Slices, tracks, counters and flows come back as they went in; what the
    protobuf does not keep: a counter's argument name (its value comes back
    as ``value``), a flow end's own time (each end is put at the start of the
    slice that carries it), and track sort indices.  Anything else in the
    file (other packets, fields this writer does not use) is skipped.
    Raises TraceFormatError for a file that is not a readable protobuf trace.
    """
    processes: dict[int, tuple[int, str]] = {}  # uuid -> (pid, name)
    threads: dict[int, tuple[int, int, str]] = {}  # uuid -> (pid, tid, name)
    counter_tracks: dict[int, tuple[int, str]] = {}  # uuid -> (parent uuid, name)
    timed: list[tuple[int, int, _Message]] = []  # (ts ns, order in the file, TrackEvent)
    packets = 0
    for field, wire_type, body in _fields(data, where):
        if field != TRACE_PACKET or wire_type != _BYTES:
            raise TraceFormatError(f"{where}: not a Perfetto trace (field {field} at the top level)")
        packets += 1
        packet = _Message(body, where)
        descriptor = packet.get(PACKET_TRACK_DESCRIPTOR, _BYTES)
        if descriptor is not None:
            d = _Message(descriptor, where)
            uuid = d.get(TRACK_UUID, _VARINT, 0)
            process, thread = d.get(TRACK_PROCESS, _BYTES), d.get(TRACK_THREAD, _BYTES)
            if (TRACK_COUNTER, _BYTES) in d.fields:
                counter_tracks[uuid] = (d.get(TRACK_PARENT_UUID, _VARINT, 0), _text(d.get(TRACK_NAME, _BYTES, b"")))
            elif process is not None:
                p = _Message(process, where)
                processes[uuid] = (_signed(p.get(PROCESS_PID, _VARINT, 0)), _text(p.get(PROCESS_NAME, _BYTES, b"")))
            elif thread is not None:
                t = _Message(thread, where)
                threads[uuid] = (
                    _signed(t.get(THREAD_PID, _VARINT, 0)),
                    _signed(t.get(THREAD_TID, _VARINT, 0)),
                    _text(t.get(THREAD_NAME, _BYTES, b"")),
                )
        event = packet.get(PACKET_TRACK_EVENT, _BYTES)
        if event is not None:
            ts = packet.get(PACKET_TIMESTAMP, _VARINT)
            if ts is None:
                raise TraceFormatError(f"{where}: corrupt (a track event without a timestamp)")
            timed.append((ts, len(timed), _Message(event, where)))
    if not packets:
        raise TraceFormatError(f"{where}: not a Perfetto trace (no packets)")

    out: list[dict[str, Any]] = []
    for pid, name in processes.values():
        out.append({"ph": "M", "name": "process_name", "pid": pid, "args": {"name": name}})
    for pid, tid, name in threads.values():
        out.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": name}})
    # Slices: each track's begins and ends pair up as a stack (they nest).
    open_slices: dict[int, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    slices: list[dict[str, Any]] = []
    counters: list[dict[str, Any]] = []
    for ts, _, e in sorted(timed, key=lambda item: item[:2]):
        kind, track = e.get(EVENT_TYPE, _VARINT), e.get(EVENT_TRACK_UUID, _VARINT)
        if kind == TYPE_SLICE_BEGIN and track in threads:
            pid, tid, _ = threads[track]
            args = dict(_annotation_of(a, where) for a in e.all(EVENT_DEBUG_ANNOTATIONS, _BYTES))
            name = _text(e.get(EVENT_NAME, _BYTES, b""))
            begin_us = _us(ts)
            s: dict[str, Any] = {"ph": "X", "name": name, "ts": begin_us, "pid": pid, "tid": tid, "args": args}
            categories = e.all(EVENT_CATEGORIES, _BYTES)
            if categories:
                s["cat"] = _text(categories[0])
            for ph, field in (("s", EVENT_FLOW_IDS), ("f", EVENT_TERMINATING_FLOW_IDS)):
                for flow in e.all(field, _FIXED64):
                    out.append(flow_event(ph, flow, begin_us, pid, tid))
            open_slices[track].append((ts, s))
        elif kind == TYPE_SLICE_END and track in threads:
            if not open_slices[track]:
                raise TraceFormatError(f"{where}: corrupt (a slice ends on a track where none began)")
            begin, s = open_slices[track].pop()
            s["dur"] = round((ts - begin) / 1000.0, 3)
            slices.append(s)
        elif kind == TYPE_COUNTER and track in counter_tracks:
            value = e.get(EVENT_DOUBLE_COUNTER_VALUE, _FIXED64)
            if value is not None:
                parent, name = counter_tracks[track]
                pid = processes.get(parent, (0, ""))[0]
                counters.append({"ph": "C", "name": name, "ts": _us(ts), "pid": pid, "args": {"value": _double_of(value)}})
    if any(open_slices.values()):
        raise TraceFormatError(f"{where}: truncated (a slice begins and never ends)")
    slices.sort(key=lambda s: (s["pid"], s["tid"], s["ts"], -s["dur"]))
    return out + slices + counters
