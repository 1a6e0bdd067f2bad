"""The harness itself: every way a CPython test gets a loop must give it the loop under test.

If a future Python changed how, say, IsolatedAsyncioTestCase makes its loop,
the CPython tests would quietly run on asyncio's loop and pass; these fail.
"""

from __future__ import annotations

import asyncio
import unittest

import cpython_harness as harness
import exclusions
from test.test_asyncio import utils as test_utils


def _run(case: unittest.TestCase) -> unittest.TestResult:
    result = unittest.TestResult()
    case.run(result)
    assert not result.errors, result.errors
    assert not result.failures, result.failures
    return result


def test_isolated_asyncio_testcase_runs_on_the_loop_under_test() -> None:
    seen = []

    class Case(unittest.IsolatedAsyncioTestCase):
        async def test(self) -> None:
            seen.append(asyncio.get_running_loop())

    _run(harness._adapt("test_x", Case)("test"))
    assert isinstance(seen[0], harness.LOOP_CLASS)


def test_asyncio_run_and_new_event_loop_use_the_loop_under_test() -> None:
    seen = []

    class Case(unittest.TestCase):
        def test(self) -> None:
            async def main() -> None:
                seen.append(asyncio.get_running_loop())

            asyncio.run(main())
            loop = asyncio.new_event_loop()
            seen.append(loop)
            loop.close()

    _run(harness._adapt("test_x", Case)("test"))
    assert len(seen) == 2
    assert all(isinstance(loop, harness.LOOP_CLASS) for loop in seen)


def test_create_event_loop_and_plain_new_test_loop_give_the_loop_under_test() -> None:
    seen = []

    class Case(test_utils.TestCase):
        def create_event_loop(self) -> asyncio.AbstractEventLoop:
            return asyncio.SelectorEventLoop()

        def test(self) -> None:
            loop = self.create_event_loop()
            seen.append(loop)
            loop.close()
            seen.append(self.new_test_loop())

    _run(harness._adapt("test_x", Case)("test"))
    assert len(seen) == 2
    assert all(isinstance(loop, harness.LOOP_CLASS) for loop in seen)


def test_new_test_loop_with_a_clock_script_is_not_applicable() -> None:
    class Case(test_utils.TestCase):
        def test(self) -> None:
            def gen():  # type: ignore[no-untyped-def]
                yield

            self.new_test_loop(gen)

    result = _run(harness._adapt("test_x", Case)("test"))
    assert [reason for _, reason in result.skipped] == [harness.NOT_APPLICABLE_TESTLOOP]


def test_list_ids_name_covered_modules() -> None:
    for listed in (exclusions.EXCLUDED, exclusions.NOT_APPLICABLE, exclusions.NOT_YET):
        for test_id in listed:
            assert harness.module_of(test_id) in harness.MODULES, test_id
            assert test_id.count(".") in (1, 2), test_id
