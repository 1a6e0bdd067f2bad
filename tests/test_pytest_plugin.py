"""`pytest --tidal`: the real pytest-asyncio and anyio plugins, in a pytest run of their own.

Each test writes a small suite and runs it in a child pytest process (the
plugins keep module-level state, so a child is the honest way to see what a
user's run does), once without ``--tidal`` (asyncio's own loop, untouched)
and once with it (tidal's loop everywhere the suite did not choose its own).
"""

from __future__ import annotations

import re
import sys

import pytest

pytest_plugins = ["pytester"]

# Each test in the child suite records which loop class ran it.
_SUITE = '''
import asyncio

import anyio
import pytest
import pytest_asyncio


def loop_name():
    loop = asyncio.get_running_loop()
    return type(loop).__module__.split(".")[0] + "." + type(loop).__name__


@pytest.mark.asyncio
async def test_asyncio_marked():
    print("LOOP asyncio_marked", loop_name())


@pytest_asyncio.fixture
async def fixture_loop():
    return loop_name()


@pytest.mark.asyncio
async def test_asyncio_fixture(fixture_loop):
    assert fixture_loop == loop_name()
    print("LOOP asyncio_fixture", loop_name())


@pytest.mark.anyio
async def test_anyio_default():
    print("LOOP anyio_default", loop_name())


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", [("asyncio", {"debug": True})])
async def test_anyio_with_options():
    assert asyncio.get_running_loop().get_debug()
    print("LOOP anyio_options", loop_name())


def _own_loop():
    return asyncio.SelectorEventLoop()


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", [("asyncio", {"loop_factory": _own_loop})])
async def test_anyio_own_factory():
    print("LOOP anyio_own", loop_name())


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
async def anyio_fixture_loop(anyio_backend):
    return loop_name()


@pytest.mark.anyio
async def test_anyio_fixture(anyio_fixture_loop):
    assert anyio_fixture_loop == loop_name()
    print("LOOP anyio_fixture", loop_name())
'''


def _loops(result: pytest.RunResult) -> dict[str, str]:
    # -q prints each test's dot before what the next one prints.
    return dict(re.findall(r"LOOP (\S+) (\S+)", "\n".join(result.outlines)))


def _run(pytester: pytest.Pytester, *args: str) -> dict[str, str]:
    pytester.makepyfile(test_suite=_SUITE)
    # -s: the tests print the loop they ran on; -p no:cacheprovider keeps
    # pytester's directory clean; the parent's own -W error is not inherited.
    result = pytester.runpytest_subprocess("-s", "-q", "-p", "no:cacheprovider", *args)
    result.assert_outcomes(passed=6)
    return _loops(result)


def test_without_option_nothing_changes(pytester: pytest.Pytester) -> None:
    loops = _run(pytester)
    assert set(loops.values()) == {"asyncio._UnixSelectorEventLoop"}, loops


def test_option_runs_pytest_asyncio_and_anyio_on_tidal(pytester: pytest.Pytester) -> None:
    loops = _run(pytester, "--tidal")
    assert loops.pop("anyio_own") == "asyncio._UnixSelectorEventLoop"  # the suite's own choice
    assert loops == dict.fromkeys(
        ["asyncio_marked", "asyncio_fixture", "anyio_default", "anyio_options", "anyio_fixture"],
        "tidal.EventLoop",
    )


def test_option_is_listed_in_help(pytester: pytest.Pytester) -> None:
    # In this process: --help runs no test, so no plugin's state is touched
    # (pytest-asyncio and anyio stay out: their options are not the point).
    result = pytester.runpytest("-p", "no:asyncio", "-p", "no:anyio", "--help")
    result.stdout.fnmatch_lines(["*--tidal*run pytest-asyncio tests and anyio*"])


def test_imported_before_pytest_is_no_warning(pytester: pytest.Pytester) -> None:
    # tidal imported before pytest starts (a sitecustomize putting tidal's
    # policy in place) in a suite that makes every warning an error: pytest
    # marks tidal's package for assertion rewriting (it ships a pytest11
    # plugin) and must not warn that it was already imported (only that
    # warning is made an error: other installed plugins warn of their own
    # configuration, which is not the point here).  The probe
    # dist-info makes pytest see that plugin whichever way tidal is installed.
    pytester.makepyfile(test_one="def test_one():\n    assert True\n")
    dist = pytester.path / "tidal_probe-0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tidal-probe\nVersion: 0\n")
    (dist / "entry_points.txt").write_text("[pytest11]\ntidal = tidal.pytest_plugin\n")
    (dist / "RECORD").write_text("tidal/__init__.py,,\n")
    args = ["-q", "-p", "no:cacheprovider", "-W", "error::pytest.PytestAssertRewriteWarning"]
    code = f"import sys, tidal, pytest\nsys.exit(pytest.main({args + ['test_one.py']!r}))\n"
    result = pytester.run(sys.executable, "-c", code)
    assert result.ret == 0, "\n".join(result.outlines + result.errlines)
    result.assert_outcomes(passed=1)
