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
