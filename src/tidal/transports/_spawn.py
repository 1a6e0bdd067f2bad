"""Starting a child without waiting for it on the loop thread.

``subprocess.Popen`` forks, then blocks in ``os.read`` on an "exec-error
pipe" until the child has either exec'd (the pipe's write end is
close-on-exec, so the read sees EOF) or failed before exec'ing (the child
writes ``ExceptionName:hex-errno:detail`` and exits).  On an event loop that
read stalls every other callback for as long as the child takes to get to
exec: ``close_fds`` over a large fd table, a ``preexec_fn``, a ``chdir`` to a
slow file system, a loaded machine.

Here the fork is the same (``_posixsubprocess.fork_exec``, the function
Popen calls, with the arguments Popen computes), but the read end of that
pipe is handed back instead of read: the transport registers it as a reader
on its loop, and `exec_error` turns what arrived into the exception Popen
would have raised (same class, errno, strerror and filename).

`Popen` is a subclass of ``subprocess.Popen`` that overrides only
``_execute_child``, so every argument is still checked, converted (``user``,
``group``, ``extra_groups``, ``umask``, ``process_group``, ...) and turned into
file objects by Popen itself, and the object users get from
``get_extra_info('subprocess')`` is a real Popen (``pid``, ``returncode``,
``poll``, ``wait``, ``send_signal``, ...).  vfork is not used: with it, the
parent thread is suspended until the child exec's, which is the wait this
module exists to avoid.
"""

from __future__ import annotations

import builtins
import os
import subprocess
import sys
import weakref
from typing import Any

_fork_exec: Any
try:
    from _posixsubprocess import fork_exec as _fork_exec
except ImportError:  # pragma: no cover - not a POSIX build
    _fork_exec = None

# The interpreters whose fork_exec this module calls with the right
# arguments (the same 23, in the same order, on 3.11, 3.12 and 3.13).
# Elsewhere `spawn_class` answers None and the caller uses Popen as it is.
_FORK_EXEC_KNOWN = _fork_exec is not None and (3, 11) <= sys.version_info[:2] <= (3, 13)

# Popen reads at most this much of the report before giving up on more.
REPORT_LIMIT = 50000

_STANDARD_POPEN = subprocess.Popen

# How the installed Popen names the file of a failure before exec (above).
_BARE_NOEXEC_IS_CWD = sys.version_info < (3, 13)


class Popen(subprocess.Popen):  # type: ignore[type-arg]
    """subprocess.Popen whose start returns once the child is forked, not exec'd.

    After construction, ``_exec_report_fd`` is the read end of the
    exec-error pipe (the caller owns it) and ``_exec_program`` /
    ``_exec_cwd`` are what `exec_error` needs to name a failure.
    """

    _exec_report_fd = -1
    _exec_program: Any = None
    _exec_cwd: Any = None
    _exec_spawn_like = False

    def _execute_child(  # type: ignore[override]
        self,
        args: Any,
        executable: Any,
        preexec_fn: Any,
        close_fds: bool,
        pass_fds: Any,
        cwd: Any,
        env: Any,
        startupinfo: Any,
        creationflags: int,
        shell: bool,
        p2cread: int,
        p2cwrite: int,
        c2pread: int,
        c2pwrite: int,
        errread: int,
        errwrite: int,
        restore_signals: bool,
        gid: int | None,
        gids: Any,
        uid: int | None,
        umask: int,
        start_new_session: bool,
        process_group: int,
    ) -> None:
        argv = _argv(args, shell, executable)
        program = argv[0] if executable is None else executable
        sys.audit("subprocess.Popen", program, argv, cwd, env)
        # Everything that allocates happens here, before the fork: the
        # child only runs fork_exec's C code.
        env_list = None if env is None else [_env_entry(k, v) for k, v in env.items()]
        candidates = _exec_candidates(os.fsencode(program), env)
        report_read, report_write = _report_pipe()
        try:
            try:
                keep = tuple(sorted({*map(int, pass_fds), report_write}))
                self.pid = _fork_exec(
                    argv, candidates, close_fds, keep, cwd, env_list,
                    p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite,
                    report_read, report_write,
                    restore_signals, start_new_session, process_group,
                    gid, gids, uid, umask, preexec_fn,
                    False,  # allow_vfork: see the module docstring
                )  # fmt: skip
                self._child_created = True
            finally:
                os.close(report_write)
            self._close_pipe_fds(  # type: ignore[attr-defined]
                p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite
            )
        except BaseException:
            os.close(report_read)
            raise
        self._exec_report_fd = report_read
        self._exec_program = program
        self._exec_cwd = cwd
        # Popen would have used posix_spawn here, whose errors all name the
        # program (a bad stdin fd included): exec_error names it too.
        self._exec_spawn_like = (
            subprocess._USE_POSIX_SPAWN  # type: ignore[attr-defined]
            and bool(os.path.dirname(program))
            and preexec_fn is None
            and (not close_fds or getattr(subprocess, "_HAVE_POSIX_SPAWN_CLOSEFROM", False))
            and not pass_fds
            and cwd is None
            and all(fd == -1 or fd > 2 for fd in (p2cread, c2pwrite, errwrite))
            and not start_new_session
            and process_group == -1
            and gid is None
            and gids is None
            and uid is None
            and umask < 0
        )


# A replacement of subprocess.Popen that subclasses it -> that class with our start.
_with_our_start: weakref.WeakKeyDictionary[type, type] = weakref.WeakKeyDictionary()


def spawn_class() -> Any:
    """The Popen to start a child with, looked up at each call as asyncio does.

    ``subprocess.Popen`` itself -> `Popen`.  A subclass put in its place (a
    test's spy, a tool's wrapper) that keeps Popen's own ``_execute_child``
    -> a subclass of it that starts the child as `Popen` does, so its
    ``__init__`` and the rest still run.  Anything else (a mock, a
    subclass with its own ``_execute_child``) is called as it is: it then
    decides how the child starts, as on asyncio's loop.
    """
    current = subprocess.Popen
    if current is _STANDARD_POPEN and _FORK_EXEC_KNOWN:
        return Popen
    if (
        not _FORK_EXEC_KNOWN
        or not isinstance(current, type)
        or not issubclass(current, _STANDARD_POPEN)
        or current._execute_child is not _STANDARD_POPEN._execute_child  # type: ignore[attr-defined]
    ):
        return current
    cls = _with_our_start.get(current)
    if cls is None:
        namespace = {"_execute_child": Popen._execute_child, "__module__": current.__module__}
        cls = _with_our_start[current] = type(current.__name__, (current,), namespace)
        cls.__qualname__ = current.__qualname__
    return cls


def exec_error(report: bytes, proc: Any) -> BaseException:
    """The exception Popen raises for what `proc`'s child wrote on the exec-error pipe.

    `proc` was started by `Popen._execute_child` (ours, or a subclass made by
    `spawn_class`), which noted what is needed here.
    """
    program = proc._exec_program
    cwd = proc._exec_cwd
    try:
        name, hex_errno, detail_bytes = report.split(b":", 2)
        detail = detail_bytes.decode()
        kind = getattr(builtins, name.decode("ascii"), subprocess.SubprocessError)
    except (ValueError, UnicodeDecodeError):
        return subprocess.SubprocessError(f"Bad exception data from child: {report!r}")
    if not (isinstance(kind, type) and issubclass(kind, BaseException)):
        kind = subprocess.SubprocessError
    if not (issubclass(kind, OSError) and hex_errno):
        return kind(detail)
    code = int(hex_errno, 16)
    message = os.strerror(code) if code else ("" if detail.startswith("noexec") else detail)
    if detail == "noexec:chdir":  # 3.13: the chdir(cwd) failed
        return kind(code, message, cwd)
    if detail == "noexec":
        # Failed before exec: up to 3.12 the child says no more and Popen
        # names cwd (None included); 3.13 says "noexec:chdir" for that, and
        # names no file for the rest.  Through posix_spawn, always the program.
        if proc._exec_spawn_like:
            return kind(code, message, program)
        if _BARE_NOEXEC_IS_CWD:
            return kind(code, message, cwd)
        return kind(code, message)
    return kind(code, message, program)


def _argv(args: Any, shell: bool, executable: Any) -> list[Any]:
    argv: list[Any]
    if isinstance(args, (str, bytes)):
        argv = [args]
    elif isinstance(args, os.PathLike):
        if shell:
            raise TypeError("path-like args is not allowed when shell is true")
        argv = [args]
    else:
        argv = list(args)
    if shell:
        argv = ["/bin/sh", "-c", *argv]
        if executable:
            argv[0] = executable
    return argv


def _env_entry(name: Any, value: Any) -> bytes:
    key = os.fsencode(name)
    if b"=" in key:
        raise ValueError("illegal environment variable name")
    return key + b"=" + os.fsencode(value)


def _exec_candidates(program: bytes, env: Any) -> tuple[bytes, ...]:
    """The paths exec is tried on, in order: a bare name is looked up on PATH (as execvp)."""
    if os.path.dirname(program):
        return (program,)
    return tuple(os.path.join(os.fsencode(d), program) for d in os.get_exec_path(env))


def _report_pipe() -> tuple[int, int]:
    """The exec-error pipe; its write end above 2, where the child's stdio is set up."""
    read_fd, write_fd = os.pipe()
    low = []
    while write_fd < 3:
        low.append(write_fd)
        write_fd = os.dup(write_fd)
    for fd in low:
        os.close(fd)
    os.set_blocking(read_fd, False)
    return read_fd, write_fd


__all__ = ["REPORT_LIMIT", "Popen", "exec_error", "spawn_class"]
