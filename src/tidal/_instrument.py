"""The one narrow hook the loop reports through.

Set an object with these methods as ``loop._instrument`` (a public setter
comes with the tracing work); when none is set the loop pays one attribute
test per turn, because the instrumented path is a separate branch outside
the per-callback loop.
"""

from __future__ import annotations

from typing import Any


class Instrument:
    """Base class: every method is a no-op, override the ones you need."""

    def before_poll(self, timeout: float | None) -> None:
        """The loop is about to wait for I/O for at most `timeout` seconds."""

    def after_poll(self, nevents: int) -> None:
        """The wait returned with `nevents` ready file descriptors."""

    def before_callback(self, handle: Any) -> None:
        """A ready callback (a task step is one) is about to run."""

    def after_callback(self, handle: Any) -> None:
        """That callback has returned (or raised, already reported)."""
