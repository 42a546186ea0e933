# Two commands on a fresh machine:  `make demo` (default STaR run)  and  `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo smoke test lint bench clean

$(BIN)/selftaught: pyproject.toml
	$(PY) -m venv $(VENV)
	# torch first and pinned: an unpinned torch pulls gigabytes of CUDA wheels
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

setup: $(BIN)/selftaught

demo: setup
	$(BIN)/selftaught run recipes/arithmetic.yaml --out runs/demo-$$(date +%Y%m%d-%H%M%S)

smoke: setup
	$(BIN)/selftaught run recipes/arithmetic_smoke.yaml --out runs/smoke-$$(date +%Y%m%d-%H%M%S)

lint: setup
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/ruff check src tests benchmarks

test: setup lint
	$(BIN)/pytest

bench: setup
	$(BIN)/python benchmarks/arithmetic_ablations.py

clean:
	rm -rf $(VENV) .cache runs
