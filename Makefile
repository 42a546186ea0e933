# Two commands on a fresh machine:  `make demo` (default STaR run)  and  `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo smoke test lint bench clean lock

$(BIN)/selftaught: pyproject.toml requirements.lock
	$(PY) -m venv $(VENV)
	# torch first and pinned: an unpinned torch pulls gigabytes of CUDA wheels
	$(BIN)/pip install -q torch==2.13.0
	# everything else at the versions in requirements.lock (tested together); `make lock` regenerates it
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@

# Re-resolve requirements.lock from pyproject.toml (dev extras included, torch left to the line above;
# resolved against the CPU torch wheel so that no CUDA packages enter the lock).
lock: setup
	$(BIN)/pip install -q pip-tools
	echo "torch==2.13.0+cpu" > .torch-cpu.txt
	$(BIN)/pip-compile -q --constraint=.torch-cpu.txt --extra=dev --no-emit-find-links --no-emit-index-url \
		--no-emit-trusted-host --output-file=requirements.lock --strip-extras --unsafe-package=selftaught \
		--unsafe-package=torch pyproject.toml
	rm -f .torch-cpu.txt

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
