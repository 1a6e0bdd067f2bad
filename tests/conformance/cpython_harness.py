"""Run the running interpreter's own ``test.test_asyncio`` against tidal's loop.

"tidal behaves as asyncio" is defined by CPython's test suite, so we do not copy
it: we import the installed copy (each Python ships the one matching its
asyncio) and re-point every place where a test gets its loop at tidal.

How a CPython test gets its loop, and how we redirect it
--------------------------------------------------------
* ``create_event_loop()`` (EventLoopTestsMixin, BaseSockTestsMixin) and
  ``new_loop()`` (FunctionalTestCaseMixin: test_server, test_buffered_proto):
  overridden to return ``tidal.new_event_loop()``.
* ``create_policy()`` (test_unix_events.PolicyTests): tidal's policy.
* ``asyncio.new_event_loop()``, ``asyncio.run()``, ``asyncio.Runner`` and
  ``unittest.IsolatedAsyncioTestCase`` all ask the event loop policy: every
  generated class installs ``tidal.EventLoopPolicy()`` around its whole run
  (setUp, test, tearDown, cleanups) and resets it afterwards.
* ``self.new_test_loop()`` builds ``test_utils.TestLoop``, asyncio's own
  BaseEventLoop with a scripted fake clock.  Called *without* a clock script
  (most setUp methods: test_tasks, test_futures) the fake clock never moves and
  the loop is just "a loop", so tidal's loop stands in.  Called *with* a clock
  script, the test is about time on asyncio's loop: it is skipped as "not
  applicable" (counted on its own line in the report, never as a pass).
* A few setUp methods construct asyncio's loop classes directly
  (``asyncio.BaseEventLoop()`` with mocked internals, ``asyncio.SelectorEventLoop()``);
  the classes in ``OWN_LOOP_IN_SETUP`` get a setUp that builds tidal's loop instead,
  test_runners' mocked-loop factory gets a tidal one that keeps its bookkeeping.

What is not run, and why, is in ``exclusions.py`` (one list per category).

``TIDAL_CONFORMANCE_LOOP=asyncio`` points the same machinery at asyncio's own
loop: every test must pass then (that is how the harness itself is checked,
and how to tell a tidal bug from a harness bug).
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import types
import unittest
from collections.abc import Callable
from typing import Any

from test.test_asyncio import utils as test_utils

LOOP_UNDER_TEST = os.environ.get("TIDAL_CONFORMANCE_LOOP", "tidal")

if LOOP_UNDER_TEST == "asyncio":
    # Not asyncio.new_event_loop: that asks the policy, which some tests replace.
    new_event_loop: Callable[[], asyncio.AbstractEventLoop] = asyncio.SelectorEventLoop

    def new_policy() -> asyncio.AbstractEventLoopPolicy:
        return asyncio.DefaultEventLoopPolicy()

    LOOP_CLASS: type = asyncio.SelectorEventLoop
else:
    import tidal

    new_event_loop = tidal.new_event_loop

    def new_policy() -> asyncio.AbstractEventLoopPolicy:
        return tidal.EventLoopPolicy()

    LOOP_CLASS = tidal.EventLoop

# The CPython modules covered, in the order the report lists them.
MODULES = [
    "test_events",
    "test_sock_lowlevel",
    "test_streams",
    "test_server",
    "test_futures",
    "test_futures2",
    "test_tasks",
    "test_locks",
    "test_queues",
    "test_taskgroups",
    "test_timeouts",
    "test_waitfor",
    "test_runners",
    "test_pep492",
    "test_context",
    "test_protocols",
    "test_buffered_proto",
    "test_unix_events",
    "test_ssl",
    "test_sslproto",
    "test_sendfile",
    "test_subprocess",
    "test_threads",
    "test_eager_task_factory",  # 3.12+
    "test_staggered",  # 3.13+
]

# Classes not generated at all: the same tests as a class that is generated,
# differing only in which selector asyncio's own loop is given (tidal picks its
# poller itself), or Windows-only.
NOT_GENERATED = {
    "test_events.EPollEventLoopTests": "same tests as SelectEventLoopTests",
    "test_events.PollEventLoopTests": "same tests as SelectEventLoopTests",
    "test_events.KqueueEventLoopTests": "same tests as SelectEventLoopTests",
    "test_sock_lowlevel.EPollEventLoopTests": "same tests as SelectEventLoopTests",
    "test_sock_lowlevel.PollEventLoopTests": "same tests as SelectEventLoopTests",
    "test_sock_lowlevel.KqueueEventLoopTests": "same tests as SelectEventLoopTests",
    "test_server.ProactorStartServerTests": "Windows only",
    "test_buffered_proto.BufferedProtocolProactorTests": "Windows only",
    "test_sslproto.ProactorStartTLSTests": "Windows only",
    "test_sendfile.EPollEventLoopTests": "same tests as SelectEventLoopTests",
    "test_sendfile.PollEventLoopTests": "same tests as SelectEventLoopTests",
    "test_sendfile.KqueueEventLoopTests": "same tests as SelectEventLoopTests",
    # tidal watches its children itself (pidfd, else a thread): whichever
    # asyncio child watcher the test installs goes unused, so one copy runs.
    "test_subprocess.SubprocessSafeWatcherTests": "same tests as SubprocessThreadedWatcherTests",
    "test_subprocess.SubprocessFastWatcherTests": "same tests as SubprocessThreadedWatcherTests",
    "test_subprocess.SubprocessPidfdWatcherTests": "same tests as SubprocessThreadedWatcherTests",
    "test_subprocess.SubprocessMultiLoopWatcherTests": "same tests (3.11; skipped there anyway)",
    "test_subprocess.SubprocessProactorTests": "Windows only",
}

# The one kept copy of the per-selector classes gets a name that says what it
# runs now: ids in exclusions.py use these names.
RENAMED = {
    "test_events.SelectEventLoopTests": "EventLoopTests",
    "test_sock_lowlevel.SelectEventLoopTests": "SockTests",
    "test_subprocess.SubprocessThreadedWatcherTests": "SubprocessTests",
    "test_sslproto.SelectorStartTLSTests": "StartTLSTests",
    "test_sendfile.SelectEventLoopTests": "SendfileTests",
}

# setUp builds asyncio's own loop class directly (then only uses public API
# through it): build tidal's instead.  Each of these setUps is exactly
# "super().setUp(); self.loop = <asyncio loop>; self.set_event_loop(self.loop)".
OWN_LOOP_IN_SETUP = {
    "test_pep492.BaseTest",  # asyncio.BaseEventLoop() with a mocked selector
    "test_unix_events.SelectorEventLoopUnixSocketTests",  # asyncio.SelectorEventLoop()
}

NOT_APPLICABLE_TESTLOOP = (
    "not applicable: drives test_utils.TestLoop's scripted fake clock (asyncio's own loop)"
)


def _module(name: str) -> types.ModuleType:
    return importlib.import_module("test.test_asyncio." + name)


class _TidalAdapter:
    """Put first in each generated class's MRO; redirects loop creation to tidal."""

    _conformance_id = ""

    def run(self, result: Any = None) -> Any:
        # Covers asyncio.new_event_loop/run/Runner and IsolatedAsyncioTestCase,
        # for the whole life of the test including its cleanups.
        asyncio.set_event_loop_policy(new_policy())
        # Under CPython's own runner one policy serves a whole module, and the
        # tests before this one have called set_event_loop(None) on it: "no
        # current loop" then raises instead of implicitly creating one, and
        # some tests (test_subprocess's pidfd test) depend on that.
        asyncio.set_event_loop(None)
        try:
            return super().run(result)  # type: ignore[misc]
        finally:
            asyncio.set_event_loop_policy(None)

    def new_test_loop(self, gen: Any = None) -> asyncio.AbstractEventLoop:
        if gen is not None:
            raise unittest.SkipTest(NOT_APPLICABLE_TESTLOOP)
        loop = new_event_loop()
        self.set_event_loop(loop)  # type: ignore[attr-defined]
        return loop


def _create_event_loop(self: Any) -> asyncio.AbstractEventLoop:
    return new_event_loop()


def _create_policy(self: Any) -> asyncio.AbstractEventLoopPolicy:
    return new_policy()


def _own_loop_setup(self: Any) -> None:
    test_utils.TestCase.setUp(self)
    self.loop = new_event_loop()
    self.set_event_loop(self.loop)


class _ShutdownTrackingLoop(LOOP_CLASS):  # type: ignore[misc,valid-type]
    """The loop under test, noting that asyncio.run/Runner shut its asyncgens down."""

    shutdown_ag_run = False

    async def shutdown_asyncgens(self) -> None:
        self.shutdown_ag_run = True
        await super().shutdown_asyncgens()


def _runners_new_loop(self: Any) -> asyncio.AbstractEventLoop:
    # test_runners' BaseTest gives asyncio.run a mocked asyncio.BaseEventLoop
    # and checks in tearDown that the runner closed it and ran
    # shutdown_asyncgens.  Keep that check, on a real loop of the kind under
    # test (a subclass, not attributes set on an instance: a compiled loop
    # class has no instance __dict__).
    return _ShutdownTrackingLoop()


def _adapt(modname: str, cls: type) -> type:
    cid = f"{modname}.{cls.__name__}"
    name = RENAMED.get(cid, cls.__name__)
    ns: dict[str, Any] = {
        "_conformance_id": f"{modname}.{name}",
        "__module__": __name__,
        "__qualname__": f"{modname}__{name}",
        "__doc__": cls.__doc__,
    }
    if hasattr(cls, "create_event_loop"):
        ns["create_event_loop"] = _create_event_loop
    if hasattr(cls, "new_loop"):
        ns["new_loop"] = _runners_new_loop if modname == "test_runners" else _create_event_loop
    if hasattr(cls, "create_policy"):  # test_unix_events.PolicyTests
        ns["create_policy"] = _create_policy
    for base in cls.__mro__:
        if f"{base.__module__.rpartition('.')[2]}.{base.__name__}" in OWN_LOOP_IN_SETUP:
            ns["setUp"] = _own_loop_setup
            break
    return type(f"{modname}__{name}", (_TidalAdapter, cls), ns)


def _import_failure(modname: str, exc: BaseException) -> type:
    def test_import(self: Any) -> None:
        raise AssertionError(f"cannot import test.test_asyncio.{modname}: {exc!r}")

    return type(
        f"{modname}__Import",
        (unittest.TestCase,),
        {
            "test_import": test_import,
            "_conformance_id": f"{modname}.Import",
            "__module__": __name__,
        },
    )


def generated_classes() -> dict[str, type]:
    """Adapted TestCase classes, keyed by the name to expose them under."""
    out: dict[str, type] = {}
    for modname in MODULES:
        try:
            mod = _module(modname)
        except unittest.SkipTest:
            continue
        except ModuleNotFoundError as exc:
            if exc.name == f"test.test_asyncio.{modname}":
                continue  # not in this Python's suite (e.g. test_staggered before 3.13)
            raise
        except Exception as exc:  # noqa: BLE001 - one broken module must not hide the others
            klass = _import_failure(modname, exc)
            out[klass.__name__] = klass
            continue
        for obj in list(vars(mod).values()):
            if not (
                isinstance(obj, type)
                and issubclass(obj, unittest.TestCase)
                and obj.__module__ == mod.__name__
            ):
                continue
            if f"{modname}.{obj.__name__}" in NOT_GENERATED:
                continue
            if not unittest.TestLoader().getTestCaseNames(obj):
                continue  # a base class only (e.g. test_runners.BaseTest)
            klass = _adapt(modname, obj)
            out[klass.__name__] = klass
    return out


def module_of(conformance_id: str) -> str:
    return conformance_id.split(".", 1)[0]


def python_version() -> str:
    return ".".join(map(str, sys.version_info[:3]))
