"""``python -m tidal ps|pstree|top PID``: ask a process's monitor, print what it says."""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import time
from typing import Any

from . import _channel


class MonitorError(Exception):
    """Why the process could not be asked (the message is for the user)."""


def process_uid(pid: int) -> int:
    """The effective uid of process `pid` (/proc/PID/status: its files' owner can be root's)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Uid:"):
                    return int(line.split()[2])
    except FileNotFoundError:
        pass
    raise MonitorError(f"no process {pid}")


def request(pid: int, cmd: str) -> dict[str, Any]:
    """Ask process `pid`'s monitor for `cmd`; MonitorError with a clear message if it cannot be."""
    owner = process_uid(pid)
    me = os.getuid()
    paths = _channel.socket_paths(pid, owner)
    path = next((p for p in paths if os.path.exists(p)), paths[-1])
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(_channel.TIMEOUT)
    with sock:
        try:
            sock.connect(path)
        except PermissionError:
            raise MonitorError(
                f"refused: process {pid} belongs to uid {owner}, and its tidal monitor answers "
                f"that user only (you are uid {me})"
            ) from None
        except (FileNotFoundError, ConnectionRefusedError):
            raise MonitorError(
                f"process {pid} exposes no tidal monitor (it opts in with TIDAL_MONITOR=1 "
                f"or tidal.monitor.enable(); looked for {' and '.join(paths)})"
            ) from None
        # The socket is served by the process's user, not by someone who
        # put a socket where it would be.
        server_uid = _channel.peer_uid(sock)
        if server_uid != owner:
            raise MonitorError(f"{path} is served by uid {server_uid}, not by process {pid}'s uid {owner}")
        try:
            _channel.send(sock, {"cmd": cmd})
        except OSError:
            pass  # a server that refuses may close first: its answer says why
        try:
            answer = _channel.receive(sock)
        except (ValueError, OSError) as exc:
            raise MonitorError(f"process {pid}'s monitor did not answer: {exc}") from None
    if "error" in answer:
        raise MonitorError(str(answer["error"]))
    return answer


# -- formatting ---------------------------------------------------------------


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1e-3:
        return f"{value * 1e6:.0f}us"
    if value < 1:
        return f"{value * 1e3:.1f}ms"
    return f"{value:.2f}s"


def _bytes(value: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"  # (not reached)


def _frame_label(entry: list[Any]) -> str:
    name, filename, line = entry
    return f"{name} {filename}:{line}"


def _loop_header(loop: dict[str, Any]) -> list[str]:
    state = loop["state"]
    head = f"loop {loop['id']:#x} (thread {loop['thread_id']}): "
    if state == "blocked":
        head += f"BLOCKED for {_seconds(loop['step_seconds'])} so far by {loop['step'] or 'a callback'}"
    elif state == "running":
        head += f"running {loop['step'] or 'a callback'}"
    elif state == "waiting":
        head += "waiting for I/O or timers"
    else:
        head += "not running"
    lines = [head]
    if state == "blocked" and loop["stack"]:
        lines.append("the loop thread's stack:")
        lines.extend(loop["stack"].rstrip("\n").splitlines())
    return lines


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def format_ps(answer: dict[str, Any]) -> str:
    out = [f"process {answer['pid']} (Python {answer['python']}): {' '.join(answer['argv'])}"]
    if not answer["loops"]:
        out.append("no tidal loop has run in this process yet")
    for loop in answer["loops"]:
        out.append("")
        out.extend(_loop_header(loop))
        names = {t["id"]: t["name"] for t in loop["tasks"]}
        rows = [["ID", "NAME", "STATE", "AGE", "STEPS", "STEP TIME", "AWAITED BY", "COROUTINE STACK", "CREATED AT"]]
        for task in loop["tasks"]:
            rows.append(
                [
                    f"{task['id']:#x}",
                    task["name"],
                    task["state"],
                    _seconds(task["age"]),
                    "-" if task["steps"] is None else str(task["steps"]),
                    _seconds(task["step_seconds"]),
                    ", ".join(names.get(a, f"{a:#x}") for a in task["awaited_by"]) or "-",
                    # Innermost first, as python -m asyncio ps prints it.
                    " -> ".join(entry[0] for entry in reversed(task["stack"])) or "-",
                    task["created_at"] or "-",
                ]
            )
        out.extend(_table(rows))
    return "\n".join(out)


def _tree_lines(label: str, children: list[Any], prefix: str, last: bool) -> list[str]:
    lines = [prefix + ("└── " if last else "├── ") + label]
    inner = prefix + ("    " if last else "│   ")
    for i, (child_label, grandchildren) in enumerate(children):
        lines.extend(_tree_lines(child_label, grandchildren, inner, i == len(children) - 1))
    return lines


def format_pstree(answer: dict[str, Any]) -> str:
    """The await tree, drawn as ``python -m asyncio pstree`` draws it (3.14)."""
    out: list[str] = []
    for loop in answer["loops"]:
        tasks = {t["id"]: t for t in loop["tasks"]}
        awaited: dict[int, list[int]] = {}
        for task in loop["tasks"]:
            for waiter in task["awaited_by"]:
                if waiter in tasks:
                    awaited.setdefault(waiter, []).append(task["id"])
        roots = [t["id"] for t in loop["tasks"] if not any(w in tasks for w in t["awaited_by"])]

        def node(task_id: int, path: tuple[int, ...]) -> tuple[str, list[Any]]:
            task = tasks[task_id]
            if task_id in path:
                return f"(T) {task['name']} (cycle: it awaits itself through this chain)", []
            below = [node(child, (*path, task_id)) for child in awaited.get(task_id, [])]
            # The task's coroutine stack, outermost first, each frame under
            # the one that awaits it; the tasks it awaits hang under the
            # innermost.
            for entry in reversed(task["stack"]):
                below = [(" " + _frame_label(entry), below)]
            return f"(T) {task['name']}", below

        if len(answer["loops"]) > 1:
            out.extend(_loop_header(loop))
        if roots:
            for i, root in enumerate(roots):
                label, children = node(root, ())
                out.extend(_tree_lines(label, children, "", i == len(roots) - 1))
        elif tasks:  # every task is awaited by another: all in cycles
            out.append("(every task awaits another: the await graph is a cycle)")
    return "\n".join(out)


def format_top(answer: dict[str, Any], previous: dict[str, Any] | None, interval: float, rows: int) -> str:
    out = [
        f"tidal top: process {answer['pid']} (Python {answer['python']}) {time.strftime('%H:%M:%S')}: "
        f"{' '.join(answer['argv'])}"
    ]
    before = {loop["id"]: loop["stats"] for loop in (previous or {}).get("loops", [])}
    for loop in answer["loops"]:
        out.append("")
        out.extend(_loop_header(loop)[:1])
        stats = loop["stats"]
        old = before.get(loop["id"])
        rate = ""
        if old is not None:
            rate = f"  turns/s {(stats['turns'] - old['turns']) / interval:,.0f}"
        if stats.get("collecting"):
            lag = stats["lag"]
            out.append(
                f"utilisation {stats['utilisation'] * 100:5.1f}%{rate}  callbacks {stats['callbacks']:,}  "
                f"task steps {stats['task_steps']:,}  I/O events {stats['io_events']:,}"
            )
            out.append(
                f"lag p50 {_seconds(lag['p50'])}  p90 {_seconds(lag['p90'])}  p99 {_seconds(lag['p99'])}  "
                f"max {_seconds(lag['max'])}  ({lag['count']:,} measured)"
            )
        else:
            out.append(f"turns {stats['turns']:,}{rate}  (no statistics collected on this loop)")
        transports = stats["transports"]
        out.append(
            "transports open: "
            + (", ".join(f"{kind} {n}" for kind, n in sorted(transports.items())) or "none")
        )
        moved = []
        for key, label in (("bytes_read", "read"), ("bytes_written", "written")):
            moved.append(f"{label} {_bytes(stats[key])}")
            if old is not None:
                moved[-1] += f" ({_bytes((stats[key] - old[key]) / interval)}/s)"
        out.append("bytes " + "  ".join(moved))
        tasks = sorted(loop["tasks"], key=lambda t: t["step_seconds"] or 0.0, reverse=True)
        table = [["NAME", "STATE", "STEP TIME", "STEPS", "AGE", "AT"]]
        for task in tasks[:rows]:
            table.append(
                [
                    task["name"],
                    task["state"],
                    _seconds(task["step_seconds"]),
                    "-" if task["steps"] is None else str(task["steps"]),
                    _seconds(task["age"]),
                    _frame_label(task["where"]) if task["where"] else "-",
                ]
            )
        out.append(f"{len(tasks)} tasks, by time spent in their steps:")
        out.extend(_table(table))
    return "\n".join(out)


# -- the commands -------------------------------------------------------------


def main(cmd: str, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -m tidal {cmd}",
        description={
            "ps": "The tasks of a running process's tidal loops (the process opts in: TIDAL_MONITOR=1).",
            "pstree": "The await tree of a running process's tasks, as python -m asyncio pstree draws it.",
            "top": "A live view of a running process's loops: utilisation, lag, busiest tasks, transports.",
        }[cmd],
    )
    parser.add_argument("pid", type=int, help="the process to look at")
    if cmd == "top":
        parser.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes")
        parser.add_argument("-n", "--iterations", type=int, default=0, help="stop after N refreshes (0: never)")
    args = parser.parse_args(argv)
    try:
        if cmd == "ps":
            print(format_ps(request(args.pid, "ps")))
        elif cmd == "pstree":
            print(format_pstree(request(args.pid, "pstree")))
        else:
            return _top(args.pid, args.interval, args.iterations)
    except MonitorError as exc:
        print(f"python -m tidal {cmd}: {exc}", file=sys.stderr)
        return 1
    return 0


def _top(pid: int, interval: float, iterations: int) -> int:
    previous = None
    clear = sys.stdout.isatty()
    n = 0
    try:
        while True:
            answer = request(pid, "top")
            rows = max(shutil.get_terminal_size().lines - 12, 5)
            text = format_top(answer, previous, interval, rows)
            if clear:
                sys.stdout.write("\x1b[H\x1b[2J")
            print(text, flush=True)
            previous = answer
            n += 1
            if iterations and n >= iterations:
                return 0
            time.sleep(interval)
    except KeyboardInterrupt:
        return 0
