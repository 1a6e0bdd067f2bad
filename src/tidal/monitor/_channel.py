"""Where the monitor's socket lives, who may use it, and how a message looks.

One request per connection: the client sends one line of JSON
(``{"cmd": "ps"}``), the server answers one line of JSON and closes.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import struct
from typing import Any

# How long either side waits on the other (the server answers from its own
# thread, never from the loop's: a blocked loop does not hold an answer up).
TIMEOUT = 5.0
# An answer is one line; a whole ps of a large process stays well under this.
MAX_MESSAGE = 64 * 1024 * 1024


def socket_dir() -> str:
    """The directory this process's monitor socket goes in (not created here)."""
    uid = os.getuid()
    run_user = f"/run/user/{uid}"
    if os.environ.get("XDG_RUNTIME_DIR") == run_user:
        return os.path.join(run_user, "tidal")
    return f"/tmp/tidal-{uid}"


def socket_paths(pid: int, uid: int) -> list[str]:
    """Where process `pid`, run by `uid`, may have put its socket (its environment is not ours)."""
    return [f"/run/user/{uid}/tidal/{pid}.sock", f"/tmp/tidal-{uid}/{pid}.sock"]


class UnsafeDirectory(RuntimeError):
    """The socket directory is not the user's own private directory."""


def make_private_dir(path: str) -> None:
    """Create `path` mode 0700, or check that it is ours and 0700; UnsafeDirectory if not."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeDirectory(f"{path} is not a directory")
    if info.st_uid != os.getuid():
        raise UnsafeDirectory(f"{path} belongs to uid {info.st_uid}, not to this user ({os.getuid()})")
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise UnsafeDirectory(f"{path} is open to other users (mode {stat.S_IMODE(info.st_mode):o}, not 700)")


def peer_uid(conn: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket (SO_PEERCRED)."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def send(conn: socket.socket, message: dict[str, Any]) -> None:
    conn.sendall(json.dumps(message, separators=(",", ":")).encode() + b"\n")


def receive(conn: socket.socket) -> dict[str, Any]:
    """One line of JSON from `conn` (ValueError if the peer closed first or sent junk)."""
    chunks = []
    size = 0
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if chunk.endswith(b"\n") or size > MAX_MESSAGE:
            break
    data = b"".join(chunks)
    if not data.endswith(b"\n"):
        raise ValueError("the other side closed the connection before a whole message")
    message = json.loads(data)
    if not isinstance(message, dict):
        raise ValueError("not a message")
    return message
