"""tidal's loop is its own: no import of asyncio's private loop implementation."""

import ast
import pathlib

import sys

import tidal

FORBIDDEN = {
    "base_events",
    "selector_events",
    "unix_events",
    "sslproto",
    "base_subprocess",
    "proactor_events",
    "windows_events",
}
SRC = pathlib.Path(tidal.__file__).parent


# Names taken from those modules for their identity, not their work:
# run_until_complete's done callback (libraries find the task asyncio.run()
# runs by it: AnyIO's root task).
ALLOWED = {("base_events", "_run_until_complete_cb")}


def _imported_asyncio_modules(tree: ast.AST) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("asyncio.") and all(
                (node.module.split(".")[1], alias.name) in ALLOWED for alias in node.names
            ):
                continue
            if node.module == "asyncio":
                found.update(alias.name for alias in node.names)
            elif node.module.startswith("asyncio."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("asyncio."):
                    found.add(alias.name.split(".")[1])
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "asyncio":
                found.add(node.attr)
    return found


def test_no_private_asyncio_loop_modules():
    offenders = {}
    for path in SRC.rglob("*.py"):
        bad = _imported_asyncio_modules(ast.parse(path.read_text())) & FORBIDDEN
        if bad:
            offenders[str(path.relative_to(SRC))] = sorted(bad)
    assert offenders == {}


def test_loop_class_derives_from_abstract_loop_only():
    import asyncio

    mro = tidal.EventLoop.__mro__
    # tidal's own bases are allowed: _LoopCore holds the hot state (a cdef
    # class when compiled, a plain class interpreted; the MRO is the same),
    # and from 3.12 _LoopDict gives it an instance dict of its own.
    own = [cls for cls in mro if cls.__module__.startswith("tidal.")]
    dict_base = [tidal._loop._LoopDict] if sys.version_info >= (3, 12) else []
    assert own == [tidal.EventLoop, *dict_base, tidal._loop._LoopCore]
    others = [cls for cls in mro if cls not in own]
    assert others == [asyncio.AbstractEventLoop, object]
