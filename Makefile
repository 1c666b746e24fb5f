# The two commands a fresh machine needs (Python 3.10+ as python3):
#   make demo   create .venv, install erlrestore, run the main job
#   make test   create .venv, install erlrestore with test extras, run the test suite
#   make test-fast   the same without the tests marked slow (processes, faults, load)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
DEMO_DIR ?= demo_output
# The development samples beside the checkout, when there (the package itself never assumes a data folder).
export ERLRESTORE_DATA_ROOT ?= $(wildcard $(abspath ../shared/data))
# Two test workers (pytest-xdist), work-stealing: 13.4 min instead of 21.7 min for the suite on 2 vCPUs.
PYTEST_WORKERS ?= 2
PYTEST_ARGS ?= -q -n $(PYTEST_WORKERS) --dist worksteal

.PHONY: demo test test-fast install bench benchmark clean

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

test: $(VENV)/.installed
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m pytest $(PYTEST_ARGS) tests

test-fast: $(VENV)/.installed
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m pytest $(PYTEST_ARGS) -m "not slow" tests

demo: $(VENV)/.installed
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m tools.demo --output_dir=$(DEMO_DIR)

bench: $(VENV)/.installed
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m tools.bench_data

# Compute benchmark (under 10 minutes on 2 CPU cores): JSON on stdout and in $(BENCHMARK_JSON).
BENCHMARK_JSON ?= runs/benchmark.json
benchmark: $(VENV)/.installed
	mkdir -p $(dir $(BENCHMARK_JSON))
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m tools.benchmark --output=$(BENCHMARK_JSON)

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
