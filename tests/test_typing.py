"""A user's code that imports tidal passes ``mypy --strict`` (py.typed, annotated public API).

mypy runs on the installed package, as a user's project sees it: a missing
py.typed, an unannotated public function or an ``Any`` leaking out of the
public API fails this test.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

USER_CODE = '''
import asyncio
from collections.abc import Generator
from typing import Any

import tidal
from tidal import EventLoop


async def main() -> int:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[int] = loop.create_future()
    loop.call_soon(fut.set_result, 1)
    return await fut


def counter(n: int) -> Generator[Any, Any, int]:
    yield asyncio.sleep(0)
    return n


async def with_generators() -> int:
    task: asyncio.Task[int] = tidal.spawn(counter, 2)
    one: int = await tidal.generator_task(counter(1))
    return one + await task


result: int = tidal.run(main())
both: int = tidal.run(with_generators(), debug=False)
loop: EventLoop = tidal.new_event_loop()
loop.close()
factory: "type[EventLoop]" = tidal.EventLoop
with asyncio.Runner(loop_factory=tidal.new_event_loop) as runner:
    again: int = runner.run(main())
policy: asyncio.AbstractEventLoopPolicy = tidal.EventLoopPolicy()
compiled: bool = tidal.COMPILED
version: str = tidal.__version__
'''

# An error mypy must report in the same file: proves the check is live.
WRONG = "\nwrong: str = tidal.run(main())\n"


def _mypy(tmp_path: Path, code: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "user.py").write_text(code)
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "user.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_user_code_passes_mypy_strict(tmp_path: Path) -> None:
    proc = _mypy(tmp_path, USER_CODE)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_sees_tidal_types(tmp_path: Path) -> None:
    proc = _mypy(tmp_path, USER_CODE + WRONG)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert 'Incompatible types in assignment (expression has type "int"' in proc.stdout
