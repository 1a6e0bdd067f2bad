"""Unix signal handlers and Ctrl-C, on asyncio's loop and on tidal's."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import tidal

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="Unix signals")


async def coro_fn():
    pass


def run_until_stopped(loop, seconds=5.0):
    """run_forever() with a watchdog: a missing signal fails instead of hanging."""
    wd = loop.call_later(seconds, loop.stop)
    t0 = time.monotonic()
    loop.run_forever()
    wd.cancel()
    return time.monotonic() - t0


@pytest.fixture(autouse=True)
def _signal_dispositions_restored():
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        assert signal.getsignal(sig) is handler, f"{sig!r} left changed"
    assert signal.set_wakeup_fd(-1) == -1, "wake-up fd left set"


def test_handler_runs_on_the_loop_with_args(loop):
    got = []

    def handler(*args):
        got.append((args, threading.get_ident(), asyncio.get_running_loop()))
        loop.stop()

    loop.add_signal_handler(signal.SIGUSR1, handler, "a", 1)
    loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
    run_until_stopped(loop)
    assert got == [(("a", 1), threading.get_ident(), loop)]
    assert loop.remove_signal_handler(signal.SIGUSR1) is True
    assert loop.remove_signal_handler(signal.SIGUSR1) is False
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_signal_wakes_idle_loop_promptly(loop):
    got = []
    loop.add_signal_handler(signal.SIGUSR1, lambda: (got.append("usr1"), loop.stop()))

    def sender():
        time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGUSR1)

    thread = threading.Thread(target=sender)
    thread.start()
    # Nothing but the 5 s watchdog is scheduled: only the signal ends the poll.
    elapsed = run_until_stopped(loop)
    thread.join()
    assert got == ["usr1"]
    assert elapsed < 1.0
    loop.remove_signal_handler(signal.SIGUSR1)


def test_two_signals_two_handlers(loop):
    got = []

    def on(name):
        got.append(name)
        if len(got) == 2:
            loop.stop()

    loop.add_signal_handler(signal.SIGUSR1, on, "usr1")
    loop.add_signal_handler(signal.SIGUSR2, on, "usr2")
    loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
    loop.call_soon(os.kill, os.getpid(), signal.SIGUSR2)
    run_until_stopped(loop)
    assert sorted(got) == ["usr1", "usr2"]
    assert loop.remove_signal_handler(signal.SIGUSR1)
    assert loop.remove_signal_handler(signal.SIGUSR2)


def test_replacing_a_handler(loop):
    got = []
    loop.add_signal_handler(signal.SIGUSR1, got.append, "first")
    loop.add_signal_handler(signal.SIGUSR1, lambda: (got.append("second"), loop.stop()))
    loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
    run_until_stopped(loop)
    assert got == ["second"]
    loop.remove_signal_handler(signal.SIGUSR1)


def test_handler_error_reported_and_loop_keeps_running(loop, loop_errors):
    seen = []

    def bad():
        raise ValueError("in signal handler")

    loop.add_signal_handler(signal.SIGUSR1, bad)
    loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
    loop.call_later(0.05, seen.append, "still running")
    loop.call_later(0.06, loop.stop)
    run_until_stopped(loop)
    assert seen == ["still running"]
    [ctx] = loop_errors
    assert ctx["message"].startswith("Exception in callback ")
    assert isinstance(ctx["exception"], ValueError)
    loop_errors.clear()
    loop.remove_signal_handler(signal.SIGUSR1)


def test_sigint_handler_replaces_keyboard_interrupt(loop):
    got = []
    loop.add_signal_handler(signal.SIGINT, lambda: (got.append("sigint"), loop.stop()))
    loop.call_soon(os.kill, os.getpid(), signal.SIGINT)
    run_until_stopped(loop)
    assert got == ["sigint"]
    assert loop.remove_signal_handler(signal.SIGINT) is True
    # SIGINT goes back to raising KeyboardInterrupt, not to SIG_DFL.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_argument_errors(loop):
    coro = coro_fn()
    try:
        with pytest.raises(
            TypeError, match=r"^coroutines cannot be used with add_signal_handler\(\)$"
        ):
            loop.add_signal_handler(signal.SIGUSR1, coro_fn)
        with pytest.raises(
            TypeError, match=r"^coroutines cannot be used with add_signal_handler\(\)$"
        ):
            loop.add_signal_handler(signal.SIGUSR1, coro)
    finally:
        coro.close()
    with pytest.raises(TypeError, match="^sig must be an int, not 'x'$"):
        loop.add_signal_handler("x", print)
    with pytest.raises(TypeError, match=r"^sig must be an int, not 1\.0$"):
        loop.remove_signal_handler(1.0)
    for bad in (0, -1, 1000):
        with pytest.raises(ValueError, match=f"^invalid signal number {bad}$"):
            loop.add_signal_handler(bad, print)
        with pytest.raises(ValueError, match=f"^invalid signal number {bad}$"):
            loop.remove_signal_handler(bad)
    assert loop.remove_signal_handler(signal.SIGUSR2) is False


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP])
def test_uncatchable_signals(loop, sig):
    with pytest.raises(RuntimeError, match=f"^sig {int(sig)} cannot be caught$"):
        loop.add_signal_handler(sig, print)
    # Nothing registered: the wake-up fd is given back (checked at teardown).


def test_uncatchable_signal_keeps_other_handlers(loop):
    loop.add_signal_handler(signal.SIGUSR1, print)
    with pytest.raises(RuntimeError, match="^sig 9 cannot be caught$"):
        loop.add_signal_handler(signal.SIGKILL, print)
    # The wake-up fd still serves SIGUSR1.
    assert signal.set_wakeup_fd(loop._csock.fileno()) == loop._csock.fileno()
    assert loop.remove_signal_handler(signal.SIGUSR1)


def test_add_signal_handler_from_another_thread(loop):
    errors = []

    def worker():
        try:
            loop.add_signal_handler(signal.SIGUSR1, print)
        except RuntimeError as exc:
            errors.append(str(exc))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert len(errors) == 1 and "main thread" in errors[0]
    assert loop.remove_signal_handler(signal.SIGUSR1) is False


def test_closed_loop_refuses_signal_handlers(loop_factory):
    lp = loop_factory()
    lp.close()
    with pytest.raises(RuntimeError, match="^Event loop is closed$"):
        lp.add_signal_handler(signal.SIGUSR1, print)


def test_close_removes_signal_handlers(loop_factory):
    lp = loop_factory()
    try:
        lp.add_signal_handler(signal.SIGUSR1, print)
        lp.add_signal_handler(signal.SIGINT, print)
        assert signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL, None)
    finally:
        lp.close()
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# ----------------------------------------------------------------------
# Ctrl-C: a real SIGINT to a child process running each loop
# ----------------------------------------------------------------------

_CTRL_C_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    import tidal

    name, mode = sys.argv[1], sys.argv[2]
    factory = {"asyncio": asyncio.new_event_loop, "tidal": tidal.new_event_loop}[name]

    async def main():
        print("ready", flush=True)
        try:
            if mode.endswith("busy"):
                while True:
                    await asyncio.sleep(0)
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            print("main cancelled", flush=True)
            raise
        finally:
            print("main finally", flush=True)

    async def handled():
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        loop.add_signal_handler(2, done.set_result, "handled")
        print("ready", flush=True)
        print(await done, flush=True)

    if mode in ("runner", "runner-busy"):
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(main())
    elif mode == "run":
        (tidal.run if name == "tidal" else asyncio.run)(main())
    elif mode == "handler":
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(handled())
    elif mode in ("run_until_complete", "run_until_complete-busy"):
        loop = factory()
        try:
            loop.run_until_complete(main())
        except KeyboardInterrupt:
            print("KeyboardInterrupt; running:", loop.is_running(), flush=True)
            raise
        finally:
            loop.close()
    """
)


def _ctrl_c(loop_name: str, mode: str) -> tuple[int, list[str], str]:
    src = os.path.dirname(os.path.dirname(os.path.abspath(tidal.__file__)))
    env = dict(os.environ, PYTHONPATH=src)
    env.pop("PYTHONASYNCIODEBUG", None)
    proc = subprocess.Popen(
        [sys.executable, "-c", _CTRL_C_CHILD, loop_name, mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        time.sleep(0.05)  # let it settle into its wait
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out.splitlines(), err


# An uncaught KeyboardInterrupt makes Python exit by SIGINT (returncode -2).
KILLED_BY_SIGINT = -signal.SIGINT


@pytest.mark.parametrize("mode", ["runner", "run", "runner-busy"])
def test_ctrl_c_cancels_main_task_then_raises(loop_name, mode):
    rc, out, err = _ctrl_c(loop_name, mode)
    # asyncio.Runner cancels the main task first, then raises KeyboardInterrupt.
    assert out == ["main cancelled", "main finally"], err
    assert rc == KILLED_BY_SIGINT, err
    assert err.rstrip().splitlines()[-1] == "KeyboardInterrupt"


def test_ctrl_c_in_run_until_complete(loop_name):
    rc, out, err = _ctrl_c(loop_name, "run_until_complete")
    # No Runner: KeyboardInterrupt is raised where the loop waited, the task
    # is left pending (and closed when collected at exit).
    assert out == ["KeyboardInterrupt; running: False", "main finally"], err
    assert rc == KILLED_BY_SIGINT, err
    assert err.rstrip().splitlines()[-1] == "KeyboardInterrupt"


def test_ctrl_c_in_busy_run_until_complete(loop_name):
    rc, out, err = _ctrl_c(loop_name, "run_until_complete-busy")
    assert "KeyboardInterrupt; running: False" in out, err
    assert rc == KILLED_BY_SIGINT, err
    assert err.rstrip().splitlines()[-1] == "KeyboardInterrupt"


def test_ctrl_c_with_sigint_handler_installed(loop_name):
    rc, out, err = _ctrl_c(loop_name, "handler")
    assert out == ["handled"], err
    assert rc == 0, err
    assert err == ""
