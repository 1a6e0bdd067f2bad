"""Subprocesses: the loop's ``subprocess_exec`` / ``subprocess_shell``.

The child is started by `_spawn` (a ``subprocess.Popen`` that returns once
the child is forked; the loop then reads the exec-error pipe, so nothing
waits for the exec on the loop thread); its PIPE ends become pipe transports through the loop's own
``connect_write_pipe`` / ``connect_read_pipe``, each driven by a small pipe
protocol that forwards to the SubprocessProtocol as ``pipe_data_received``,
``pipe_connection_lost`` and (for stdin's flow control) ``pause_writing`` /
``resume_writing``.

How the child's exit is seen
----------------------------
Where the kernel has it (Linux >= 5.3), ``os.pidfd_open(pid)`` gives an fd
that polls readable when the child exits; it is registered as an ordinary
reader on the loop, and its callback reaps the child with
``os.waitpid(pid, WNOHANG)`` (no zombie is left).  No thread per child, no
SIGCHLD handler, and it works from a loop in any thread.  Signals go through
``signal.pidfd_send_signal`` while the pidfd is open: it names this process,
never another one that happened to get the same pid after a reap.

Without pidfds (ENOSYS on an old kernel, refused by a seccomp filter, another
OS) each child gets a daemon thread blocked in ``os.waitpid(pid, 0)`` that
hands the status back with ``call_soon_threadsafe``.  One thread per child,
not one per loop: a single thread blocked in ``waitpid`` on one child would
miss the others' exits until that one ended.

If somebody else reaps the child first (``Popen.wait()``/``poll()`` on the
``get_extra_info('subprocess')`` object, for instance), the status is taken
from the Popen object; failing that it is 255 with a warning, as asyncio's
watchers report.

Ordering, as asyncio's
----------------------
Protocol callbacks are queued with ``call_soon`` and held back until the
pipes are connected and ``connection_made`` is scheduled; then
``pipe_data_received`` / ``pipe_connection_lost`` per pipe in order,
``process_exited`` when the child is reaped, and ``connection_lost`` only once
the child has exited *and* every pipe is closed.  ``_wait()`` (what
``asyncio.subprocess.Process.wait`` awaits) resolves right after
``connection_lost``; from then on ``send_signal``/``terminate``/``kill`` raise
ProcessLookupError.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import logging
import os
import signal as _signal
import subprocess
import threading
import warnings
from collections.abc import Callable
from typing import Any, TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from .._loop import EventLoop  # annotations only: _loop imports this module

from . import _spawn

logger = logging.getLogger("asyncio")

_ProtocolT = TypeVar("_ProtocolT", bound=asyncio.BaseProtocol)

PIPE = subprocess.PIPE
STDOUT = subprocess.STDOUT
DEVNULL = subprocess.DEVNULL

# Whether to try pidfd_open at all.  Turned off for the process on the first
# error saying the kernel (or a sandbox) will never give one; tests turn it
# off to exercise the thread fallback.
use_pidfd: bool = hasattr(os, "pidfd_open")
_PIDFD_NEVER = {errno.ENOSYS, errno.EPERM, errno.EACCES}

_pidfd_send_signal: Callable[..., None] | None = getattr(_signal, "pidfd_send_signal", None)


class _PipeProto(asyncio.BaseProtocol):
    """Protocol of a child's stdin pipe: forwards its end and flow control to the transport."""

    __slots__ = ("disconnected", "fd", "pipe", "proc")

    def __init__(self, proc: SubprocessTransport, fd: int) -> None:
        self.proc: Any = proc
        self.fd = fd
        self.pipe: Any = None
        self.disconnected = False

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} fd={self.fd} pipe={self.pipe!r}>"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.pipe = transport

    def connection_lost(self, exc: BaseException | None) -> None:
        self.disconnected = True
        self.proc._pipe_connection_lost(self.fd, exc)
        self.proc = None

    def pause_writing(self) -> None:
        self.proc._protocol.pause_writing()

    def resume_writing(self) -> None:
        self.proc._protocol.resume_writing()


class _ReadPipeProto(_PipeProto, asyncio.Protocol):
    """Protocol of a child's stdout/stderr pipe."""

    __slots__ = ()

    def data_received(self, data: bytes) -> None:
        self.proc._pipe_data_received(self.fd, data)


class SubprocessTransport(asyncio.SubprocessTransport):
    """A child process and its pipes, as asyncio's subprocess transport."""

    __slots__ = (
        "__dict__",  # asyncio's transports accept attributes (tests patch methods)
        "__weakref__",
        "_closed",
        "_exec_report_fd",
        "_exit_waiters",
        "_finished",
        "_loop",
        "_pending_calls",
        "_pid",
        "_pidfd",
        "_pipes",
        "_proc",
        "_protocol",
        "_returncode",
    )

    def __init__(
        self,
        loop: Any,
        protocol: asyncio.BaseProtocol,
        args: Any,
        shell: bool,
        stdin: Any,
        stdout: Any,
        stderr: Any,
        bufsize: int,
        waiter: asyncio.Future[Any] | None = None,
        extra: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        extra = {} if extra is None else extra
        super().__init__(extra)  # kept as self._extra: filled in below
        # First: __del__ reads these even if Popen fails.
        self._closed = False
        self._pidfd = -1
        self._exec_report_fd = -1
        self._protocol: Any = protocol
        self._loop = loop
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None
        self._returncode: int | None = None
        self._exit_waiters: list[asyncio.Future[Any]] | None = []
        # Protocol calls held back until connection_made is scheduled.
        self._pending_calls: collections.deque[Any] | None = collections.deque()
        # fd -> its pipe protocol (None until connected), for each PIPE.
        self._pipes: dict[int, _PipeProto | None] = {}
        self._finished = False
        if stdin == PIPE:
            self._pipes[0] = None
        if stdout == PIPE:
            self._pipes[1] = None
        if stderr == PIPE:
            self._pipes[2] = None
        try:
            # Forks and returns: whether the child exec'd is read by the loop
            # (_exec_outcome).  Looked up at each call: see _spawn.spawn_class.
            self._proc = _spawn.spawn_class()(
                args,
                shell=shell,
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                universal_newlines=False,
                bufsize=bufsize,
                **kwargs,
            )
        except BaseException:
            self.close()
            raise
        self._pid = self._proc.pid
        # The exec-error pipe's read end (ours to close), or -1: a replaced
        # subprocess.Popen already waited for the exec.
        self._exec_report_fd = getattr(self._proc, "_exec_report_fd", -1)
        extra["subprocess"] = self._proc
        if loop.get_debug():
            program = args if isinstance(args, (bytes, str)) else args[0]
            logger.debug("process %r created: pid %s", program, self._pid)
        self._watch_exit()
        loop.create_task(self._connect_pipes(waiter))

    def __repr__(self) -> str:
        info = [self.__class__.__name__]
        if self._closed:
            info.append("closed")
        if self._pid is not None:
            info.append(f"pid={self._pid}")
        if self._returncode is not None:
            info.append(f"returncode={self._returncode}")
        elif self._pid is not None:
            info.append("running")
        else:
            info.append("not started")
        stdin = self._pipes.get(0)
        if stdin is not None:
            info.append(f"stdin={stdin.pipe}")
        stdout = self._pipes.get(1)
        stderr = self._pipes.get(2)
        if stdout is not None and stderr is stdout:
            info.append(f"stdout=stderr={stdout.pipe}")
        else:
            if stdout is not None:
                info.append(f"stdout={stdout.pipe}")
            if stderr is not None:
                info.append(f"stderr={stderr.pipe}")
        return "<{}>".format(" ".join(info))

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        if not self._closed:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            self.close()
        loop = self._loop
        if self._pidfd >= 0 and (loop is None or loop.is_closed()):
            # The loop was dropped before the child exited.  (While the loop
            # lives, its reader holds this transport, so only an explicit
            # __del__() gets here with it open: the reader still reaps the
            # child, and closes the pidfd.)
            os.close(self._pidfd)
            self._pidfd = -1
        self._close_exec_report()  # only when the loop was dropped before the exec

    # -- watching the child's exit -------------------------------------------

    def _watch_exit(self) -> None:
        global use_pidfd
        pid = self._pid
        assert pid is not None
        if use_pidfd:
            try:
                pidfd = os.pidfd_open(pid)
            except OSError as exc:
                if exc.errno in _PIDFD_NEVER:
                    use_pidfd = False
                # ESRCH: already reaped by someone else; the thread reports it.
            else:
                self._pidfd = pidfd
                self._loop._add_reader(pidfd, self._pidfd_ready)
                return
        self._start_wait_thread()

    def _start_wait_thread(self) -> None:
        pid = self._pid
        threading.Thread(
            target=_wait_in_thread,
            args=(self._loop, self, pid),
            name=f"tidal-waitpid-{pid}",
            daemon=True,
        ).start()

    def _pidfd_ready(self) -> None:
        """The pidfd polled readable: the child has exited; reap it."""
        pidfd = self._pidfd
        self._loop._remove_reader(pidfd)
        os.close(pidfd)
        self._pidfd = -1
        pid = self._pid
        assert pid is not None
        try:
            wpid, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            returncode = None
        else:
            if wpid == 0:
                # Readable yet not waitable: not a state the kernel documents.
                # Staying registered would spin (level-triggered); block in a
                # thread instead.
                self._start_wait_thread()
                return
            returncode = os.waitstatus_to_exitcode(status)
        self._child_exited(returncode)

    def _child_exited(self, returncode: int | None) -> None:
        """Reaped (returncode), or reaped by somebody else (None)."""
        if self._returncode is not None:
            return
        if returncode is None:
            proc = self._proc
            returncode = None if proc is None else proc.returncode
            if returncode is None:
                logger.warning(
                    "Unknown child process pid %d, will report returncode 255", self._pid
                )
                returncode = 255
        elif self._loop.get_debug():
            logger.debug("process %s exited with returncode %s", self._pid, returncode)
        self._process_exited(returncode)

    # -- pipes -----------------------------------------------------------------

    async def _connect_pipes(self, waiter: asyncio.Future[Any] | None) -> None:
        try:
            proc = self._proc
            loop = self._loop
            assert proc is not None
            if self._exec_report_fd >= 0:
                await self._exec_outcome()
            # Through the loop's public methods, so wrappers of them see the pipes.
            if proc.stdin is not None:
                _, pipe = await loop.connect_write_pipe(lambda: _PipeProto(self, 0), proc.stdin)
                self._pipes[0] = pipe
            if proc.stdout is not None:
                _, pipe = await loop.connect_read_pipe(lambda: _ReadPipeProto(self, 1), proc.stdout)
                self._pipes[1] = pipe
            if proc.stderr is not None:
                _, pipe = await loop.connect_read_pipe(lambda: _ReadPipeProto(self, 2), proc.stderr)
                self._pipes[2] = pipe
            pending = self._pending_calls
            assert pending is not None
            loop.call_soon(self._protocol.connection_made, self)
            for callback, args in pending:
                loop.call_soon(callback, *args)
            self._pending_calls = None
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._connect_failed()
            if waiter is not None and not waiter.cancelled():
                waiter.set_exception(exc)
        else:
            if waiter is not None and not waiter.cancelled():
                waiter.set_result(None)

    async def _exec_outcome(self) -> None:
        """Wait, on the loop, for the child to exec: EOF on the exec-error pipe.

        Anything written there instead says why it did not (the child then
        exits by itself, and is reaped like any other): raised as Popen does.
        """
        fd = self._exec_report_fd
        loop = self._loop
        done = loop.create_future()
        report = bytearray()

        def readable() -> None:
            try:
                part = os.read(fd, _spawn.REPORT_LIMIT)
            except (BlockingIOError, InterruptedError):
                return
            report.extend(part)
            if part and len(report) <= _spawn.REPORT_LIMIT:
                return
            loop._remove_reader(fd)
            if not done.done():
                done.set_result(None)

        loop._add_reader(fd, readable)
        try:
            await done
        finally:
            loop._remove_reader(fd)
            self._close_exec_report()
        if report:
            proc = self._proc
            raise _spawn.exec_error(bytes(report), proc)

    def _close_exec_report(self) -> None:
        fd = self._exec_report_fd
        if fd >= 0:
            self._exec_report_fd = -1
            os.close(fd)

    def _connect_failed(self) -> None:
        """A pipe could not be connected: the protocol was never connected, so it hears
        nothing more, but the transport still finishes (and _wait() returns) once the
        child is gone.  (asyncio's would wait forever for the pipe that never came.)"""
        proc = self._proc
        for fd, proto in list(self._pipes.items()):
            if proto is None:
                del self._pipes[fd]
                if proc is not None:
                    stream = (proc.stdin, proc.stdout, proc.stderr)[fd]
                    if stream is not None:
                        stream.close()
        pending = self._pending_calls or ()
        self._pending_calls = None
        self._protocol = asyncio.SubprocessProtocol()
        for callback, args in pending:
            if callback == self._call_connection_lost:
                self._loop.call_soon(callback, *args)
        if not self._finished:
            self._try_finish()

    def _call(self, callback: Callable[..., object], *args: Any) -> None:
        pending = self._pending_calls
        if pending is not None:
            pending.append((callback, args))
        else:
            self._loop.call_soon(callback, *args)

    def _pipe_connection_lost(self, fd: int, exc: BaseException | None) -> None:
        self._call(self._protocol.pipe_connection_lost, fd, exc)
        self._try_finish()

    def _pipe_data_received(self, fd: int, data: bytes) -> None:
        self._call(self._protocol.pipe_data_received, fd, data)

    def _process_exited(self, returncode: int) -> None:
        if self._loop.get_debug():
            logger.info("%r exited with return code %r", self, returncode)
        self._returncode = returncode
        proc = self._proc
        if proc is not None and proc.returncode is None:
            # The Popen object did not reap it: tell it, or it warns "still running".
            proc.returncode = returncode
        self._call(self._protocol.process_exited)
        self._try_finish()

    def _try_finish(self) -> None:
        if self._returncode is None or self._finished:
            return
        if all(p is not None and p.disconnected for p in self._pipes.values()):
            self._finished = True
            self._call(self._call_connection_lost, None)

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        try:
            self._protocol.connection_lost(exc)
        finally:
            for waiter in self._exit_waiters or ():
                if not waiter.cancelled():
                    waiter.set_result(self._returncode)
            self._exit_waiters = None
            self._loop = None
            self._proc = None
            self._protocol = None

    async def _wait(self) -> int:
        """The exit code, once the child has exited and every pipe is closed
        (asyncio's rule); at once if it has exited and a pipe is still open.

        When everything has ended but connection_lost is still queued, wait
        for it: from then on the transport says ProcessLookupError to
        signals, so "wait() returned" always means "gone", whether the exit
        was seen in this turn or long ago.  (asyncio's loop answers at once
        there too, and signals are then ignored: it hops through
        call_soon_threadsafe before it notes the exit, so a waiting task has
        usually run before; tidal notes it in the pidfd's own callback.)
        """
        if self._returncode is not None and (not self._finished or self._exit_waiters is None):
            return self._returncode
        waiter = self._loop.create_future()
        assert self._exit_waiters is not None
        self._exit_waiters.append(waiter)
        return await waiter  # type: ignore[no-any-return]

    # -- SubprocessTransport -------------------------------------------------

    def get_pid(self) -> int | None:  # type: ignore[override]
        return self._pid

    def get_returncode(self) -> int | None:
        return self._returncode

    def get_pipe_transport(self, fd: int) -> Any:
        proto = self._pipes.get(fd)
        return None if proto is None else proto.pipe

    def send_signal(self, signal: int) -> None:
        """Signal the child; ProcessLookupError once the transport has finished."""
        if self._proc is None:
            raise ProcessLookupError()
        if self._pidfd >= 0 and _pidfd_send_signal is not None:
            try:
                _pidfd_send_signal(self._pidfd, signal)
            except ProcessLookupError:
                pass  # reaped by somebody else: nothing to signal
            return
        if self._returncode is not None or self._proc.returncode is not None:
            return  # reaped: the pid may already name another process
        try:
            os.kill(self._proc.pid, signal)
        except ProcessLookupError:
            pass

    def terminate(self) -> None:
        self.send_signal(_signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(_signal.SIGKILL)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol  # type: ignore[no-any-return]

    def is_closing(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close the pipes and kill the child if it is still running (as asyncio)."""
        if self._closed:
            return
        self._closed = True
        for proto in self._pipes.values():
            if proto is not None:
                proto.pipe.close()
        proc = self._proc
        if (
            proc is not None
            # not reaped yet, and not exited behind our back either
            and self._returncode is None
            and proc.poll() is None
        ):
            if self._loop.get_debug():
                logger.warning("Close running child process: kill %r", self)
            try:
                proc.kill()
            except (ProcessLookupError, PermissionError):
                pass
            # Keep _proc: the exit is still to be reported.


def _wait_in_thread(loop: Any, transport: SubprocessTransport, pid: int) -> None:
    """Fallback without pidfds: block in waitpid on a daemon thread, report on the loop."""
    returncode: int | None
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        returncode = None  # reaped elsewhere: the loop side asks the Popen object
    else:
        returncode = os.waitstatus_to_exitcode(status)
    if loop.is_closed():
        logger.warning("Loop %r that handles pid %r is closed", loop, pid)
        return
    try:
        loop.call_soon_threadsafe(transport._child_exited, returncode)
    except RuntimeError:
        logger.warning("Loop %r that handles pid %r is closed", loop, pid)


def _format_pipe(fd: Any) -> str:
    if fd == PIPE:
        return "<pipe>"
    if fd == STDOUT:
        return "<stdout>"
    return repr(fd)


def _log_subprocess(msg: str, stdin: Any, stdout: Any, stderr: Any) -> None:
    info = [msg]
    if stdin is not None:
        info.append(f"stdin={_format_pipe(stdin)}")
    if stdout is not None and stderr == STDOUT:
        info.append(f"stdout=stderr={_format_pipe(stdout)}")
    else:
        if stdout is not None:
            info.append(f"stdout={_format_pipe(stdout)}")
        if stderr is not None:
            info.append(f"stderr={_format_pipe(stderr)}")
    logger.debug(" ".join(info))


async def _make_transport(
    loop: Any,
    protocol: asyncio.BaseProtocol,
    args: Any,
    shell: bool,
    stdin: Any,
    stdout: Any,
    stderr: Any,
    bufsize: int,
    extra: dict[str, Any] | None = None,
    **kwargs: Any,
) -> SubprocessTransport:
    waiter = loop.create_future()
    transport = SubprocessTransport(
        loop, protocol, args, shell, stdin, stdout, stderr, bufsize, waiter, extra, **kwargs
    )
    try:
        await waiter
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException:
        # Cancelled, the exec failed or a pipe did: kill the child and wait
        # it out, so no zombie stays.
        transport.close()
        await transport._wait()
        raise
    finally:
        # The waiter holds the exception; this frame is in its traceback.
        waiter = None
    return transport


async def subprocess_exec(
    self: EventLoop,
    protocol_factory: Callable[[], _ProtocolT],
    program: Any,
    *args: Any,
    stdin: Any = PIPE,
    stdout: Any = PIPE,
    stderr: Any = PIPE,
    universal_newlines: bool = False,
    shell: bool = False,
    bufsize: int = 0,
    encoding: str | None = None,
    errors: str | None = None,
    text: bool | None = None,
    **kwargs: Any,
) -> tuple[SubprocessTransport, _ProtocolT]:
    """Run `program` with `args` as a child; (transport, protocol).  Bytes only, no shell."""
    if universal_newlines:
        raise ValueError("universal_newlines must be False")
    if shell:
        raise ValueError("shell must be False")
    if bufsize != 0:
        raise ValueError("bufsize must be 0")
    if text:
        raise ValueError("text must be False")
    if encoding is not None:
        raise ValueError("encoding must be None")
    if errors is not None:
        raise ValueError("errors must be None")
    popen_args = (program,) + args
    protocol = protocol_factory()
    debug_log = None
    if self._debug:
        # Not the arguments: they may hold secrets, and be long.
        debug_log = f"execute program {program!r}"
        _log_subprocess(debug_log, stdin, stdout, stderr)
    transport = await _make_transport(
        self, protocol, popen_args, False, stdin, stdout, stderr, bufsize, **kwargs
    )
    if self._debug and debug_log is not None:
        logger.info("%s: %r", debug_log, transport)
    return transport, protocol


async def subprocess_shell(
    self: EventLoop,
    protocol_factory: Callable[[], _ProtocolT],
    cmd: str | bytes,
    *,
    stdin: Any = PIPE,
    stdout: Any = PIPE,
    stderr: Any = PIPE,
    universal_newlines: bool = False,
    shell: bool = True,
    bufsize: int = 0,
    encoding: str | None = None,
    errors: str | None = None,
    text: bool | None = None,
    **kwargs: Any,
) -> tuple[SubprocessTransport, _ProtocolT]:
    """Run `cmd` through the shell as a child; (transport, protocol).  Bytes only."""
    if not isinstance(cmd, (bytes, str)):
        raise ValueError("cmd must be a string")
    if universal_newlines:
        raise ValueError("universal_newlines must be False")
    if not shell:
        raise ValueError("shell must be True")
    if bufsize != 0:
        raise ValueError("bufsize must be 0")
    if text:
        raise ValueError("text must be False")
    if encoding is not None:
        raise ValueError("encoding must be None")
    if errors is not None:
        raise ValueError("errors must be None")
    protocol = protocol_factory()
    debug_log = None
    if self._debug:
        debug_log = f"run shell command {cmd!r}"
        _log_subprocess(debug_log, stdin, stdout, stderr)
    transport = await _make_transport(
        self, protocol, cmd, True, stdin, stdout, stderr, bufsize, **kwargs
    )
    if self._debug and debug_log is not None:
        logger.info("%s: %r", debug_log, transport)
    return transport, protocol


__all__ = ["SubprocessTransport", "subprocess_exec", "subprocess_shell"]
