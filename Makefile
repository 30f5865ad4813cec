# Everything a fresh machine with python3 needs: `make demo` and `make test` create .venv,
# install flaxen with its extras, and run. A second run reuses the venv.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.flaxen-installed
JOBS   ?= 2

.PHONY: demo test test-slow coverage lint bench fuzz clean

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

test-slow: $(STAMP)
	$(PY) -m pytest -q -n $(JOBS) -m slow

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

bench: $(STAMP)
	$(PY) -m benchmarks $(ARGS)

clean:
	rm -rf $(VENV) build dist src/*.egg-info
