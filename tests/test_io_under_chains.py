"""I/O, signals and wake-ups from threads get through an endless chain of callbacks.

tidal skips the zero-timeout poll of a turn only when that poll could find
nothing but the loop's own wake-up bytes (no fd of the program's watched, no
signal handler). These tests hold both loops to what asyncio's loop does
once something is watched: I/O that is ready when a turn begins is seen by
that turn, however long the chain of ready callbacks around it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
from collections.abc import Callable

import pytest


class Chain:
    """A callback that reschedules itself until stopped, counting its runs."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.runs = 0
        self.stopped = False

    def __call__(self) -> None:
        self.runs += 1
        if not self.stopped:
            self.loop.call_soon(self)


def _runs_until_served(
    loop: asyncio.AbstractEventLoop, start_event: Callable[[Callable[[], None]], None]
) -> int:
    """Run a chain for 1,000 turns, then start the event: the chain's runs until it is served."""
    chain = Chain(loop)
    done = loop.create_future()
    mark: list[int] = []

    def on_served() -> None:
        chain.stopped = True
        if not done.done():
            done.set_result(chain.runs - mark[0])

    def trigger() -> None:
        if chain.runs < 1000:
            loop.call_soon(trigger)
            return
        mark.append(chain.runs)
        start_event(on_served)

    loop.call_soon(chain)
    loop.call_soon(trigger)
    return loop.run_until_complete(asyncio.wait_for(done, 30))


def test_a_socket_made_readable_is_served_next_turn(loop: asyncio.AbstractEventLoop) -> None:
    a, b = socket.socketpair()
    try:
        a.setblocking(False)
        b.setblocking(False)  # written by a loop callback

        def start(on_served: Callable[[], None]) -> None:
            def on_readable() -> None:
                loop.remove_reader(a)
                assert a.recv(1) == b"x"
                on_served()

            loop.add_reader(a, on_readable)
            b.send(b"x")  # readable from now on

        # The chain runs once in the trigger's turn and once more in the next,
        # which polls and runs the reader after it.
        assert _runs_until_served(loop, start) <= 2
    finally:
        a.close()
        b.close()


def test_a_signal_is_handled_within_two_turns(loop: asyncio.AbstractEventLoop) -> None:
    def start(on_served: Callable[[], None]) -> None:
        def handler() -> None:
            loop.remove_signal_handler(signal.SIGUSR1)
            on_served()

        loop.add_signal_handler(signal.SIGUSR1, handler)
        os.kill(os.getpid(), signal.SIGUSR1)

    # The wake-up byte is seen by the next turn's poll, whose reader queues
    # the handler for the turn after.
    assert _runs_until_served(loop, start) <= 3


@pytest.mark.usefixtures("blocking_on_purpose")  # a callback joins a thread
def test_call_soon_threadsafe_runs_next_turn(loop: asyncio.AbstractEventLoop) -> None:
    def start(on_served: Callable[[], None]) -> None:
        thread = threading.Thread(target=loop.call_soon_threadsafe, args=(on_served,))
        thread.start()
        thread.join()

    assert _runs_until_served(loop, start) <= 2


def test_io_ready_before_a_turn_is_seen_in_a_long_busy_run(loop: asyncio.AbstractEventLoop) -> None:
    # Tests everywhere (CPython's run_briefly among them) rely on this: data
    # sent to a watched socket is read by the time the sender has yielded
    # twice, however many busy turns came before.
    a, b = socket.socketpair()
    received: list[bytes] = []
    try:
        a.setblocking(False)
        loop.add_reader(a, lambda: received.append(a.recv(100)))

        async def main() -> None:
            for i in range(500):
                b.send(b"%d," % i)
                await asyncio.sleep(0)  # the poll of the turn this resumes in sees the data ...
                await asyncio.sleep(0)  # ... and its reader ran before this step
                assert b"".join(received).endswith(b"%d," % i), (i, received[-3:])

        async def busy() -> None:
            while True:
                await asyncio.sleep(0)

        async def both() -> None:
            spinner = asyncio.ensure_future(busy())
            try:
                await main()
            finally:
                spinner.cancel()

        loop.run_until_complete(asyncio.wait_for(both(), 30))
        loop.remove_reader(a)
    finally:
        a.close()
        b.close()


def test_a_stop_during_a_chain_ends_the_run_after_that_turn(
    loop: asyncio.AbstractEventLoop,
) -> None:
    chain = Chain(loop)
    loop.call_soon(chain)
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    after_stop = chain.runs
    # The chain is still queued: the next run picks it up where it was.
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert chain.runs == after_stop + 1
    chain.stopped = True
    loop.call_soon(loop.stop)
    loop.run_forever()
