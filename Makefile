# tidal — the two commands a fresh machine needs: `make run` and `make test`.
# Everything is installed into virtualenvs here from pyproject.toml.

PYTHON     ?= python3
VENV       := .venv
PYENV_ROOT ?= $(HOME)/.pyenv
# The newest 3.12.x / 3.13.x that pyenv has beside the default python.
PY312 := $(lastword $(sort $(wildcard $(PYENV_ROOT)/versions/3.12.*/bin/python3)))
PY313 := $(lastword $(sort $(wildcard $(PYENV_ROOT)/versions/3.13.*/bin/python3)))
PYTEST_ARGS ?=
# A hard deadline per Python: a test that hangs past pytest-timeout (say, in a
# teardown that joins a stuck thread) turns into a failed run with pytest's
# summary (SIGINT), never a CI job that waits forever.
PYTEST = timeout -s INT -k 30 1200 $(1)/bin/python -m pytest $(PYTEST_ARGS)

.PHONY: run test test-default test-interpreted test-3.12 test-3.13 test-bench bench lint debug annotate clean \
	suite-default suite-3.12 suite-3.13 conformance-default conformance-3.12 conformance-3.13 \
	suite-core-default suite-core-3.12 suite-core-3.13 suite-sim-default suite-sim-3.12 suite-sim-3.13 \
	interpreted-core interpreted-sim

# The compiled build.  pip compiles the hot modules (setup.py's list) with
# Cython into each venv, so every venv here gets a regular install, redone
# whenever a source file changes (SOURCES below).  Not `pip install -e`: an
# editable install builds the .so files in place, in src/tidal/, where they
# shadow the .py for everyone using that tree (an edit would silently not run
# until the next build).  Run through make, or reinstall, after an edit.
# TIDAL_REQUIRE_EXT=1: a failed compile fails the install instead of falling
# back to pure Python, so the suite never runs "compiled" without the build.
SOURCES := setup.py pyproject.toml $(shell find src -name '*.py' -o -name '*.pxd' -o -name '*.h')

# A venv with tidal only (the tour needs nothing else).  (Not built by make
# test, which uses .installed-test in the same venv; don't run both at once.)
$(VENV)/.installed: $(SOURCES)
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	TIDAL_REQUIRE_EXT=1 $(VENV)/bin/python -m pip install -q .
	touch $@

run: $(VENV)/.installed
	$(VENV)/bin/python -m tidal

# One venv per interpreter, with the test extras (a file target, so that two
# parallel jobs using one venv install it once).  --no-compile: pip would
# byte-compile every module of every dependency (dask, mypy, ...) up front;
# Python compiles what the suite imports, when it imports it.  Each venv builds from its
# own copy of the sources (pip builds in the tree it is given: build/ and the
# egg-info), so builds can run side by side.  The default Python's comes
# first, alone (three jobs wait for it: compiled, interpreted, bench), then
# 3.12's and 3.13's together while those run (they mostly wait on sockets
# and timers); each Python's tests start as soon as its own build is done.
BUILD_FILES := setup.py pyproject.toml README.md src
# Cython runs once, in the default Python's build: the C it generates is the
# same for every Python (it tests PY_VERSION_HEX where versions differ), and
# of a ~140 s (CPU) build it is ~10 s, the rest gcc.  That build's tree (the
# sources, and build/cython/*.c generated from exactly those, later than
# them) is kept as $(C_TREE); 3.12's and 3.13's build from copies of it,
# where cythonize finds each .c newer than its sources and leaves it.  So a
# .c only ever sits beside the sources it came from (an edit made meanwhile
# waits for the next make, as it does for the default venv).  Without
# $(C_TREE) (a .venv made before it existed) they copy the sources and run Cython.
C_TREE := $(VENV)/build-tree
# The extra Pythons' venvs compile at -O1 (setup.py's TIDAL_OPT): gcc takes
# half its -O2 time (~45 s less CPU per venv), and the default Python's run
# tests the -O2 build users get.
# $(call testvenv,DIR,PYTHON,TREE TO BUILD FROM IF IT EXISTS,WHERE TO KEEP THE BUILD'S TREE,TIDAL_OPT)
define testvenv
	@test -x $(1)/bin/python || $(2) -m venv $(1)
	rm -rf $(1)/build-src
	if [ -n "$(3)" ] && [ -d "$(3)" ]; then cp -a $(3) $(1)/build-src; else mkdir -p $(1)/build-src && \
	    tar -c --exclude=__pycache__ --exclude='*.so' --exclude='*.egg-info' $(BUILD_FILES) | tar -x -C $(1)/build-src; fi
	$(1)/bin/python -m pip install -q --upgrade pip
	TIDAL_REQUIRE_EXT=1 TIDAL_OPT=$(5) $(1)/bin/python -m pip install -q --no-compile '$(1)/build-src[test]'
	$(if $(4),rm -rf $(4) && mv $(1)/build-src $(4) && cd $(4) && rm -rf build/lib.* build/temp.* build/bdist.* src/*.egg-info,rm -rf $(1)/build-src)
	@$(1)/bin/python -m tidal --version | grep -q compiled || { echo "!! $(1): tidal is not compiled"; exit 1; }
	touch $(1)/.installed-test
endef

$(VENV)/.installed-test: $(SOURCES)
	$(call testvenv,$(VENV),$(PYTHON),,$(C_TREE))
.venv-3.12/.installed-test: $(SOURCES) | $(VENV)/.installed-test
	$(call testvenv,.venv-3.12,$(PY312),$(C_TREE),,-O1)
.venv-3.13/.installed-test: $(SOURCES) | $(VENV)/.installed-test
	$(call testvenv,.venv-3.13,$(PY313),$(C_TREE),,-O1)

# -k: a failure on one Python still lets the others run (and still fails).
# -j12: every job below side by side.  Each compiled Python's run is three
# jobs: CPython's own test_asyncio (tests/conformance: ~45 s of CPU, but
# minutes of real time, its tests wait on real timers) and the rest of the
# suite in two halves (SUITE_CORE and SUITE_SIM below); then the interpreted
# run (TIDAL_NO_EXT=1, default Python, also in two halves) and the bench's
# end-to-end runs.  The suite mostly waits (timers, child processes,
# sockets: on 3.11, ~75 s of CPU in ~5 minutes of real time), so jobs side by
# side keep 2 cores busy within the 10-minute budget; as one job, the default
# Python's suite was the long pole of the whole run.  --output-sync keeps
# each job's report in one piece.
test:
	$(MAKE) --no-print-directory -k -j12 --output-sync=target test-default test-interpreted test-3.12 test-3.13 test-bench

# The suite's two halves, about equal in real time: the simulation's tests,
# the course programs and the third-party programs (SUITE_SIM), and the rest
# (SUITE_CORE: the loop, transports, tracing, the tools).  Both halves always
# run; together they are the whole of tests/ but tests/conformance.
SUITE_SIM  := tests/thirdparty $(sort $(wildcard tests/test_sim_*.py tests/test_course_*.py))
SUITE_CORE := tests --ignore=tests/conformance --ignore=tests/thirdparty \
	--ignore-glob='tests/test_sim_*' --ignore-glob='tests/test_course_*'

# $(call pythonjobs,NAME,VENV,PYTHON): test-NAME = suite-NAME + conformance-NAME.
# Without that Python (PYTHON empty), each job says so instead of running.
define pythonjobs
test-$(1): suite-$(1) conformance-$(1)
suite-$(1): suite-core-$(1) suite-sim-$(1)
suite-core-$(1): $(if $(3),$(2)/.installed-test)
	$(if $(3),@echo "== tests (core) on $$$$($(2)/bin/python -m tidal --version)",@echo "!! Python $(1) NOT FOUND under $(PYENV_ROOT)/versions: its run did not happen")
	$(if $(3),$(call PYTEST,$(2)) $(SUITE_CORE))
suite-sim-$(1): $(if $(3),$(2)/.installed-test)
	$(if $(3),@echo "== tests (simulation, courses, third-party) on $$$$($(2)/bin/python -m tidal --version)",@echo "!! Python $(1) NOT FOUND: its run did not happen")
	$(if $(3),$(call PYTEST,$(2)) $(SUITE_SIM))
conformance-$(1): $(if $(3),$(2)/.installed-test)
	$(if $(3),@echo "== CPython's test_asyncio on $$$$($(2)/bin/python -m tidal --version)",@echo "!! Python $(1) NOT FOUND: its conformance run did not happen")
	$(if $(3),$(call PYTEST,$(2)) tests/conformance)
endef
$(eval $(call pythonjobs,default,$(VENV),$(PYTHON)))
$(eval $(call pythonjobs,3.12,.venv-3.12,$(PY312)))
$(eval $(call pythonjobs,3.13,.venv-3.13,$(PY313)))

# `make bench` run end to end (quick, and its callgrind section): minutes of
# CPU that do not depend on the Python version, so once, on the default
# Python, as a job of its own beside the others (TIDAL_BENCH_E2E=1 turns
# those tests on; the runs above skip them, saying so).
test-bench: $(VENV)/.installed-test
	@echo "== bench end to end on $$($(VENV)/bin/python -m tidal --version)"
	TIDAL_BENCH_E2E=1 $(call PYTEST,$(VENV)) tests/test_bench.py

# The interpreted run is the stated part of the suite: all of it except
# tests/conformance (CPython's own test_asyncio, a few minutes by itself; it
# runs compiled on every Python above).  The same .py files run both ways, so
# what differs interpreted is the code path, which tests/ covers.  On tidal's
# loop only (TIDAL_TEST_LOOPS=tidal, tests/conftest.py): the asyncio half of
# each test runs no tidal code that is compiled, so on this same Python it is
# the compiled run's asyncio half again (a minute of CPU, for nothing new).
# Two jobs, as the compiled suites (SUITE_CORE and SUITE_SIM above).
test-interpreted: interpreted-core interpreted-sim
interpreted-core: $(VENV)/.installed-test
	@echo "== tests (core) INTERPRETED (TIDAL_NO_EXT=1) on $$(TIDAL_NO_EXT=1 $(VENV)/bin/python -m tidal --version)"
	TIDAL_NO_EXT=1 TIDAL_TEST_LOOPS=tidal $(call PYTEST,$(VENV)) $(SUITE_CORE)
interpreted-sim: $(VENV)/.installed-test
	@echo "== tests (simulation, courses, third-party) INTERPRETED (TIDAL_NO_EXT=1) on $$(TIDAL_NO_EXT=1 $(VENV)/bin/python -m tidal --version)"
	TIDAL_NO_EXT=1 TIDAL_TEST_LOOPS=tidal $(call PYTEST,$(VENV)) $(SUITE_SIM)

# The benchmark: asyncio, uvloop, rloop and tidal side by side, ~25 minutes; results in bench-results/.
# BENCH_ARGS=--quick for a one-minute smoke run (python -m tidal.bench --help for the rest).
# Its sim section runs under .venv-3.12 (simloop, simloom and seedloop need
# Python 3.12+); without a 3.12 the report says the section was skipped.
BENCH_ARGS ?=
.venv-3.12/.installed-bench: $(SOURCES) | $(VENV)/.installed
	@test -x .venv-3.12/bin/python || $(PY312) -m venv .venv-3.12
	TIDAL_REQUIRE_EXT=1 .venv-3.12/bin/python -m pip install -q '.[bench]'
	touch $@
bench: $(VENV)/.installed $(if $(PY312),.venv-3.12/.installed-bench)
	@if [ ! -f $(VENV)/.installed-bench ] || [ $(VENV)/.installed -nt $(VENV)/.installed-bench ]; then \
	    $(VENV)/bin/python -m pip install -q '.[bench]' && touch $(VENV)/.installed-bench; fi
	@command -v wrk >/dev/null || echo "!! wrk not found (apt-get install wrk): HTTP is loaded by tidal's C load generator"
	$(VENV)/bin/python -m tidal.bench $(BENCH_ARGS)

# Linters pinned to a minor release: a newer ruff adds rules, a newer mypy (typeshed) new errors.
lint: $(VENV)/.installed-test
	$(VENV)/bin/python -m pip install -q "ruff>=0.15,<0.16" "mypy>=2.4,<2.5"
	$(VENV)/bin/python -m ruff check src tests
	$(VENV)/bin/python -m mypy

# A compiled build with Cython line tracing (coverage and profilers see the
# compiled lines), C asserts on, -O0 -g; in its own venv, .venv-debug.
debug:
	@test -x .venv-debug/bin/python || $(PYTHON) -m venv .venv-debug
	.venv-debug/bin/python -m pip install -q --upgrade pip
	TIDAL_DEBUG_BUILD=1 TIDAL_REQUIRE_EXT=1 .venv-debug/bin/python -m pip install -q '.[test]'
	.venv-debug/bin/python -m tidal --version
	@echo "debug build in .venv-debug (e.g. .venv-debug/bin/python -m pytest tests/test_loop.py)"

# Cython's annotated HTML of every compiled module: yellow lines call into the
# Python C API, white ones are plain C.  Built with setup.py's list and directives.
annotate: $(VENV)/.installed
	rm -rf build/annotate
	TIDAL_ANNOTATE=$(CURDIR)/build/annotate $(VENV)/bin/python -m pip wheel -q --no-deps -w build/annotate/wheel .
	@find build/annotate -name '*.html' | sort

clean:
	rm -rf $(VENV) .venv-3.12 .venv-3.13 .venv-debug build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache bench-results
	find src/tidal -name '*.so' -delete  # left by an older editable install
	find . -name __pycache__ -prune -exec rm -rf {} +
