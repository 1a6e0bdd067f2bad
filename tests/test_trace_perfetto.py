"""tidal.trace's Perfetto protobuf output (.pftrace), read back by an independent decoder.

The decoder is the protobuf package's, given the few Perfetto messages the
writer uses (field numbers as in Perfetto's protos/perfetto/trace/), built
here as a descriptor: nothing of tidal's writer is reused to read.  The
protobuf trace of a run must hold the same tracks, slices, flows and counter
values as the JSON trace of the same run.

Tracing is tidal's: asyncio's loop has no instruments.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import Counter, defaultdict
from typing import Any

import pytest

import tidal
from tidal import trace

descriptor_pb2 = pytest.importorskip("google.protobuf.descriptor_pb2")
from google.protobuf import descriptor_pool, message_factory  # noqa: E402

# name -> [(field name, number, type, label, message type)]
_O, _R = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL, descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
_T = descriptor_pb2.FieldDescriptorProto
SCHEMA = {
    "Trace": [("packet", 1, _T.TYPE_MESSAGE, _R, "TracePacket")],
    "TracePacket": [
        ("timestamp", 8, _T.TYPE_UINT64, _O, None),
        ("trusted_packet_sequence_id", 10, _T.TYPE_UINT32, _O, None),
        ("track_event", 11, _T.TYPE_MESSAGE, _O, "TrackEvent"),
        ("sequence_flags", 13, _T.TYPE_UINT32, _O, None),
        ("track_descriptor", 60, _T.TYPE_MESSAGE, _O, "TrackDescriptor"),
    ],
    "TrackDescriptor": [
        ("uuid", 1, _T.TYPE_UINT64, _O, None),
        ("name", 2, _T.TYPE_STRING, _O, None),
        ("process", 3, _T.TYPE_MESSAGE, _O, "ProcessDescriptor"),
        ("thread", 4, _T.TYPE_MESSAGE, _O, "ThreadDescriptor"),
        ("parent_uuid", 5, _T.TYPE_UINT64, _O, None),
        ("counter", 8, _T.TYPE_MESSAGE, _O, "CounterDescriptor"),
    ],
    "ProcessDescriptor": [("pid", 1, _T.TYPE_INT32, _O, None), ("process_name", 6, _T.TYPE_STRING, _O, None)],
    "ThreadDescriptor": [
        ("pid", 1, _T.TYPE_INT32, _O, None),
        ("tid", 2, _T.TYPE_INT32, _O, None),
        ("thread_name", 5, _T.TYPE_STRING, _O, None),
    ],
    "CounterDescriptor": [],
    "TrackEvent": [
        ("debug_annotations", 4, _T.TYPE_MESSAGE, _R, "DebugAnnotation"),
        ("type", 9, _T.TYPE_INT32, _O, None),  # an enum on the wire: a varint
        ("track_uuid", 11, _T.TYPE_UINT64, _O, None),
        ("categories", 22, _T.TYPE_STRING, _R, None),
        ("name", 23, _T.TYPE_STRING, _O, None),
        ("double_counter_value", 44, _T.TYPE_DOUBLE, _O, None),
        ("flow_ids", 47, _T.TYPE_FIXED64, _R, None),
        ("terminating_flow_ids", 48, _T.TYPE_FIXED64, _R, None),
    ],
    "DebugAnnotation": [
        ("bool_value", 2, _T.TYPE_BOOL, _O, None),
        ("int_value", 4, _T.TYPE_INT64, _O, None),
        ("double_value", 5, _T.TYPE_DOUBLE, _O, None),
        ("string_value", 6, _T.TYPE_STRING, _O, None),
        ("name", 10, _T.TYPE_STRING, _O, None),
    ],
}
SLICE_BEGIN, SLICE_END, COUNTER = 1, 2, 4


def _trace_class() -> Any:
    proto = descriptor_pb2.FileDescriptorProto(name="tidal_test_perfetto.proto", package="pt", syntax="proto2")
    for name, fields in SCHEMA.items():
        message = proto.message_type.add(name=name)
        for field, number, kind, label, type_name in fields:
            f = message.field.add(name=field, number=number, type=kind, label=label)
            if type_name:
                f.type_name = f".pt.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("pt.Trace"))


def _decoded(data: bytes) -> dict[str, Any]:
    """What the protobuf trace says: tracks, slices, flows, counter values."""
    parsed = _trace_class().FromString(data)
    names: dict[int, str] = {}
    counter_tracks: set[int] = set()
    stacks: dict[int, list[Any]] = defaultdict(list)
    slices = []
    flow_starts: dict[int, tuple[str, str, int]] = {}
    flow_ends: dict[int, tuple[str, str, int]] = {}
    counters: Counter[tuple[str, float]] = Counter()
    last_ts = 0
    for packet in parsed.packet:
        assert packet.trusted_packet_sequence_id == 1
        if packet.HasField("track_descriptor"):
            d = packet.track_descriptor
            names[d.uuid] = d.thread.thread_name if d.HasField("thread") else d.name or d.process.process_name
            if d.HasField("counter"):
                counter_tracks.add(d.uuid)
            continue
        e = packet.track_event
        assert packet.timestamp >= last_ts, "events in time order"
        last_ts = packet.timestamp
        track = names[e.track_uuid]  # every event's track was described before it
        if e.type == SLICE_BEGIN:
            args = {}
            for a in e.debug_annotations:
                (kind,) = [k for k in ("bool_value", "int_value", "double_value", "string_value") if a.HasField(k)]
                args[a.name] = getattr(a, kind)
            stacks[e.track_uuid].append((e.name, packet.timestamp, list(e.flow_ids), list(e.terminating_flow_ids), args))
        elif e.type == SLICE_END:
            name, begin, starts, ends, args = stacks[e.track_uuid].pop()
            slices.append((track, name, begin, packet.timestamp, args.get("at")))
            for flow in starts:
                assert flow not in flow_starts
                flow_starts[flow] = (track, name, begin)
            for flow in ends:
                assert flow not in flow_ends
                flow_ends[flow] = (track, name, begin)
        else:
            assert e.type == COUNTER and e.track_uuid in counter_tracks
            counters[(track, e.double_counter_value)] += 1
    assert not any(stacks.values()), "every slice ends"
    return {"slices": slices, "starts": flow_starts, "ends": flow_ends, "counters": counters}


def _from_json(data: dict[str, Any]) -> dict[str, Any]:
    """The same, read from the JSON trace."""
    events = data["traceEvents"]
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e.get("name") == "thread_name"}
    ns = lambda us: max(0, round(us * 1000))  # noqa: E731
    xs = [e for e in events if e["ph"] == "X"]
    slices = [
        (names[(e["pid"], e["tid"])], e["name"], ns(e["ts"]), ns(e["ts"] + e["dur"]), e["args"].get("at")) for e in xs
    ]

    def around(e: dict[str, Any]) -> tuple[str, str, int]:
        inside = [
            s for s in xs
            if (s["pid"], s["tid"]) == (e["pid"], e["tid"]) and s["ts"] - 1e-6 <= e["ts"] <= s["ts"] + s["dur"] + 1e-6
        ]
        s = max(inside, key=lambda s: (s["ts"], -s["dur"]))  # the innermost
        return names[(s["pid"], s["tid"])], s["name"], ns(s["ts"])

    starts = {e["id"]: around(e) for e in events if e["ph"] == "s"}
    ends = {e["id"]: around(e) for e in events if e["ph"] == "f"}
    counters: Counter[tuple[str, float]] = Counter(
        (e["name"], float(v)) for e in events if e["ph"] == "C" for v in e["args"].values()
    )
    return {"slices": slices, "starts": starts, "ends": ends, "counters": counters}


async def _worker(n: int, q: asyncio.Queue[int]) -> None:
    for i in range(n):
        await asyncio.sleep(0.0005)
        await q.put(i)


async def _program() -> list[int]:
    q: asyncio.Queue[int] = asyncio.Queue()
    workers = [asyncio.create_task(_worker(10, q), name=f"worker-{k}") for k in range(3)]
    got = [await q.get() for _ in range(30)]
    await asyncio.gather(*workers)
    return sorted(got)


def test_the_program_runs_the_same_on_both_loops(loop: Any) -> None:
    assert loop.run_until_complete(_program()) == sorted(list(range(10)) * 3)


def test_a_pftrace_holds_what_the_json_trace_of_the_same_run_holds(loop_name: str, tmp_path: Any) -> None:
    if loop_name == "asyncio":
        pytest.skip("tidal.trace: asyncio's loop has no instruments")
    session = trace.start()
    try:
        tidal.run(_program())
        json_path = session.write(str(tmp_path / "t.json"))
        pf_path = session.write(str(tmp_path / "t.pftrace"))
    finally:
        trace.stop()
    with open(json_path) as f:
        expected = _from_json(json.load(f))
    with open(pf_path, "rb") as f:
        got = _decoded(f.read())
    assert Counter(got["slices"]) == Counter(expected["slices"])
    assert {"worker-0", "worker-1", "worker-2", "I/O waits", "callbacks"} <= {s[0] for s in got["slices"]}
    # Every flow joins the same two slices in both: its waker's and the step it woke.
    assert expected["starts"] and got["starts"] == expected["starts"]
    assert got["ends"] == expected["ends"]
    assert got["counters"] == expected["counters"]


def test_the_command_line_writes_a_pftrace(loop_name: str, tmp_path: Any) -> None:
    if loop_name == "asyncio":
        pytest.skip("tidal.trace: asyncio's loop has no instruments")
    script = tmp_path / "prog.py"
    script.write_text(
        "import asyncio\n"
        "async def main():\n"
        "    await asyncio.gather(*(asyncio.create_task(asyncio.sleep(0.001), name=f't{i}') for i in range(3)))\n"
        "asyncio.run(main())\n"
    )
    out = tmp_path / "run.pftrace"
    proc = subprocess.run(
        [sys.executable, "-m", "tidal", "trace", "-o", str(out), str(script)],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    got = _decoded(out.read_bytes())
    assert {"t0", "t1", "t2"} <= {s[0] for s in got["slices"]}
