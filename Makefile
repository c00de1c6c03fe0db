# Every target creates .venv (Python 3.11) and installs what it needs first.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): $(VENV)/bin/python setup.cfg pyproject.toml
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

$(VENV)/.bench-installed: $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $@

## demo: the main job: train on digits, prune 80%, QAT, int8 export, report.
demo: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m kcompress.demo

## test: the whole test suite.
test: $(STAMP)
	$(PY) -m pytest -q tests

## bench: every benchmark against TFMOT, side by side (installs the bench extra).
bench: $(VENV)/.bench-installed
	$(PY) benchmarks/training_overhead.py
	$(PY) benchmarks/compare_tfmot.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
