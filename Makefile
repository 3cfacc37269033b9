# Two entry points, both idempotent on a fresh clone: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.memsvc-installed
DEV_STAMP := $(VENV)/.memsvc-installed-dev

.PHONY: serve test lint format bench clean

# Python 3.11+ is required. Debian's python3 may lack the venv module (package python3-venv):
# then virtualenv, installed from PyPI for this user, makes the environment instead.
$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "memsvc needs Python 3.11 or newer (found $$($(PYTHON) --version 2>&1))"; exit 1; }
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
		$(PYTHON) -m pip install --quiet --user --break-system-packages virtualenv && \
		$(PYTHON) -m virtualenv --quiet $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch first: the CPU build of exactly 2.13.0; any other resolution pulls CUDA wheels.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(STAMP)

serve: $(STAMP)
	$(BIN)/memsvc serve

test: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

format: $(DEV_STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m evals.bench_core
	$(BIN)/python -m evals.bench_api
	$(BIN)/python -m evals.bench_kernels --n 100000 1000000

clean:
	rm -rf $(VENV) .memsvc .pytest_cache .ruff_cache
