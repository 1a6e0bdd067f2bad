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
PYTEST = timeout -s INT -k 30 570 $(1)/bin/python -m pytest $(PYTEST_ARGS)

.PHONY: run test test-default test-3.12 test-3.13 bench lint clean

# A venv with tidal only (the tour needs nothing else).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e .
	touch $@

run: $(VENV)/.installed
	$(VENV)/bin/python -m tidal

# One venv per interpreter, with the test extras.
# $(call testvenv,DIR,PYTHON)
define testvenv
	@test -x $(1)/bin/python || $(2) -m venv $(1)
	@if [ ! -f $(1)/.installed-test ] || [ pyproject.toml -nt $(1)/.installed-test ]; then \
	    $(1)/bin/python -m pip install -q --upgrade pip && \
	    $(1)/bin/python -m pip install -q -e '.[test]' && touch $(1)/.installed-test; fi
endef

# -k: a failure on one Python still lets the others run (and still fails).
# -j3: the three Pythons run side by side; the suite mostly waits (timers,
# child processes, sockets), so this fits 2 cores well within the 10-minute
# budget. --output-sync keeps each Python's report in one piece.
test:
	$(MAKE) --no-print-directory -k -j3 --output-sync=target test-default test-3.12 test-3.13

test-default:
	$(call testvenv,$(VENV),$(PYTHON))
	@echo "== tests on $$($(VENV)/bin/python -V)"
	TIDAL_BENCH_E2E=1 $(call PYTEST,$(VENV))

test-3.12:
ifeq ($(PY312),)
	@echo "!! Python 3.12 NOT FOUND under $(PYENV_ROOT)/versions: the 3.12 run did not happen"
else
	$(call testvenv,.venv-3.12,$(PY312))
	@echo "== tests on $$(.venv-3.12/bin/python -V)"
	$(call PYTEST,.venv-3.12)
endif

test-3.13:
ifeq ($(PY313),)
	@echo "!! Python 3.13 NOT FOUND under $(PYENV_ROOT)/versions: the 3.13 run did not happen"
else
	$(call testvenv,.venv-3.13,$(PY313))
	@echo "== tests on $$(.venv-3.13/bin/python -V)"
	$(call PYTEST,.venv-3.13)
endif

# The benchmark: asyncio, uvloop and tidal side by side, ~12 minutes; results in bench-results/.
# BENCH_ARGS=--quick for a one-minute smoke run (python -m tidal.bench --help for the rest).
BENCH_ARGS ?=
bench: $(VENV)/.installed
	@if [ ! -f $(VENV)/.installed-bench ] || [ pyproject.toml -nt $(VENV)/.installed-bench ]; then \
	    $(VENV)/bin/python -m pip install -q -e '.[bench]' && touch $(VENV)/.installed-bench; fi
	@command -v wrk >/dev/null || echo "!! wrk not found (apt-get install wrk): HTTP is loaded by tidal's C load generator"
	$(VENV)/bin/python -m tidal.bench $(BENCH_ARGS)

lint:
	$(call testvenv,$(VENV),$(PYTHON))
	$(VENV)/bin/python -m pip install -q ruff mypy
	$(VENV)/bin/python -m ruff check src tests
	$(VENV)/bin/python -m mypy

clean:
	rm -rf $(VENV) .venv-3.12 .venv-3.13 build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache bench-results
	find . -name __pycache__ -prune -exec rm -rf {} +
