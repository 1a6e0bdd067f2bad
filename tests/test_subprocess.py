"""Subprocesses (subprocess_exec / subprocess_shell, asyncio.create_subprocess_*) on both loops.

Real children (``sys.executable -c ...``).  Each test runs on asyncio's loop
and on tidal's; the few that check tidal's own mechanics (pidfd, the thread
fallback, statuses taken from a Popen that reaped the child) say so.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from typing import Any

import pytest

from tidal.transports import _subprocess

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="Unix children")

PY = sys.executable
# Echo stdin to stdout chunk by chunk, so both directions flow at once.
ECHO = (
    "import sys\n"
    "r, w = sys.stdin.buffer, sys.stdout.buffer\n"
    "while True:\n"
    "    b = r.read1(65536)\n"
    "    if not b: break\n"
    "    w.write(b); w.flush()\n"
)
SLEEP = "import time; print('ready', flush=True); time.sleep(60)"
PIPE = asyncio.subprocess.PIPE


def assert_reaped(pid: int) -> None:
    """No zombie: the kernel has nothing left for this pid."""
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    assert not os.path.exists(f"/proc/{pid}") or _state(pid) != "Z"


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


class Recorder(asyncio.SubprocessProtocol):
    """Every callback, in order; `lost` resolves on connection_lost."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.events: list[Any] = []
        self.data: dict[int, bytes] = {1: b"", 2: b""}
        self.transport: Any = None
        self.lost = loop.create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.events.append("made")

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        self.data[fd] += data
        if self.events[-1] != ("data", fd):
            self.events.append(("data", fd))

    def pipe_connection_lost(self, fd: int, exc: BaseException | None) -> None:
        self.events.append(("pipe_lost", fd, exc))

    def process_exited(self) -> None:
        self.events.append(("exited", self.transport.get_returncode()))

    def connection_lost(self, exc: BaseException | None) -> None:
        self.events.append("lost")
        self.lost.set_result(exc)


def test_communicate_10mb_both_ways(loop, arun):
    payload = os.urandom(10 * 1024 * 1024)

    async def main():
        proc = await asyncio.create_subprocess_exec(PY, "-c", ECHO, stdin=PIPE, stdout=PIPE)
        out, err = await proc.communicate(payload)
        assert err is None
        assert len(out) == len(payload) and out == payload
        assert proc.returncode == 0
        assert await proc.wait() == 0
        assert_reaped(proc.pid)

    arun(main(), timeout=60)


def test_exit_codes(loop, arun):
    async def main():
        proc = await asyncio.create_subprocess_exec(PY, "-c", "import sys; sys.exit(3)")
        assert await proc.wait() == 3
        assert proc.returncode == 3
        proc = await asyncio.create_subprocess_shell("exit 7")
        assert await proc.wait() == 7
        proc = await asyncio.create_subprocess_exec(PY, "-c", "pass")
        results = await asyncio.gather(*[proc.wait() for _ in range(5)])
        assert results == [0] * 5

    arun(main())


@pytest.mark.parametrize(
    "how, expected",
    [
        ("kill", -signal.SIGKILL),
        ("terminate", -signal.SIGTERM),
        ("send_signal", -signal.SIGHUP),
    ],
)
def test_signals(loop, arun, how, expected):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            PY, "-c", SLEEP, stdout=PIPE, restore_signals=True
        )
        assert await proc.stdout.readline() == b"ready\n"
        assert proc.returncode is None
        if how == "send_signal":
            proc.send_signal(signal.SIGHUP)
        else:
            getattr(proc, how)()
        assert await proc.wait() == expected
        assert proc.returncode == expected
        assert_reaped(proc.pid)
        # Gone: every way of signalling it now says so.
        for call in (proc.kill, proc.terminate, lambda: proc.send_signal(signal.SIGINT)):
            with pytest.raises(ProcessLookupError):
                call()

    old = signal.signal(signal.SIGHUP, signal.SIG_DFL)  # children inherit SIG_IGN otherwise
    try:
        arun(main())
    finally:
        signal.signal(signal.SIGHUP, old)


def test_signal_after_exit_before_connection_lost_is_ignored(loop, arun):
    # The child exits at once but a grandchild keeps its stdout open a while:
    # the exit is known, the transport not finished.  Signalling then is a
    # no-op (the pid may already be someone else's); after connection_lost,
    # ProcessLookupError.
    code = "import subprocess; subprocess.Popen(['sleep', '0.5'])"

    async def main():
        transport, proto = await loop.subprocess_exec(
            lambda: Recorder(loop), PY, "-c", code, stdin=None, stderr=None
        )
        while ("exited", 0) not in proto.events:
            await asyncio.sleep(0.01)
        assert not proto.lost.done()
        transport.send_signal(signal.SIGUSR1)
        transport.kill()
        assert await proto.lost is None
        assert transport.get_returncode() == 0
        with pytest.raises(ProcessLookupError):
            transport.kill()
        transport.close()

    arun(main())


def test_stdin_devnull_stderr_to_stdout(loop, arun):
    code = (
        "import sys\n"
        "n = len(sys.stdin.buffer.read())\n"
        "sys.stdout.write(f'out{n};'); sys.stdout.flush()\n"
        "sys.stderr.write('err;'); sys.stderr.flush()\n"
    )

    async def main():
        proc = await asyncio.create_subprocess_exec(
            PY,
            "-c",
            code,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        assert proc.stdin is None and proc.stderr is None
        out, err = await proc.communicate()
        assert out == b"out0;err;"
        assert err is None
        assert proc.returncode == 0

    arun(main())


def test_file_objects_and_fds(loop, arun, tmp_path):
    src = tmp_path / "in"
    src.write_bytes(b"from a file")
    code = (
        "import sys\n"
        "d = sys.stdin.buffer.read()\n"
        "sys.stdout.buffer.write(d.upper())\n"
        "sys.stderr.buffer.write(d[::-1])\n"
    )

    async def main():
        with open(src, "rb") as fin, open(tmp_path / "out", "wb") as fout:
            errfd = os.open(tmp_path / "err", os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                proc = await asyncio.create_subprocess_exec(
                    PY, "-c", code, stdin=fin, stdout=fout, stderr=errfd
                )
                assert proc.stdin is None and proc.stdout is None and proc.stderr is None
                assert await proc.wait() == 0
            finally:
                os.close(errfd)
        assert (tmp_path / "out").read_bytes() == b"FROM A FILE"
        assert (tmp_path / "err").read_bytes() == b"elif a morf"

    arun(main())


def test_flooding_child_is_held_back(loop, arun):
    # The child writes 16 MiB as fast as it can and reports its progress on
    # stderr; nobody reads stdout.  The StreamReader's limit pauses the pipe
    # transport, the kernel pipe fills, and the child blocks: memory stays bounded.
    total = 16 * 1024 * 1024
    code = (
        "import sys\n"
        "chunk = b'f' * 16384\n"
        f"for i in range({total} // 16384):\n"
        "    sys.stdout.buffer.write(chunk); sys.stdout.buffer.flush()\n"
        "    sys.stderr.write(f'{(i + 1) * 16384}\\n'); sys.stderr.flush()\n"
    )
    limit = 64 * 1024

    async def main():
        proc = await asyncio.create_subprocess_exec(
            PY, "-c", code, stdout=PIPE, stderr=PIPE, limit=limit
        )
        stdout_transport = proc._transport.get_pipe_transport(1)
        written = 0
        while True:
            try:
                line = await asyncio.wait_for(proc.stderr.readline(), 0.5)
            except TimeoutError:
                if written and not stdout_transport.is_reading():
                    break  # the child is stuck in write(): held back
                continue  # a slow start or a loaded machine, not yet held back
            written = int(line)  # (b"" at the child's exit: it was never held back)
        # Pipe capacity + 2 * limit in the StreamReader + one read, with room.
        assert 0 < written < 1024 * 1024
        got = 0
        while chunk := await proc.stdout.read(1 << 20):
            got += len(chunk)
        await proc.stderr.read()
        assert got == total
        assert await proc.wait() == 0

    arun(main(), timeout=60)


def test_protocol_callback_order(loop, arun):
    code = (
        "import sys\n"
        "d = sys.stdin.buffer.read()\n"
        "sys.stdout.buffer.write(b'O' + d); sys.stdout.flush()\n"
        "sys.stderr.buffer.write(b'E' + d); sys.stderr.flush()\n"
        "sys.exit(5)\n"
    )

    async def main():
        transport, proto = await loop.subprocess_exec(lambda: Recorder(loop), PY, "-c", code)
        assert proto.events == ["made"]
        assert isinstance(transport, asyncio.SubprocessTransport)
        pid = transport.get_pid()
        assert pid > 0 and transport.get_returncode() is None
        assert "running" in repr(transport) and f"pid={pid}" in repr(transport)
        assert transport.get_extra_info("subprocess").pid == pid
        stdin = transport.get_pipe_transport(0)
        assert isinstance(stdin, asyncio.WriteTransport)
        assert isinstance(transport.get_pipe_transport(1), asyncio.ReadTransport)
        assert isinstance(transport.get_pipe_transport(2), asyncio.ReadTransport)
        assert transport.get_pipe_transport(3) is None
        stdin.write(b"hi")
        stdin.close()
        assert await proto.lost is None
        assert proto.data == {1: b"Ohi", 2: b"Ehi"}
        ev = proto.events
        # connection_lost last, after the exit and after every pipe's end.
        assert ev[-1] == "lost"
        assert ("exited", 5) in ev
        for fd in (0, 1, 2):
            assert ("pipe_lost", fd, None) in ev
        for fd in (1, 2):
            assert ev.index(("data", fd)) < ev.index(("pipe_lost", fd, None))
        assert transport.get_returncode() == 5
        assert "returncode=5" in repr(transport)
        assert await transport._wait() == 5  # what Process.wait() awaits
        transport.close()
        assert transport.is_closing()
        assert_reaped(pid)

    arun(main())


def test_close_kills_a_running_child(loop, arun):
    async def main():
        transport, proto = await loop.subprocess_exec(
            lambda: Recorder(loop), PY, "-c", SLEEP, stdin=None, stderr=None
        )
        pid = transport.get_pid()
        transport.close()
        transport.close()  # idempotent
        assert await asyncio.wait_for(transport._wait(), 10) == -signal.SIGKILL
        await proto.lost
        assert ("exited", -signal.SIGKILL) in proto.events
        assert_reaped(pid)

    arun(main())


def test_close_after_exit_does_not_kill(loop, arun):
    async def main():
        transport, proto = await loop.subprocess_exec(
            lambda: Recorder(loop), PY, "-c", "pass", stdin=None, stdout=None, stderr=None
        )
        await proto.lost
        assert transport.get_returncode() == 0
        transport.close()
        assert transport.get_returncode() == 0

    arun(main())


def test_cancelled_spawn_leaves_no_zombie(loop, arun):
    pids: list[int] = []
    real_popen = subprocess.Popen

    class Spy(real_popen):  # type: ignore[misc, valid-type]
        def __init__(self, *a: Any, **k: Any) -> None:
            super().__init__(*a, **k)
            pids.append(self.pid)

    async def main():
        subprocess.Popen = Spy  # looked up at call time by both loops
        try:
            task = loop.create_task(asyncio.create_subprocess_exec(PY, "-c", SLEEP))
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            subprocess.Popen = real_popen  # type: ignore[misc]
        assert len(pids) == 1
        for _ in range(100):
            await asyncio.sleep(0.01)
            if _state(pids[0]) == "gone":
                break
        assert_reaped(pids[0])

    arun(main())


def test_popen_error_propagates(loop, arun):
    async def main():
        with pytest.raises(FileNotFoundError):
            await asyncio.create_subprocess_exec("/nonexistent/program/for/tidal", stdin=PIPE)
        with pytest.raises(FileNotFoundError):
            await loop.subprocess_exec(
                asyncio.SubprocessProtocol, "x", cwd="/nonexistent/dir/for/tidal"
            )

    arun(main())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"universal_newlines": True}, "universal_newlines must be False"),
        ({"shell": True}, "shell must be False"),
        ({"bufsize": 4096}, "bufsize must be 0"),
        ({"text": True}, "text must be False"),
        ({"encoding": "utf-8"}, "encoding must be None"),
        ({"errors": "strict"}, "errors must be None"),
    ],
)
def test_exec_bad_arguments(loop, arun, kwargs, message):
    async def main():
        with pytest.raises(ValueError, match=f"^{message}$"):
            await loop.subprocess_exec(asyncio.SubprocessProtocol, PY, "-c", "pass", **kwargs)

    arun(main())


@pytest.mark.parametrize(
    "cmd, kwargs, message",
    [
        (["ls", "-l"], {}, "cmd must be a string"),
        ("true", {"universal_newlines": True}, "universal_newlines must be False"),
        ("true", {"shell": False}, "shell must be True"),
        ("true", {"bufsize": 4096}, "bufsize must be 0"),
        ("true", {"text": True}, "text must be False"),
        ("true", {"encoding": "utf-8"}, "encoding must be None"),
        ("true", {"errors": "strict"}, "errors must be None"),
    ],
)
def test_shell_bad_arguments(loop, arun, cmd, kwargs, message):
    async def main():
        with pytest.raises(ValueError, match=f"^{message}$"):
            await loop.subprocess_shell(asyncio.SubprocessProtocol, cmd, **kwargs)

    arun(main())


def test_loop_in_a_non_main_thread(loop_factory, loop_name):
    # tidal: the pidfd is a reader on this thread's loop, no thread started.
    # asyncio: the policy's child watcher, ThreadedChildWatcher on 3.11 and
    # PidfdChildWatcher on 3.12/3.13; both serve a loop in any thread.
    result: dict[str, Any] = {}

    def in_thread() -> None:
        lp = loop_factory()
        errors: list[Any] = []
        lp.set_exception_handler(lambda _l, ctx: errors.append(ctx))

        async def main() -> None:
            proc = await asyncio.create_subprocess_exec(PY, "-c", ECHO, stdin=PIPE, stdout=PIPE)
            result["threads"] = [t.name for t in threading.enumerate()]
            out, _ = await proc.communicate(b"from a thread")
            result["out"] = out
            result["code"] = proc.returncode
            result["pid"] = proc.pid

        try:
            lp.run_until_complete(asyncio.wait_for(main(), 30))
            result["errors"] = errors
        except BaseException as exc:  # reported to the main thread
            result["exc"] = exc
        finally:
            lp.close()

    t = threading.Thread(target=in_thread)
    t.start()
    t.join(60)
    assert not t.is_alive()
    assert "exc" not in result, result.get("exc")
    assert result["out"] == b"from a thread" and result["code"] == 0
    assert result["errors"] == []
    assert_reaped(result["pid"])
    if loop_name == "tidal" and _subprocess.use_pidfd:
        assert not any(n.startswith("tidal-waitpid") for n in result["threads"])


def test_many_children_at_once(loop, arun):
    async def one(i: int) -> bytes:
        proc = await asyncio.create_subprocess_exec(PY, "-c", f"print({i})", stdout=PIPE)
        out, _ = await proc.communicate()
        assert proc.returncode == 0
        return out

    async def main():
        outs = await asyncio.gather(*[one(i) for i in range(20)])
        assert outs == [f"{i}\n".encode() for i in range(20)]

    arun(main(), timeout=60)


def test_stdin_broken_pipe_reported_to_drain(loop, arun):
    async def main():
        proc = await asyncio.create_subprocess_exec(PY, "-c", "pass", stdin=PIPE)
        assert await proc.wait() == 0
        # wait() may return before stdin's end is seen (when the exit was known
        # before wait() was called, on either loop): wait for that end too.
        await proc.stdin.wait_closed()
        proc.stdin.write(b"x" * (4 * 1024 * 1024))
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            await proc.stdin.drain()

    arun(main())


# --- tidal's own mechanics ------------------------------------------------------


@pytest.fixture
def no_pidfd(monkeypatch, loop_name):
    if loop_name != "tidal":
        pytest.skip("tidal's fallback for kernels without pidfd_open")
    monkeypatch.setattr(_subprocess, "use_pidfd", False)


def test_tidal_thread_fallback(loop, arun, no_pidfd):
    payload = os.urandom(1024 * 1024)

    async def main():
        proc = await asyncio.create_subprocess_exec(PY, "-c", ECHO, stdin=PIPE, stdout=PIPE)
        assert any(t.name == f"tidal-waitpid-{proc.pid}" for t in threading.enumerate())
        out, _ = await proc.communicate(payload)
        assert out == payload and proc.returncode == 0
        assert_reaped(proc.pid)

        proc = await asyncio.create_subprocess_exec(PY, "-c", SLEEP, stdout=PIPE)
        await proc.stdout.readline()
        proc.terminate()
        assert await proc.wait() == -signal.SIGTERM
        assert_reaped(proc.pid)
        with pytest.raises(ProcessLookupError):
            proc.kill()

    arun(main())


def test_tidal_uses_a_pidfd(loop, loop_name, arun):
    if loop_name != "tidal" or not _subprocess.use_pidfd:
        pytest.skip("tidal with pidfd_open")

    async def main():
        proc = await asyncio.create_subprocess_exec(PY, "-c", SLEEP, stdout=PIPE)
        pidfd = proc._transport._pidfd
        assert pidfd >= 0 and pidfd in loop._readers
        assert not any(t.name.startswith("tidal-waitpid") for t in threading.enumerate())
        await proc.stdout.readline()
        proc.kill()
        assert await proc.wait() == -signal.SIGKILL
        assert proc._transport._pidfd == -1 and pidfd not in loop._readers

    arun(main())


def test_tidal_child_reaped_by_popen_keeps_its_status(loop, loop_name, arun):
    if loop_name != "tidal":
        # asyncio's watchers then report 255 and log "Unknown child process".
        pytest.skip("tidal takes the status the Popen object already has")

    async def main():
        transport, proto = await loop.subprocess_exec(
            lambda: Recorder(loop),
            PY,
            "-c",
            "import sys; sys.exit(9)",
            stdin=None,
            stdout=None,
            stderr=None,
        )
        assert transport.get_extra_info("subprocess").wait() == 9  # reaps it
        await proto.lost
        assert transport.get_returncode() == 9
        transport.close()

    arun(main())


def test_signals_after_wait_raise_however_the_exit_was_seen(loop, loop_name, arun):
    # The exit seen in the same poll as the event that resumes the waiting
    # task (here: EOF on a pipe the child held, which the kernel reports
    # just before the pidfd), ahead of that task's step: await wait() must
    # still mean "gone", and every signal then raises ProcessLookupError.
    if loop_name == "asyncio" and sys.version_info < (3, 12):
        pytest.skip(
            "3.11's asyncio learns of the exit from its ThreadedChildWatcher's thread,"
            " which runs while this test blocks in waitid: its loop then has the exit"
            " before the task resumes, and ignores the signals (3.12+ raise)"
        )

    async def main():
        for _ in range(5):
            r, w = os.pipe()
            os.set_blocking(r, False)
            try:
                proc = await asyncio.create_subprocess_exec(
                    PY, "-c", "", pass_fds=(w,), stdin=None, stdout=None, stderr=None
                )
                os.close(w)
                eof = loop.create_future()
                loop.add_reader(r, lambda: eof.done() or eof.set_result(None))
                # Exited, not reaped, and the loop has not polled since:
                # both events are pending for the next poll, the pipe's first.
                # (Blocking on purpose, for the child's few milliseconds.)
                os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
                await eof
                loop.remove_reader(r)
                assert await proc.wait() == 0
                for call in (proc.kill, proc.terminate, lambda: proc.send_signal(signal.SIGINT)):
                    with pytest.raises(ProcessLookupError):
                        call()
            finally:
                os.close(r)

    arun(main())


def _raise_in_child() -> None:
    raise RuntimeError("preexec_fn fails")


# (args, Popen keyword arguments): children that cannot start, each for a
# different reason the child reports on the exec-error pipe.
START_FAILURES = {
    "no such path": (["/nonexistent/program/for/tidal"], {}),
    "not on PATH": (["no-such-program-for-tidal"], {}),
    "a directory": (["/"], {}),
    "not executable": ([__file__], {}),
    "executable= not executable": ([PY], {"executable": __file__}),
    "no such cwd": ([PY, "-c", ""], {"cwd": "/nonexistent/dir/for/tidal"}),
    "cwd is a file": ([PY, "-c", ""], {"cwd": __file__}),
    "cwd as bytes": ([PY, "-c", ""], {"cwd": b"/nonexistent/dir/for/tidal"}),
    "bad process_group": ([PY, "-c", ""], {"process_group": 2**22 + 12345}),
    "preexec_fn raises": ([PY, "-c", ""], {"preexec_fn": _raise_in_child}),
    "bad stdin fd": ([PY, "-c", ""], {"stdin": 987}),
    "bad stdin fd, bare name": (["true"], {"stdin": 987}),
    "bad stdin fd, close_fds=False": ([PY, "-c", ""], {"stdin": 987, "close_fds": False}),
}


def _popen_error(args: list[Any], kwargs: dict[str, Any]) -> BaseException:
    """What subprocess.Popen raises for this child (outside any loop)."""
    try:
        proc = subprocess.Popen(args, **kwargs)
    except BaseException as exc:
        return exc
    proc.wait()
    raise AssertionError(f"{args} {kwargs} started")


def _describe(exc: BaseException) -> tuple[Any, ...]:
    return (
        type(exc),
        exc.args,
        getattr(exc, "errno", None),
        getattr(exc, "strerror", None),
        getattr(exc, "filename", None),
    )


@pytest.mark.parametrize("case", list(START_FAILURES))
def test_start_failures_raise_what_popen_raises(loop, arun, case):
    # Each loop raises Popen's own exception for a child that could not start
    # (class, args, errno, strerror, filename), however the spawn waited for
    # the exec, and leaves no zombie behind.
    args, kwargs = START_FAILURES[case]
    expected = _describe(_popen_error(args, kwargs))
    pids: list[int] = []

    async def main():
        with pytest.raises(BaseException) as info:
            await loop.subprocess_exec(asyncio.SubprocessProtocol, *args, **kwargs)
        assert _describe(info.value) == expected
        with pytest.raises(BaseException) as info:
            await asyncio.create_subprocess_exec(*args, **{"stdin": PIPE, "stdout": PIPE, **kwargs})
        assert _describe(info.value) == expected
        pids.extend(p for p in _children())

    arun(main())
    assert not [p for p in pids if _state(p) == "Z"]


def _children() -> list[int]:
    try:
        with open(f"/proc/{os.getpid()}/task/{threading.get_native_id()}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def test_shell_start_failure_raises_what_popen_raises(loop, arun):
    expected = _describe(_popen_error("exit 0", {"shell": True, "cwd": "/nonexistent/dir"}))

    async def main():
        with pytest.raises(BaseException) as info:
            await asyncio.create_subprocess_shell("exit 0", cwd="/nonexistent/dir")
        assert _describe(info.value) == expected

    arun(main())


def test_every_popen_argument_still_reaches_the_child(loop, arun, tmp_path):
    # user, group, extra_groups, umask, start_new_session, process_group,
    # pass_fds, close_fds, env, cwd, executable (restore_signals passes
    # through; a Python child resets SIGPIPE itself): the child gets them.
    r, w = os.pipe()
    code = (
        "import os, signal, sys\n"
        "os.write(int(sys.argv[1]), b'fd ok')\n"
        "m = os.umask(0); print(oct(m), os.getcwd(), os.environ['TIDAL_X'],"
        " os.getsid(0) == os.getpid(), os.getpgid(0) == os.getpid(),"
        " os.getuid(), os.getgid(), sorted(os.getgroups()),"
        " sys.argv[0])\n"
    )
    # Our own ids: any other would need the interpreter readable by it.
    uid, gid, groups = os.getuid(), os.getgid(), sorted(os.getgroups())
    ids = {"user": uid, "group": gid, "extra_groups": groups} if uid == 0 else {}

    async def main():
        proc = await asyncio.create_subprocess_exec(
            "renamed-python", "-c", code, str(w),
            executable=PY, stdout=PIPE, pass_fds=(w,), close_fds=True,
            env={"TIDAL_X": "x", "PATH": os.environ.get("PATH", "")},
            cwd=tmp_path, umask=0o027, start_new_session=True, restore_signals=True,
            **ids,
        )  # fmt: skip
        out, _ = await proc.communicate()
        assert proc.returncode == 0
        return out.decode().split()

    try:
        out = arun(main())
        assert os.read(r, 100) == b"fd ok"
    finally:
        os.close(r)
        os.close(w)
    assert out[:5] == ["0o27", str(tmp_path), "x", "True", "True"]
    assert out[5:7] == [str(uid), str(gid)]
    assert out[-1] == "-c"


def test_process_group_is_set(loop, arun):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            PY, "-c", "import os; print(os.getpgid(0))", stdout=PIPE, process_group=0
        )
        out, _ = await proc.communicate()
        assert int(out) == proc.pid

    arun(main())


def test_get_extra_info_subprocess_is_a_popen(loop, arun):
    async def main():
        proc = await asyncio.create_subprocess_exec(PY, "-c", SLEEP, stdout=PIPE)
        popen = proc._transport.get_extra_info("subprocess")
        assert isinstance(popen, subprocess.Popen) and type(popen).__name__ == "Popen"
        assert popen.pid == proc.pid and popen.poll() is None and popen.returncode is None
        assert repr(popen).startswith("<Popen: returncode: None args: (")
        await proc.stdout.readline()
        popen.send_signal(signal.SIGTERM)
        assert await proc.wait() == -signal.SIGTERM
        assert popen.returncode == -signal.SIGTERM and popen.poll() == -signal.SIGTERM

    arun(main())


def test_blockbuster_catches_what_the_loop_blocks_on(loop, arun, loop_errors, blockbuster):
    # The suite's guard is on: a blocking call made on the loop's thread by
    # a callback or a task the loop runs (here: a library's coroutine that
    # sleeps, and time.sleep as a callback) raises BlockingError, on both
    # loops, interpreted and compiled.  (A test's own coroutine may block on
    # purpose, for its blocking peer sockets: conftest.py lets that through.)
    import time

    from blockbuster import BlockingError

    library = {"time": time}
    exec(compile("async def blocking():\n    time.sleep(0)\n", "<library>", "exec"), library)

    async def main():
        with pytest.raises(BlockingError):
            await loop.create_task(library["blocking"]())
        loop.call_soon(time.sleep, 0)
        await asyncio.sleep(0)

    arun(main())
    assert [type(ctx.get("exception")) for ctx in loop_errors] == [BlockingError]
    loop_errors.clear()


def test_a_popen_subclass_in_place_of_popen_is_used(loop, arun):
    # subprocess.Popen is looked up at each call (tests and tools patch it):
    # a subclass put there is what starts the child, failures included.
    made: list[Any] = []
    real_popen = subprocess.Popen

    class Spy(real_popen):  # type: ignore[misc, valid-type]
        def __init__(self, *a: Any, **k: Any) -> None:
            made.append(self)
            super().__init__(*a, **k)

    async def main():
        subprocess.Popen = Spy  # type: ignore[misc]
        try:
            proc = await asyncio.create_subprocess_exec(PY, "-c", "", stdin=PIPE)
            with pytest.raises(FileNotFoundError):
                await asyncio.create_subprocess_exec("/nonexistent/program/for/tidal")
        finally:
            subprocess.Popen = real_popen  # type: ignore[misc]
        assert await proc.wait() == 0
        assert len(made) == 2 and all(isinstance(p, Spy) for p in made)
        assert proc._transport.get_extra_info("subprocess") is made[0]

    arun(main())
