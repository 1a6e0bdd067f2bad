"""A user's code that imports tidal passes ``mypy --strict`` (py.typed, annotated public API).

mypy runs on the installed package, as a user's project sees it: a missing
py.typed, an unannotated public function or an ``Any`` leaking out of the
public API fails this test.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

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


@pytest.fixture(scope="module")
def mypy_output(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One ``mypy --strict`` run (its start-up is most of its time) over the
    user's code as is (user.py) and with the error added (wrong.py)."""
    tmp_path = tmp_path_factory.mktemp("typing")
    (tmp_path / "user.py").write_text(USER_CODE)
    (tmp_path / "wrong.py").write_text(USER_CODE + WRONG)
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "user.py", "wrong.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode in (0, 1) and not proc.stderr, proc.stdout + proc.stderr
    return proc.stdout


def test_user_code_passes_mypy_strict(mypy_output: str) -> None:
    assert not any(line.startswith("user.py:") for line in mypy_output.splitlines()), mypy_output
    # ... and mypy checked it: the only error is the one wrong.py adds.
    assert mypy_output.endswith("Found 1 error in 1 file (checked 2 source files)\n"), mypy_output


def test_mypy_sees_tidal_types(mypy_output: str) -> None:
    errors = [line for line in mypy_output.splitlines() if line.startswith("wrong.py:")]
    assert len(errors) == 1, mypy_output
    assert 'Incompatible types in assignment (expression has type "int"' in errors[0]
