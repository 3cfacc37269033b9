# Two entry points, both idempotent on a fresh clone: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.memsvc-installed
DEV_STAMP := $(VENV)/.memsvc-installed-dev

.PHONY: serve test lint format bench clean pg-server

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

# The contract suite also runs on PostgreSQL: the tests start a throwaway cluster from
# Debian's server binaries, installed here when missing.
pg-server:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || { \
		echo "installing PostgreSQL (Debian package postgresql)"; \
		SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends postgresql; }

test: $(DEV_STAMP) pg-server
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
