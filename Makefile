# Every target creates .venv (Python 3.11) and installs what it needs first.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-torch test-zoo bench bench-budget bench-zoo bench-hub notebooks clean system-deps

# Debian packages the emulated Raspberry Pi, the ssh target and the adb target
# need. Installed with apt-get when running as root (or with sudo); otherwise
# listed, and the tests that need them are skipped.
SYSTEM_PACKAGES := qemu-user-static openssh-server openssh-client adb
system-deps:
	@missing=""; \
	command -v qemu-aarch64-static >/dev/null || missing="$$missing qemu-user-static"; \
	[ -x /usr/sbin/sshd ] || missing="$$missing openssh-server"; \
	command -v ssh >/dev/null || missing="$$missing openssh-client"; \
	command -v adb >/dev/null || missing="$$missing adb"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  elif command -v sudo >/dev/null; then \
	    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else \
	    echo "Missing Debian packages:$$missing. Install them with apt-get; tests needing them are skipped."; \
	  fi; \
	fi

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# constraints.txt pins the tested versions; setup.cfg only declares ranges.
$(STAMP): $(VENV)/bin/python setup.cfg pyproject.toml constraints.txt
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test,notebooks,jax,micro]'
	# KerasHub (the 'hub' extra) without its tokenizer dependencies
	# (tensorflow-text and the hubs' clients): the tests build backbones
	# from their classes and never load a tokenizer or a preset.
	$(PY) -m pip install --quiet -c constraints.txt --no-deps keras-hub regex tokenizers
	touch $(STAMP)

$(VENV)/.torch-installed: $(STAMP)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test,torch]'
	touch $@

$(VENV)/.bench-installed: $(STAMP)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test,bench]'
	touch $@

## demo: the main job: train, prune 80%, QAT, int8 export, bench on host and emulated Pi 4, report.
demo: $(STAMP) system-deps
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m kcompress_demo

## notebooks: re-run every notebook in place, saving its outputs (plots included), at the full setting.
notebooks: $(STAMP) system-deps
	cd notebooks && for nb in [0-9]*.ipynb; do \
	  env -u KCOMPRESS_QUICK ../$(PY) -m jupyter nbconvert --to notebook --execute --inplace "$$nb" || exit 1; \
	done

# The core modules, run again on Keras's other backends: every public object
# of kcompress trains, saves, loads and exports there. CI's JAX pass leaves
# out the trained reference figures (proven on TensorFlow) and the real
# graphs, to stay within 30 minutes; test-torch runs them all.
BACKEND_TESTS := tests/pruning tests/quantization tests/clustering tests/distillation \
	tests/lowrank tests/test_public_objects.py tests/test_api_errors.py \
	tests/detection/test_losses.py tests/detection/test_boxes.py \
	tests/detection/test_metrics.py tests/detection/test_backend_export.py \
	tests/budget/test_sensitivity.py tests/budget/test_plan.py \
	tests/test_composite_layers.py tests/test_keras_internals.py
# The slowest shrink tests on JAX (72, 61, 58 and 30 s there): shrinking
# is numpy on the weights, the same on every backend; on JAX one variant of
# each still runs, and TensorFlow's pass runs them all.
JAX_SLOWEST := \
	--deselect 'tests/pruning/test_shrinking.py::test_shrunk_outputs_equal_masked_outputs[False-False]' \
	--deselect tests/pruning/test_shrinking.py::test_budget_gives_the_fraction_and_the_report_lists_layers \
	--deselect 'tests/pruning/test_group_pruning.py::test_shrunk_outputs_equal_the_zeroed_model[resnet_style]' \
	--deselect 'tests/pruning/test_group_pruning.py::test_shrunk_outputs_equal_the_zeroed_model[densenet_style]'
JAX_SKIP := --ignore=tests/pruning/test_reference_pruning.py \
	--ignore=tests/pruning/test_reference_channels.py \
	$(JAX_SLOWEST)

## test: ruff, the whole test suite (the notebooks included), then the core modules on JAX; two workers each.
# Two pytest-xdist workers, one per core of the CI machine: most tests spend
# their time in Python (tracing, conversion, Keras's own overhead), which
# one process runs on one core. Tests marked with one xdist_group share
# costly session fixtures and run on one worker.
test: $(STAMP) system-deps
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -n 2 --dist loadgroup --durations=15 \
	  --doctest-modules kcompress tflite_export tests
	KERAS_BACKEND=jax $(PY) -m pytest -q -n 2 --durations=10 $(BACKEND_TESTS) \
	  $(JAX_SKIP)

## test-torch: the core modules on PyTorch (installs torch, a large wheel; not in CI).
test-torch: $(VENV)/.torch-installed
	KERAS_BACKEND=torch $(PY) -m pytest -q $(BACKEND_TESTS) \
	  tests/test_real_graphs.py

## bench-hub: every technique on eleven KerasHub backbones, flat and nested (about 25 minutes on 2 cores).
bench-hub: $(STAMP)
	$(PY) benchmarks/kerashub_zoo.py

## test-zoo: the trained acceptance tests on every architecture (adds EfficientNetB0 and DenseNet121).
test-zoo: $(STAMP)
	KCOMPRESS_FULL_ZOO=1 $(PY) -m pytest -q tests/test_trained_zoo.py

## bench: every benchmark against TFMOT, side by side (installs the bench extra).
bench: $(VENV)/.bench-installed
	$(PY) benchmarks/training_overhead.py
	$(PY) benchmarks/compare_tfmot.py
	$(PY) benchmarks/compression_table.py
	$(PY) benchmarks/structured_pruning.py
	$(PY) benchmarks/detection.py

## bench-budget: compression to a budget against uniform settings and TFMOT (about two and a half hours on 2 cores).
bench-budget: $(VENV)/.bench-installed
	$(PY) benchmarks/budget.py

## bench-zoo: the conformance table on real architectures against TFMOT (about an hour).
bench-zoo: $(VENV)/.bench-installed
	$(PY) benchmarks/model_zoo.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
