"""The C views of slotted classes name the same fields as the classes themselves.

The compiled build reads asyncio's handles and tidal's stream transport as C
structs.  Each struct is generated from one X-macro list in a header
(``_handle_layout.h``, ``transports/_stream_layout.h``), and Cython is told
the same fields in a ``.pxd``; at import the compiled modules check the
offsets, but only where they are compiled.  These tests read the three lists
as text, so a field added to one and not the others fails here in both
builds.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

import tidal
from tidal.transports._stream_slots import StreamSlots

SRC = Path(tidal.__file__).parent


def xmacro(header: str, name: str) -> list[str]:
    """The names listed by `#define name(X...) X(a) X(b) T(type, c) ...` in `header`."""
    text = (SRC / header).read_text()
    match = re.search(rf"#define {name}\(X(?:, T)?\)((?:.*\\\n)*.*)", text)
    assert match, f"{name} not in {header}"
    return re.findall(r"(?:X\(|T\([^,]+, )(\w+)\)", match.group(1))


def pxd_fields(pxd: str, cls: str) -> list[str]:
    """The `cdef <type> name` fields of the ctypedef class `cls` in `pxd`."""
    text = (SRC / pxd).read_text()
    match = re.search(rf"ctypedef class [\w.]*\.{cls}\b.*:\n((?:        cdef \w+ \w+\n)+)", text)
    assert match, f"{cls} not in {pxd}"
    return re.findall(r"cdef \w+ (\w+)", match.group(1))


def test_stream_fields_agree() -> None:
    own = sorted(StreamSlots.__annotations__)
    assert set(StreamSlots.__slots__) == {*own, "__weakref__"}
    # asyncio's BaseTransport's slot first, then StreamSlots' own in CPython's order.
    expected = ["_extra", *own]
    assert xmacro("transports/_stream_layout.h", "TIDAL_STREAM_SLOTS") == expected
    assert pxd_fields("transports/_stream_layout.pxd", "StreamSlots") == expected


@pytest.mark.parametrize("cls", [asyncio.Handle, asyncio.TimerHandle])
def test_handle_fields_agree(cls: type) -> None:
    handle_slots = sorted(set(asyncio.Handle.__slots__) - {"__weakref__"})  # type: ignore[attr-defined]
    assert xmacro("_handle_layout.h", "TIDAL_HANDLE_SLOTS") == handle_slots
    assert pxd_fields("_handle_layout.pxd", "Handle") == handle_slots
    if cls is asyncio.TimerHandle:
        own = sorted(set(cls.__slots__))  # type: ignore[attr-defined]
        assert pxd_fields("_handle_layout.pxd", "TimerHandle") == own
