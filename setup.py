"""Build tidal: the hot modules are compiled by Cython from their plain ``.py`` source.

Everything else about the package is in pyproject.toml; this file only adds
the extensions.  Each compiled module is an ordinary ``.py`` file with a
``.pxd`` beside it (Cython's pure-Python mode): the ``.py`` is the one source,
run as it is by the interpreter, the ``.pxd`` tells the compiler the C types.
Compiling happens at ``pip install``, with the machine's C compiler; no
generated ``.c`` file is kept in git.

Build-time switches (environment variables):

* ``TIDAL_REQUIRE_EXT=1``: a failed compile is an error.  Without it a
  missing Cython or a failed compile prints a loud warning and installs the
  pure-Python package, which works the same, only slower.
* ``TIDAL_NO_EXT=1``: don't compile at all (the runtime switch of the same
  name runs the ``.py`` even when the extensions are installed).
* ``TIDAL_DEBUG_BUILD=1``: Cython line tracing (coverage and profilers see
  compiled lines), C asserts on, ``-O0 -g``.
* ``TIDAL_ANNOTATE=DIR``: also write Cython's annotated HTML (which lines
  call into the C API, in yellow) into DIR.
* ``TIDAL_OPT=-O1``: the optimisation level of a release build (default
  ``-O2``).  ``make test`` builds the extra Pythons' test venvs at ``-O1``:
  gcc takes half the time, and the default Python's run tests the ``-O2``
  build users get.
"""

from __future__ import annotations

import glob
import os
import sys
import traceback

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# The one list of compiled modules (tidal/__init__.py reads nothing from here:
# it asks the modules themselves whether they loaded as extensions).
COMPILED_MODULES = [
    "tidal._loop",  # the turn: _run_once/_run_ready, call_soon/call_later/_call_at
    "tidal._clock",  # ManualClock: the loop reads a virtual clock's time as a C field
    "tidal._timerheap",  # push/pop per timer: compares due times as C doubles
    "tidal._handles",  # the layout check the compiled loop relies on (_handle_layout.pxd)
    "tidal._poller",  # poll(): once per turn
    "tidal._sock",  # sock_* fast paths: one syscall attempt per call
    "tidal.transports._stream",  # the read and write paths, per event and per write()
    "tidal.transports._datagram",  # per datagram
    "tidal._iocount",  # bytes read/written: the transports add to its C fields per read and write
    "tidal._instrument",  # with an instrument set: the dispatch, per callback and task step
    "tidal.trace._recorder",  # tracing: a record per step, callback and I/O wait
    # The simulation's kernel: per simulated segment, datagram and turn.
    # cdef classes (a .pxd each): sockets, pipes, the network's event heap,
    # the poller and the virtual clock read their fields as C struct members.
    "tidal.sim._net",
    "tidal.sim._poller",
    "tidal.sim._clock",
]

# Not compiled, and why (compiling is only worth it where time is spent per
# callback, per event or per byte; everything else stays plain Python, which
# keeps tracebacks and introspection exactly as users expect):
#   tidal/__init__.py      must stay Python: it installs the TIDAL_NO_EXT import
#                          hook before any extension module can load
#   tidal/__main__.py      command line, runs once
#   tidal/abc.py           typing.Protocols, no code
#   tidal/trace/ (but _recorder)
#                          the writer, checker and summary run once per trace
#   tidal/_gen.py          plain-generator tasks: per step it is asyncio's C Task
#                          driving the user's generator; the wrapper is thin, and
#                          its frames appear in users' tracebacks
#   tidal/_connect.py, _server.py, _dns.py
#                          once per connection / lookup (async setup code: Cython
#                          coroutines would change introspection for no gain)
#   tidal/_signals.py      once per signal
#   tidal/_shutdown.py     the end of a run, once per loop; CPython coroutines,
#                          so their never-awaited warning reads as asyncio's
#   tidal/_patched.py      a patch on asyncio's loop class: looked up once per
#                          connection, server, lookup or transfer
#   tidal/_sendfile.py     once per transfer; the bytes move in os.sendfile
#   tidal/transports/_tls.py  per record the cost is in ssl's C MemoryBIO code
#   tidal/transports/_base.py  what the transports share: errors, closing, limits,
#                          flow-control transitions; cold code, off the read and
#                          write paths (those stay in each compiled transport)
#   tidal/transports/_pipe.py, _subprocess.py, _spawn.py
#                          pipes and child processes: not a per-event hot path yet
#   tidal/_syscalls.py     the interpreted versions only: compiled modules cimport
#                          the C versions from _syscalls_c.pxd instead
#   tidal/transports/_stream_slots.py
#                          a class with __slots__ and no code; compiled code reads
#                          its fields through _stream_layout.pxd
#   tidal/sim/ (the rest)  the simulation's API, hosts and patches: per run,
#                          per host and per fault, not per event (_unix.py: Unix
#                          sockets subclass the compiled SimSocket, rarely hot)
#   tidal/_tour.py, tidal/bench/
#                          programs that exercise the loop, not the loop

# Directives for every compiled module.
DIRECTIVES = {
    "language_level": 3,
    # Types come from the .pxd files only.  The annotations in the .py are for
    # mypy and readers: with annotation typing on, `x: float` would become a C
    # double (refusing None, converting ints) and `x: int` an exact-int check,
    # so the compiled module would accept different arguments than the .py.
    "annotation_typing": False,
    # Python semantics where they are visible: keep them.
    "binding": True,
}

_TRUE = {"1", "true", "yes", "on"}


def _env(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def _loud(message: str) -> None:
    bar = "!" * 78
    print(f"\n{bar}\n{message}\n{bar}\n", file=sys.stderr, flush=True)


def _source(module: str) -> str:
    return os.path.join("src", *module.split(".")) + ".py"


class OptionalCythonBuild(build_ext):
    """Cythonize at build time; fall back to pure Python, loudly, if that fails."""

    def finalize_options(self) -> None:
        super().finalize_options()
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1

    def run(self) -> None:
        require = _env("TIDAL_REQUIRE_EXT")
        try:
            from Cython.Build import cythonize

            debug = _env("TIDAL_DEBUG_BUILD")
            directives = dict(DIRECTIVES)
            if os.name == "posix" and not debug:
                # Python's own CFLAGS say -O3 -g: on Cython's large generated C
                # that doubles the compile time (make test builds on three
                # Pythons) for no measurable speed; -O2 without debug info.
                opt = os.environ.get("TIDAL_OPT", "").strip() or "-O2"
                if opt not in ("-O0", "-O1", "-O2", "-O3", "-Os"):
                    raise SystemExit(f"TIDAL_OPT={opt!r}: expected -O0, -O1, -O2, -O3 or -Os")
                for ext in self.extensions:
                    ext.extra_compile_args += [opt, "-g0"]
            if debug:
                directives["linetrace"] = True
                for ext in self.extensions:
                    ext.define_macros += [("CYTHON_TRACE", "1"), ("CYTHON_TRACE_NOGIL", "1")]
                    ext.undef_macros += ["NDEBUG"]
                    ext.extra_compile_args += ["-O0", "-g"]
            # pip builds in the source tree and keeps build/ between installs;
            # a release install must not pick up a debug build's .so (or the
            # reverse) because it is newer than its C: rebuild on a mode change.
            mode = "debug" if debug else "release"
            stamp = os.path.join(self.build_temp, "tidal-build-mode")
            if not os.path.exists(stamp) or open(stamp).read() != mode:
                self.force = True
            # Generated C goes under build/, never beside the .py (and a debug
            # build's C, traced, must not be reused by a release build).
            options: dict[str, object] = {
                "build_dir": os.path.join("build", "cython-debug" if debug else "cython")
            }
            annotate_dir = os.environ.get("TIDAL_ANNOTATE", "").strip()
            if annotate_dir:
                options = {"annotate": True, "build_dir": annotate_dir}
            cythonized = cythonize(
                self.extensions,
                compiler_directives=directives,
                nthreads=self.parallel or 1,
                # Debug and release builds differ in their .c: don't reuse one for the other.
                force=debug or bool(annotate_dir),
                **options,
            )
            # Keep setuptools' own Extension objects (finalize_options annotated
            # them); take only the generated C sources from cythonize.
            by_name = {ext.name: ext for ext in cythonized}
            for ext in self.extensions:
                ext.sources = by_name[ext.name].sources
            super().run()
            os.makedirs(self.build_temp, exist_ok=True)
            with open(stamp, "w") as f:
                f.write(mode)
        except Exception as exc:
            if require:
                raise
            self._drop_partial_outputs()
            self.extensions = []
            _loud(
                "tidal: COMPILING THE EXTENSIONS FAILED; installing the pure-Python package.\n"
                "It behaves the same, only slower (`python -m tidal --version` says which).\n"
                f"Reason: {type(exc).__name__}: {exc}\n"
                "Set TIDAL_REQUIRE_EXT=1 to make this an error."
            )
            traceback.print_exc()

    def _drop_partial_outputs(self) -> None:
        # All or nothing: a half-compiled package would be a third mode no
        # one tests.
        for ext in self.extensions:
            path = self.get_ext_fullpath(ext.name)
            if os.path.exists(path):
                os.remove(path)


def _extensions() -> list[Extension]:
    if _env("TIDAL_NO_EXT"):
        _loud("tidal: TIDAL_NO_EXT is set: installing the pure-Python package (not compiled).")
        return []
    try:
        import Cython  # noqa: F401  (only to know now; cythonize runs in build_ext)
    except ImportError:
        if _env("TIDAL_REQUIRE_EXT"):
            raise SystemExit("tidal: TIDAL_REQUIRE_EXT=1 but Cython is not installed") from None
        _loud(
            "tidal: CYTHON IS NOT INSTALLED; installing the pure-Python package (not compiled).\n"
            "Install with build isolation (plain `pip install`), or `pip install 'Cython>=3.0'` "
            "first,\nto get the compiled build.  TIDAL_REQUIRE_EXT=1 makes this an error."
        )
        return []
    # The C the .pxd files declare lives in headers beside them
    # (src/tidal/**/*.h), included as "tidal/...": a changed header must
    # recompile every module (each includes what it cimports, directly or not).
    headers = sorted(glob.glob(os.path.join("src", "tidal", "**", "*.h"), recursive=True))
    return [
        Extension(name, [_source(name)], include_dirs=["src"], depends=headers)
        for name in COMPILED_MODULES
    ]


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalCythonBuild})
