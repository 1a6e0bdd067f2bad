"""Closed, detached and dup'd file objects, given to every loop method that takes one.

asyncio's selector finds a registration by the object it was made with, so a
socket closed or detached since it was registered (``fileno() == -1``) can
still be removed through that object.  Each row below is one scenario and
the answer asyncio's loop gives (an exception type and message, or a
return value); both loops must give it.
"""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from helpers import run


def _cb() -> None:
    pass


def outcome(loop: Any, call: Callable[[], Any]) -> tuple[str, str]:
    """What `call()` did: ("ok", repr of the result) or (exception type, message)."""
    try:
        result = call()
        if asyncio.iscoroutine(result):
            result = run(loop, result, 5)
    except Exception as exc:  # noqa: BLE001 - the answer under test
        return type(exc).__name__, str(exc)
    if isinstance(result, tuple) and result and isinstance(result[0], asyncio.BaseTransport):
        result[0].close()
        return "ok", "transport"
    if isinstance(result, asyncio.AbstractServer):
        result.close()
        return "ok", "server"
    return "ok", repr(result)


BADF = ("OSError", "[Errno 9] Bad file descriptor")
INVALID = ("ValueError", "Invalid file descriptor: -1")
OK_TRUE = ("ok", "True")
OK_FALSE = ("ok", "False")
OK_NONE = ("ok", "None")


class Sockets:
    """A connected pair; `end(how)` closes or detaches the first; all closed at teardown."""

    def __init__(self) -> None:
        self.a, self.b = socket.socketpair()
        self.a.setblocking(False)
        self.fd = self.a.fileno()
        self.detached: list[int] = []

    def end(self, how: str) -> None:
        if how == "closed":
            self.a.close()
        else:
            self.detached.append(self.a.detach())

    def close(self) -> None:
        self.a.close()
        self.b.close()
        for fd in self.detached:
            os.close(fd)


@pytest.fixture
def pair() -> Iterator[Sockets]:
    socks = Sockets()
    yield socks
    socks.close()


# ----------------------------------------------------------------------
# add_/remove_reader/writer: (scenario, expected answers in order)
# ----------------------------------------------------------------------


def _registered_by_object_then_removed(loop: Any, s: Sockets, how: str, kind: str) -> list:
    getattr(loop, f"add_{kind}")(s.a, _cb)
    s.end(how)
    remove = getattr(loop, f"remove_{kind}")
    return [outcome(loop, lambda: remove(s.a)), outcome(loop, lambda: remove(s.a))]


def _registered_by_fd_then_removed(loop: Any, s: Sockets, how: str, kind: str) -> list:
    getattr(loop, f"add_{kind}")(s.fd, _cb)
    s.end(how)
    remove = getattr(loop, f"remove_{kind}")
    # Not found by the object (it was registered by number), but by number.
    return [outcome(loop, lambda: remove(s.a)), outcome(loop, lambda: remove(s.fd))]


def _added_again(loop: Any, s: Sockets, how: str, kind: str) -> list:
    getattr(loop, f"add_{kind}")(s.a, _cb)
    s.end(how)
    return [
        outcome(loop, lambda: getattr(loop, f"add_{kind}")(s.a, _cb)),
        outcome(loop, lambda: getattr(loop, f"remove_{kind}")(s.a)),
    ]


def _never_registered(loop: Any, s: Sockets, how: str, kind: str) -> list:
    s.end(how)
    return [
        outcome(loop, lambda: getattr(loop, f"add_{kind}")(s.a, _cb)),
        outcome(loop, lambda: getattr(loop, f"remove_{kind}")(s.a)),
    ]


def _other_side_added(loop: Any, s: Sockets, how: str, kind: str) -> list:
    other = "writer" if kind == "reader" else "reader"
    getattr(loop, f"add_{kind}")(s.a, _cb)
    s.end(how)
    return [
        outcome(loop, lambda: getattr(loop, f"add_{other}")(s.a, _cb)),
        outcome(loop, lambda: getattr(loop, f"remove_{kind}")(s.a)),
        outcome(loop, lambda: getattr(loop, f"remove_{other}")(s.a)),
        outcome(loop, lambda: getattr(loop, f"remove_{kind}")(s.fd)),
    ]


def _both_then_one_removed(loop: Any, s: Sockets, how: str, kind: str) -> list:
    other = "writer" if kind == "reader" else "reader"
    loop.add_reader(s.a, _cb)
    loop.add_writer(s.a, _cb)
    s.end(how)
    return [
        outcome(loop, lambda: getattr(loop, f"remove_{kind}")(s.a)),
        outcome(loop, lambda: getattr(loop, f"remove_{other}")(s.a)),
        outcome(loop, lambda: getattr(loop, f"remove_{kind}")(s.fd)),
    ]


REGISTRY_TABLE = [
    (_registered_by_object_then_removed, "closed", [OK_TRUE, INVALID]),
    (_registered_by_object_then_removed, "detached", [OK_TRUE, INVALID]),
    (_registered_by_fd_then_removed, "closed", [INVALID, OK_TRUE]),
    (_registered_by_fd_then_removed, "detached", [INVALID, OK_TRUE]),
    (_added_again, "closed", [OK_NONE, OK_TRUE]),
    (_added_again, "detached", [OK_NONE, OK_TRUE]),
    (_never_registered, "closed", [INVALID, INVALID]),
    (_never_registered, "detached", [INVALID, INVALID]),
    # The closed fd cannot be modified: the poller's error, and (as asyncio's
    # selector does) the whole registration is forgotten.
    (_other_side_added, "closed", [BADF, INVALID, INVALID, OK_FALSE]),
    (_other_side_added, "detached", [OK_NONE, OK_TRUE, OK_TRUE, OK_FALSE]),
    (_both_then_one_removed, "closed", [BADF, INVALID, OK_FALSE]),
    (_both_then_one_removed, "detached", [OK_TRUE, OK_TRUE, OK_FALSE]),
]


@pytest.mark.parametrize("kind", ["reader", "writer"])
@pytest.mark.parametrize(
    ("scenario", "how", "expected"),
    REGISTRY_TABLE,
    ids=[f"{row[0].__name__.strip('_')}-{row[1]}" for row in REGISTRY_TABLE],
)
def test_registration_of_ended_socket(
    loop: Any, pair: Sockets, scenario: Any, how: str, expected: list, kind: str
) -> None:
    assert scenario(loop, pair, how, kind) == expected
    # Nothing of it is left registered on the loop.
    assert outcome(loop, lambda: loop.remove_reader(pair.fd)) == OK_FALSE
    assert outcome(loop, lambda: loop.remove_writer(pair.fd)) == OK_FALSE


@pytest.mark.parametrize("kind", ["reader", "writer"])
def test_dup_is_another_registration(loop: Any, pair: Sockets, kind: str) -> None:
    dup = pair.a.dup()
    try:
        add = getattr(loop, f"add_{kind}")
        remove = getattr(loop, f"remove_{kind}")
        add(pair.a, _cb)
        assert outcome(loop, lambda: remove(dup)) == OK_FALSE
        assert outcome(loop, lambda: add(dup, _cb)) == OK_NONE
        assert outcome(loop, lambda: remove(dup)) == OK_TRUE
        assert outcome(loop, lambda: remove(pair.a)) == OK_TRUE
    finally:
        dup.close()


@pytest.mark.parametrize("fileobj", [object(), "x", 1.5, -1], ids=repr)
def test_invalid_file_objects(loop: Any, fileobj: Any) -> None:
    message = (
        "Invalid file descriptor: -1" if fileobj == -1 else f"Invalid file object: {fileobj!r}"
    )
    for method in ("add_reader", "add_writer"):
        assert outcome(loop, lambda: getattr(loop, method)(fileobj, _cb)) == ("ValueError", message)
    for method in ("remove_reader", "remove_writer"):
        assert outcome(loop, lambda: getattr(loop, method)(fileobj)) == ("ValueError", message)


# ----------------------------------------------------------------------
# Every other method that takes a socket or file: closed or detached
# ----------------------------------------------------------------------


async def _sendfile_some(loop: Any, sock: Any) -> int:
    with tempfile.TemporaryFile() as file:
        file.write(b"x" * 100)
        file.seek(0)
        return await loop.sock_sendfile(sock, file)  # type: ignore[no-any-return]


def collect_unraisable(call: Callable[[], Any]) -> tuple[Any, list[Any]]:
    """call()'s result, and what the garbage it left reported from __del__."""
    unraisable: list[Any] = []
    hook = sys.unraisablehook
    sys.unraisablehook = unraisable.append
    try:
        result = call()
        gc.collect()
    finally:
        sys.unraisablehook = hook
    return result, unraisable


def is_asyncio_pipe_bug(loop_name: str, method: str) -> bool:
    """asyncio's half-made pipe transport fails in its __del__ (its repr reads
    fields __init__ never set): asyncio's bug, not a behaviour to match."""
    return loop_name == "asyncio" and "pipe" in method


STREAM_CALLS: dict[str, Callable[[Any, Any], Any]] = {
    "sock_recv": lambda loop, s: loop.sock_recv(s, 10),
    "sock_recv_into": lambda loop, s: loop.sock_recv_into(s, bytearray(10)),
    "sock_sendall": lambda loop, s: loop.sock_sendall(s, b"x"),
    "sock_sendall_empty": lambda loop, s: loop.sock_sendall(s, b""),
    "sock_connect": lambda loop, s: loop.sock_connect(s, "/nonexistent"),
    "sock_accept": lambda loop, s: loop.sock_accept(s),
    "create_connection": lambda loop, s: loop.create_connection(asyncio.Protocol, sock=s),
    "create_unix_connection": lambda loop, s: loop.create_unix_connection(asyncio.Protocol, sock=s),
    "create_server": lambda loop, s: loop.create_server(asyncio.Protocol, sock=s),
    "create_unix_server": lambda loop, s: loop.create_unix_server(asyncio.Protocol, sock=s),
    "connect_accepted_socket": lambda loop, s: loop.connect_accepted_socket(asyncio.Protocol, s),
    "connect_read_pipe": lambda loop, s: loop.connect_read_pipe(asyncio.Protocol, s),
    "connect_write_pipe": lambda loop, s: loop.connect_write_pipe(asyncio.Protocol, s),
    "sock_sendfile": lambda loop, s: _sendfile_some(loop, s),
}

DGRAM_CALLS: dict[str, Callable[[Any, Any], Any]] = {
    "sock_recvfrom": lambda loop, s: loop.sock_recvfrom(s, 10),
    "sock_recvfrom_into": lambda loop, s: loop.sock_recvfrom_into(s, bytearray(10)),
    "sock_sendto": lambda loop, s: loop.sock_sendto(s, b"x", ("127.0.0.1", 9)),
    "sock_connect_inet": lambda loop, s: loop.sock_connect(s, ("127.0.0.1", 9)),
    "create_datagram_endpoint": lambda loop, s: loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, sock=s
    ),
}


@pytest.mark.parametrize("how", ["closed", "detached"])
@pytest.mark.parametrize("method", list(STREAM_CALLS))
def test_stream_socket_ended(
    loop: Any, loop_name: str, pair: Sockets, method: str, how: str
) -> None:
    pair.end(how)
    answer, unraisable = collect_unraisable(
        lambda: outcome(loop, lambda: STREAM_CALLS[method](loop, pair.a))
    )
    assert answer == BADF
    assert unraisable == [] or is_asyncio_pipe_bug(loop_name, method)


@pytest.mark.parametrize("how", ["closed", "detached"])
@pytest.mark.parametrize("method", list(DGRAM_CALLS))
def test_datagram_socket_ended(loop: Any, method: str, how: str) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    fd = sock.detach() if how == "detached" else None
    sock.close()
    try:
        assert outcome(loop, lambda: DGRAM_CALLS[method](loop, sock)) == BADF
    finally:
        if fd is not None:
            os.close(fd)


CLOSED_FILE = ("ValueError", "I/O operation on closed file")


@pytest.mark.parametrize("method", ["sock_sendfile", "connect_read_pipe", "connect_write_pipe"])
def test_closed_files(loop: Any, loop_name: str, pair: Sockets, method: str) -> None:
    """A closed file object is refused with io's ValueError, before any fd is touched."""
    r, w = os.pipe()
    writing = method == "connect_write_pipe"
    file = open(w if writing else r, "wb" if writing else "rb", buffering=0)  # noqa: SIM115
    os.close(r if writing else w)
    file.close()
    calls: dict[str, Callable[[], Any]] = {
        "sock_sendfile": lambda: loop.sock_sendfile(pair.a, file),
        "connect_read_pipe": lambda: loop.connect_read_pipe(asyncio.Protocol, file),
        "connect_write_pipe": lambda: loop.connect_write_pipe(asyncio.Protocol, file),
    }
    answer, unraisable = collect_unraisable(lambda: outcome(loop, calls[method]))
    assert answer == CLOSED_FILE
    assert unraisable == [] or is_asyncio_pipe_bug(loop_name, method)


def test_sendfile_closed_file(loop: Any) -> None:
    async def main() -> tuple[str, str]:
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        closed = tempfile.TemporaryFile()
        closed.close()
        try:
            await loop.sendfile(transport, closed)
        except ValueError as exc:
            return type(exc).__name__, str(exc)
        finally:
            transport.close()
            server.close()
            await server.wait_closed()
        return "ok", ""

    assert run(loop, main()) == CLOSED_FILE


@pytest.mark.usefixtures("blocking_on_purpose")  # the loop is handed a blocking dup
def test_transport_socket_and_its_dup(loop: Any) -> None:
    """A transport's fd is refused (RuntimeError); a dup of its socket is another fd, free."""

    async def main() -> list[Any]:
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        own = transport.get_extra_info("socket")
        dup = socket.socket(fileno=os.dup(own.fileno()))
        try:
            answers = [
                outcome(loop, lambda: loop.add_reader(own, _cb))[0],
                outcome(loop, lambda: loop.add_writer(own.fileno(), _cb))[0],
                outcome(loop, lambda: loop.remove_reader(own.fileno()))[0],
                outcome(loop, lambda: loop.add_reader(dup, _cb)),
                outcome(loop, lambda: loop.remove_reader(dup)),
                outcome(loop, lambda: loop.add_writer(dup, _cb)),
                outcome(loop, lambda: loop.remove_writer(dup)),
            ]
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(loop.sock_recv(dup, 1), 0.05)
            return answers
        finally:
            dup.close()
            transport.close()
            server.close()
            await server.wait_closed()

    assert run(loop, main()) == ["RuntimeError"] * 3 + [OK_NONE, OK_TRUE, OK_NONE, OK_TRUE]
