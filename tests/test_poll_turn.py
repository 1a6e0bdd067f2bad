"""One poll finds every ready fd: all their readers run in the turn that polled.

asyncio's selector asks the kernel for as many events as it has fds
registered; tidal's turn must too (interpreted, it makes the epoll call
itself rather than through the poller's poll()), or fds past the count it
asked for would wait for a later turn, behind callbacks queued meanwhile.
"""

from __future__ import annotations

import asyncio
import socket

FDS = 40


def test_every_ready_fd_is_served_in_one_turn(
    loop: asyncio.AbstractEventLoop, socks: list[socket.socket]
) -> None:
    order: list[object] = []

    def reader(i: int, sock: socket.socket) -> None:
        sock.recv(1)
        if not order:
            # Queued after every reader the poll found: it runs next turn.
            loop.call_soon(order.append, "next turn")
        order.append(i)
        if len(order) == FDS:
            loop.call_soon(loop.stop)

    pairs = [socket.socketpair() for _ in range(FDS)]
    for a, b in pairs:
        socks += (a, b)
        a.setblocking(False)
    for i, (a, _) in enumerate(pairs):
        loop.add_reader(a, reader, i, a)
    for _, b in pairs:
        b.send(b"x")
    loop.run_forever()
    for a, _ in pairs:
        loop.remove_reader(a)
    assert sorted(order[:FDS]) == list(range(FDS))  # type: ignore[type-var]
    assert order[FDS:] == ["next turn"]
