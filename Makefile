# flowgate — every command a newcomer or CI needs. See README.md.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_ENV := .flowgate/dev.env
PYTEST_ARGS ?=

.PHONY: setup run test bench bench-tools bench-peers lint fmt clean postgres-server docs-tools chromium screenshots docs-config vendor-ui

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

$(DEV_ENV):
	@mkdir -p .flowgate
	@echo "FLOWGATE_ADMIN_KEY=fgk_$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(24))')" > $(DEV_ENV)
	@chmod 600 $(DEV_ENV)

# FLOWGATE_HOST / FLOWGATE_PORT given to `make run` are kept in $(DEV_ENV) (for later runs, and for
# the CLI, which reads that file when run in this checkout).
run: setup $(DEV_ENV)
	@for name in FLOWGATE_HOST FLOWGATE_PORT; do \
	  value=$$(printenv $$name) || continue; \
	  (umask 077; grep -v "^$$name=" $(DEV_ENV) > $(DEV_ENV).tmp; echo "$$name=$$value" >> $(DEV_ENV).tmp); \
	  cat $(DEV_ENV).tmp > $(DEV_ENV); rm -f $(DEV_ENV).tmp; \
	done; \
	set -a; . ./$(DEV_ENV); set +a; \
	$(BIN)/flowgate db upgrade && \
	exec $(BIN)/flowgate serve --examples examples --show-key

# PostgreSQL's server binaries (not on PATH: /usr/lib/postgresql/*/bin); the tests start their own
# throw-away cluster on loopback.
postgres-server:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  echo "installing PostgreSQL from Debian's packages"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

# curl, which the recipes in docs/triggers.md use (tests/integration/test_docs_triggers.py runs them).
docs-tools:
	@command -v curl >/dev/null 2>&1 || { \
	  echo "installing curl from Debian's packages"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null; }

# Debian's Chromium for the browser tests (tests/e2e), which Playwright launches by path: its own
# browser download (`playwright install`) is never used.
chromium:
	@test -x /usr/bin/chromium || { \
	  echo "installing Chromium from Debian's packages"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: setup postgres-server docs-tools chromium
	$(BIN)/python -m pytest -p no:cacheprovider --durations=20 $(PYTEST_ARGS)

# The monitor's screenshots in docs/images/, taken by the browser tests (an ordinary `make test`
# leaves them alone).
screenshots: setup chromium
	FLOWGATE_SCREENSHOTS=1 $(BIN)/python -m pytest -p no:cacheprovider -q tests/e2e/test_screenshots.py

# The benchmark (docs/performance.md): every case, or one with CASE=T1 (several: CASE=R1,T1);
# PEERS=1 also runs Celery + Redis (in .venv-peers, never in flowgate's venv).
CASE ?=
PEERS ?=
bench: setup postgres-server bench-tools $(if $(PEERS),bench-peers)
	$(if $(CASE),BENCH_SCENARIOS=$(CASE)) $(if $(PEERS),BENCH_PEERS=1) $(BIN)/python -m bench

# wrk, the load generator (without it the bench falls back on its own asyncio client).
bench-tools:
	@command -v wrk >/dev/null 2>&1 || { \
	  echo "installing wrk from Debian's packages"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }

# The peers of `make bench PEERS=1`: Debian's redis-server, Celery from PyPI in its own venv.
bench-peers:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "installing redis-server from Debian's packages"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }
	@test -x .venv-peers/bin/celery || { \
	  $(PYTHON) -m venv .venv-peers && .venv-peers/bin/python -m pip install --quiet 'celery[redis]'; }

lint: setup
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

fmt: setup
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

docs-config: setup
	$(BIN)/python -m flowgate.settings > docs/configuration.md

# htmx for the monitor, from npm into the package (committed: the monitor never loads a CDN).
HTMX_VERSION := 2.0.11
HTMX_SSE_VERSION := 2.2.4
vendor-ui:
	@tmp=$$(mktemp -d) && cd $$tmp && \
	  npm pack --silent htmx.org@$(HTMX_VERSION) htmx-ext-sse@$(HTMX_SSE_VERSION) >/dev/null && \
	  tar xzf htmx.org-$(HTMX_VERSION).tgz package/dist/htmx.min.js && \
	  cp package/dist/htmx.min.js $(CURDIR)/src/flowgate/ui/static/htmx.min.js && \
	  tar xzf htmx-ext-sse-$(HTMX_SSE_VERSION).tgz package/dist/sse.min.js && \
	  cp package/dist/sse.min.js $(CURDIR)/src/flowgate/ui/static/htmx-ext-sse.min.js && \
	  rm -rf $$tmp

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache flowgate.db flowgate.db-* bench/results.json
