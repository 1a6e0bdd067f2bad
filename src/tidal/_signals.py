"""Unix signal handlers on the loop: add_signal_handler / remove_signal_handler.

A signal only sets a flag in C and writes its number to the wake-up fd
(``signal.set_wakeup_fd``), which is the write end of the loop's self-pipe.
The loop's self-pipe reader turns each byte back into the registered
handler and queues it, so the handler runs as an ordinary callback, in
order with everything else, never inside the interrupted frame.
"""

from __future__ import annotations

import errno
import logging
import signal
import sys
import warnings
from asyncio import coroutines
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from ._loop import EventLoop
    from typing import TypeVarTuple, Unpack

    _Ts = TypeVarTuple("_Ts")  # typeshed's AbstractEventLoop.add_signal_handler signature

from ._handles import Handle

logger = logging.getLogger("asyncio")


def _sighandler_noop(signum: int, frame: Any) -> None:
    """Installed as the Python-level handler: the wake-up fd does the work."""


def _check_signal(sig: Any) -> None:
    if not isinstance(sig, int):
        raise TypeError(f"sig must be an int, not {sig!r}")
    if sig not in signal.valid_signals():
        raise ValueError(f"invalid signal number {sig}")


def add_signal_handler(
    self: EventLoop, sig: int, callback: Callable[[Unpack[_Ts]], object], *args: Unpack[_Ts]
) -> None:
    """Run `callback(*args)` on the loop when signal `sig` arrives (main thread only)."""
    if coroutines.iscoroutine(callback) or coroutines.iscoroutinefunction(callback):
        raise TypeError("coroutines cannot be used with add_signal_handler()")
    _check_signal(sig)
    self._check_closed()
    try:
        # Raises ValueError outside the main thread: say it as asyncio does.
        signal.set_wakeup_fd(self._csock.fileno())
    except (ValueError, OSError) as exc:
        raise RuntimeError(str(exc)) from None
    handle = Handle(callback, args, self, None, self._debug)
    self._signal_handlers[sig] = handle
    try:
        signal.signal(sig, _sighandler_noop)
        # SA_RESTART: a blocking call elsewhere is not interrupted with EINTR.
        signal.siginterrupt(sig, False)
    except OSError as exc:
        del self._signal_handlers[sig]
        if not self._signal_handlers:
            _clear_wakeup_fd()
        if exc.errno == errno.EINVAL:
            raise RuntimeError(f"sig {sig:d} cannot be caught") from None
        raise


def remove_signal_handler(self: EventLoop, sig: int) -> bool:
    """Restore the default disposition of `sig`; False if no handler was set."""
    _check_signal(sig)
    try:
        del self._signal_handlers[sig]
    except KeyError:
        return False
    handler = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
    try:
        signal.signal(sig, handler)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            raise RuntimeError(f"sig {sig:d} cannot be caught") from None
        raise
    if not self._signal_handlers:
        _clear_wakeup_fd()
    return True


def _clear_wakeup_fd() -> None:
    try:
        signal.set_wakeup_fd(-1)
    except (ValueError, OSError) as exc:
        logger.info("set_wakeup_fd(-1) failed: %s", exc)


def process_signal_bytes(self: EventLoop, data: bytes) -> None:
    """Queue the handler of each signal number read from the self-pipe."""
    handlers = self._signal_handlers
    for signum in data:
        if not signum:
            continue  # a call_soon_threadsafe wake-up byte
        handle = handlers.get(signum)
        if handle is None:
            continue
        if handle._cancelled:
            remove_signal_handler(self, signum)
        else:
            self._ready.append(handle)


def remove_all(self: EventLoop) -> None:
    """On loop close: give every signal back its default disposition."""
    if not self._signal_handlers:
        return
    if sys.is_finalizing():
        warnings.warn(
            f"Closing the loop {self!r} on interpreter shutdown stage, "
            "skipping signal handlers removal",
            ResourceWarning,
            source=self,
        )
        self._signal_handlers.clear()
        return
    for sig in list(self._signal_handlers):
        remove_signal_handler(self, sig)
