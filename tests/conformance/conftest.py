"""Applies exclusions.py to the generated CPython tests and prints the tally.

The tally (per CPython module: run / pass / fail / xfail-not-yet / excluded /
not applicable / skipped by CPython itself) is printed at the end of any
pytest run that included conformance tests; ``python tests/conformance/report.py``
runs just this part.
"""

from __future__ import annotations

import collections
import gc
import json
import os
import sys
from typing import Any

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # cpython_harness, exclusions

import cpython_harness
import exclusions

NA_PREFIX = "not applicable:"
EXCLUDED_PREFIX = "excluded:"

# nodeid -> conformance id ("test_tasks.CTask_CFuture_Tests.test_foo")
_ids: dict[str, str] = {}
# nodeid -> final category
_outcomes: dict[str, str] = {}


@pytest.fixture(autouse=True)
def blockbuster() -> None:
    """Off here (it overrides tests/conftest.py's): CPython's test_asyncio
    blocks the loop thread on purpose all over (blocking sockets and
    ``time.sleep`` in callbacks, test servers in the loop's thread), on
    asyncio's loop as on tidal's, so blockbuster would fail both loops alike
    and say nothing about tidal.  Tidal's own suite runs with it on."""


def _conformance_id(item: pytest.Item) -> str | None:
    cid = getattr(getattr(item, "cls", None), "_conformance_id", None)
    return f"{cid}.{item.name}" if cid else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        tid = _conformance_id(item)
        if tid is None:
            continue
        _ids[item.nodeid] = tid
        cls_id = tid.rpartition(".")[0]
        na = exclusions.NOT_APPLICABLE.get(tid) or exclusions.NOT_APPLICABLE.get(cls_id)
        if na:
            item.add_marker(pytest.mark.skip(reason=f"{NA_PREFIX} {na}"))
        elif tid in exclusions.EXCLUDED:
            item.add_marker(
                pytest.mark.skip(reason=f"{EXCLUDED_PREFIX} {exclusions.EXCLUDED[tid]}")
            )
        elif tid in exclusions.NOT_YET:
            item.add_marker(
                pytest.mark.xfail(strict=True, reason=exclusions.NOT_YET_REASON, run=True)
            )
        # CPython's suite runs under the default warning filters, and its
        # tests leave warnings behind on purpose without asserting them:
        # never-awaited coroutines (RuntimeWarning) and objects they abandon
        # surface in whichever later test the garbage collector happens to run
        # in, as PytestUnraisableExceptionWarning; DeprecationWarning comes from
        # the deprecated APIs they test.  The project-wide filterwarnings=error
        # would fail a random innocent test for them.  Shown, not fatal.
        item.add_marker(pytest.mark.filterwarnings("default"))


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2])
    else:
        reason = str(longrepr)
    return reason.removeprefix("Skipped: ")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.nodeid not in _ids:
        return
    prev = _outcomes.get(report.nodeid)
    if report.failed:
        # XPASS(strict) lands here too: a NOT_YET test that passed.
        _outcomes[report.nodeid] = "fail"
    elif prev == "fail":
        return
    elif report.skipped:
        if hasattr(report, "wasxfail"):
            _outcomes[report.nodeid] = "xfail"
        else:
            reason = _skip_reason(report)
            if reason.startswith(NA_PREFIX):
                _outcomes[report.nodeid] = "n/a"
            elif reason.startswith(EXCLUDED_PREFIX):
                _outcomes[report.nodeid] = "excluded"
            else:
                _outcomes[report.nodeid] = "skipped"
    elif report.when == "call" and report.passed:
        _outcomes[report.nodeid] = "pass"


_gc_frozen = False


def pytest_runtest_setup(item: pytest.Item) -> None:
    global _gc_frozen
    # (Skipped when the session froze the heap already: tests/conftest.py.)
    if item.nodeid in _ids and not _gc_frozen and gc.get_freeze_count() == 0:
        # Several CPython tests call gc.collect() a hundred times over (the
        # *_del_collect tests); each full collection walks every object pytest
        # and the collected suite hold, which made them most of the run time.
        # Freezing what exists before the tests start leaves collections only
        # the objects the tests themselves create.
        gc.collect()
        gc.freeze()
        _gc_frozen = True


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    global _gc_frozen
    # A CPython test that fails (or is an expected NOT_YET failure) skips its
    # own cleanup and leaves sockets and transports behind; collect them now,
    # while this test's warning filters apply, rather than in the next test's
    # gc.collect() (test_streams' test_unclosed_resource_warnings counts the
    # ResourceWarnings its own collect() produces).
    if _outcomes.get(item.nodeid) in ("fail", "xfail"):
        gc.collect()
    if _gc_frozen and (nextitem is None or nextitem.nodeid not in _ids):
        gc.unfreeze()
        _gc_frozen = False


COLUMNS = ["run", "pass", "fail", "xfail", "excluded", "n/a", "skipped"]


def tally() -> dict[str, collections.Counter[str]]:
    per_module: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for nodeid, outcome in _outcomes.items():
        counter = per_module[cpython_harness.module_of(_ids[nodeid])]
        counter[outcome] += 1
        if outcome in ("pass", "fail", "xfail"):
            counter["run"] += 1
    return per_module


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _outcomes:
        return
    per_module = tally()
    order = {m: i for i, m in enumerate(cpython_harness.MODULES)}
    tr = terminalreporter
    tr.section(
        f"CPython test_asyncio conformance: Python {cpython_harness.python_version()}, "
        f"loop under test: {cpython_harness.LOOP_UNDER_TEST}"
    )
    header = f"{'module':<22}" + "".join(f"{c:>9}" for c in COLUMNS)
    tr.write_line(header)
    total: collections.Counter[str] = collections.Counter()
    for mod in sorted(per_module, key=lambda m: order.get(m, 99)):
        counts = per_module[mod]
        total.update(counts)
        tr.write_line(f"{mod:<22}" + "".join(f"{counts[c]:>9}" for c in COLUMNS))
    tr.write_line(f"{'TOTAL':<22}" + "".join(f"{total[c]:>9}" for c in COLUMNS))
    tr.write_line(
        "run = pass + fail + xfail; xfail = NOT_YET (issue 4), strict; n/a = exercises "
        "asyncio's own loop (TestLoop etc.); skipped = skipped by CPython's own conditions"
    )
    out = os.environ.get("TIDAL_CONFORMANCE_JSON")
    if out:
        with open(out, "w") as f:
            json.dump(
                {
                    "python": cpython_harness.python_version(),
                    "loop": cpython_harness.LOOP_UNDER_TEST,
                    "modules": {
                        m: dict(per_module[m])
                        for m in sorted(per_module, key=lambda m: order.get(m, 99))
                    },
                    "failed": sorted(_ids[n] for n, o in _outcomes.items() if o == "fail"),
                },
                f,
                indent=1,
            )
