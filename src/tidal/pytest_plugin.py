"""pytest plugin: ``pytest --tidal`` runs a suite's asyncio tests on tidal's loop.

Installed with tidal (the ``pytest11`` entry point) and inert until asked:
without ``--tidal`` it adds the option and nothing else, so a suite that has
tidal installed but does not ask runs exactly as before.

With ``--tidal``:

* every pytest-asyncio test (pytest-asyncio >= 1.4) runs on a tidal loop,
  through pytest-asyncio's own ``pytest_asyncio_loop_factories`` hook (so its
  loop scopes, fixtures and ``loop_factories`` marks keep working);
* every anyio test on the asyncio backend runs on a tidal loop, through the
  ``loop_factory`` backend option anyio's test runner takes: the value of the
  ``anyio_backend`` fixture gets ``loop_factory=tidal.new_event_loop`` added
  unless the suite already chose a loop factory (or uvloop) of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from typing import Any

import pytest

_OPTION = "--tidal"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("tidal").addoption(
        _OPTION,
        action="store_true",
        default=False,
        help="run pytest-asyncio tests and anyio's asyncio-backend tests on tidal's event loop",
    )


def pytest_configure(config: pytest.Config) -> None:
    # Registered only when asked: pytest-asyncio treats any implementation of
    # its hook as "use these factories", even one that would return None.
    if config.getoption("tidal", default=False):
        config.pluginmanager.register(_TidalLoops(), "tidal-loops")


def _new_loop() -> Any:
    import tidal

    return tidal.new_event_loop()


def _with_tidal(backend: Any) -> Any:
    """The anyio_backend value with tidal's loop factory, where it is asyncio's and unset."""
    if backend == "asyncio":
        return ("asyncio", {"loop_factory": _new_loop})
    if (
        isinstance(backend, tuple)
        and len(backend) == 2
        and backend[0] == "asyncio"
        and isinstance(backend[1], dict)
        and "loop_factory" not in backend[1]
        and not backend[1].get("use_uvloop")
    ):
        return ("asyncio", {**backend[1], "loop_factory": _new_loop})
    return backend  # trio, or a loop the suite chose itself: left alone


class _TidalLoops:
    """The hooks that do the work, registered by ``--tidal`` only."""

    # optionalhook: pytest-asyncio may not be installed; then this is unused.
    @pytest.hookimpl(optionalhook=True)
    def pytest_asyncio_loop_factories(
        self, config: pytest.Config, item: pytest.Item
    ) -> Mapping[str, Callable[[], Any]]:
        return {"tidal": _new_loop}

    @pytest.hookimpl(hookwrapper=True)
    def pytest_fixture_setup(
        self, fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
    ) -> Generator[None, None, None]:
        if fixturedef.argname != "anyio_backend":
            yield
            return
        # Wrap the fixture's function for this one setup, as anyio's plugin
        # wraps async fixtures: the cached value is then the wrapped one, so
        # every test and fixture that asks for anyio_backend sees tidal.
        func = fixturedef.func

        def anyio_backend_on_tidal(*args: Any, **kwargs: Any) -> Any:
            return _with_tidal(func(*args, **kwargs))

        fixturedef.func = anyio_backend_on_tidal  # type: ignore[misc]
        try:
            yield
        finally:
            fixturedef.func = func  # type: ignore[misc]
