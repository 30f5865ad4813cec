# Everything a fresh machine with python3 needs: `make demo` and `make test` create .venv,
# install flaxen with its extras, and run. A second run reuses the venv.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.flaxen-installed
JOBS   ?= 2

.PHONY: demo test test-slow test-matrix typecheck coverage lint bench fuzz clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e ".[dev,examples]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q -n $(JOBS) -m "not slow"
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test-slow: $(STAMP)
	$(PY) -m pytest -q -n $(JOBS) -m slow

# The fast suite once per extra Python found (PATH or pyenv), each in its own venv
# (.venv-3.12, ...) with the newest JAX the registry gives it; versions not installed are
# skipped. `make test-matrix MATRIX_PYTHONS="3.13"` picks a subset.
MATRIX_PYTHONS ?= 3.12 3.13
test-matrix:
	@for v in $(MATRIX_PYTHONS); do \
	  py=$$(.ci/find-python $$v) || { echo "test-matrix: Python $$v not found, skipped"; continue; }; \
	  venv=.venv-$$v; \
	  if [ ! -f $$venv/.flaxen-installed ] || [ pyproject.toml -nt $$venv/.flaxen-installed ]; then \
	    $$py -m venv $$venv && $$venv/bin/python -m pip install -q --upgrade pip && \
	    $$venv/bin/python -m pip install -q --upgrade --upgrade-strategy eager -e ".[dev,examples]" && \
	    touch $$venv/.flaxen-installed || exit 1; \
	  fi; \
	  $$venv/bin/python -c "import sys, jax; print('test-matrix: Python', sys.version.split()[0], 'jax', jax.__version__)"; \
	  $$venv/bin/python -m pytest -q -n $(JOBS) -m "not slow" || exit 1; \
	done

# Line coverage of src/flaxen over the fast tests; fails under 90% (issue #9).
coverage: $(STAMP)
	$(PY) -m pytest -q -n $(JOBS) -m "not slow" --cov=flaxen --cov-report=term-missing \
	  --cov-fail-under=90

FUZZ_SECONDS ?= 300
fuzz: $(STAMP)
	$(PY) fuzz/fuzz_serialization.py -max_total_time=$(FUZZ_SECONDS) -timeout=10
	FUZZ_ORBAX=1 $(PY) fuzz/fuzz_checkpoint.py -max_total_time=$(FUZZ_SECONDS) -timeout=30

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# Type-checks the modules listed under [tool.mypy] in pyproject.toml (make lint and make
# test run it too).
typecheck: $(STAMP)
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) -m benchmarks $(ARGS)

clean:
	rm -rf $(VENV) build dist src/*.egg-info
