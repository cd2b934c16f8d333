# Finance One Stop. `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

# Reinstall when the dependency list or the compiled book changes (pip builds actors/_book.c);
# torch==2.13.0 resolves to the local CPU wheel.
$(INSTALLED): pyproject.toml actors/_book.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

# The web app: npm packages from the lock file, its API types generated from the API's OpenAPI
# document (an API change that breaks the app breaks its build), rebuilt when either changed.
WEB := web
WEB_DEPS := $(WEB)/node_modules/.installed
WEB_BUILT := $(WEB)/dist/.built
WEB_SOURCES := $(shell find $(WEB)/src $(WEB)/scripts $(WEB)/public -type f ! -name schema.d.ts 2>/dev/null) \
	$(wildcard $(WEB)/index.html $(WEB)/package.json $(WEB)/tsconfig*.json $(WEB)/vite.config.ts)
API_SOURCES := $(shell find core serve -name '*.py')
# Browser tests drive Debian's Chromium; the test command installs it when missing.
CHROMIUM := /usr/bin/chromium
WRK := /usr/bin/wrk
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

$(WEB_DEPS): $(WEB)/package-lock.json
	npm --prefix $(WEB) ci --no-audit --no-fund
	touch $@

$(WEB)/openapi.json: $(INSTALLED) $(API_SOURCES)
	$(BIN)/finone openapi --output $@

$(WEB_BUILT): $(WEB_DEPS) $(WEB)/openapi.json $(WEB_SOURCES)
	npm --prefix $(WEB) run build
	touch $@

$(CHROMIUM):
	$(SUDO) apt-get update
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install --yes --no-install-recommends chromium

# The HTTP load generator of bench/bench_ingress.py.
$(WRK):
	$(SUDO) apt-get update
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install --yes --no-install-recommends wrk

.PHONY: help
help: ## List the targets with what they do
	@grep -E '^[a-z][a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

.PHONY: install
install: $(INSTALLED) ## Create .venv/ and install the platform with its test tools

.PHONY: web
web: $(WEB_BUILT) ## Build the web app into web/dist (only when its sources or the API changed)

.PHONY: run
run: $(INSTALLED) $(WEB_BUILT) ## Bring up the whole platform in the foreground (Ctrl-C stops it)
	$(BIN)/finone up

.PHONY: demo
demo: $(INSTALLED) $(WEB_BUILT) ## Bring up the platform on bundled stock history and a simulated crypto market (no internet needed)
	$(BIN)/finone up --demo

PACKAGES := core training actors serve cluster

.PHONY: check
check: $(INSTALLED) ## The house checks: the layer contracts, ruff, mypy
	$(BIN)/lint-imports
	$(BIN)/ruff check $(PACKAGES) bench tests
	$(BIN)/ruff format --check $(PACKAGES) bench tests
	$(BIN)/mypy

.PHONY: test
test: check $(WEB_BUILT) $(CHROMIUM) ## Run the house checks, the web app's unit tests and the suite (CI)
	npm --prefix $(WEB) test
	@$(BIN)/python -m pytest $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	exit $$status

.PHONY: bench
bench: $(INSTALLED) $(WRK) ## Run the benchmarks in bench/ and print their figures
	@for script in bench/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

.PHONY: admin
admin: $(INSTALLED) ## Create the first admin account: make admin EMAIL=you@example.com
	@test -n "$(EMAIL)" || { echo "usage: make admin EMAIL=you@example.com" >&2; exit 2; }
	$(BIN)/finone create-admin --email "$(EMAIL)"

.PHONY: status
status: $(INSTALLED) ## Show the health of a running platform
	$(BIN)/finone status

.PHONY: down
down: $(INSTALLED) ## Stop a platform started elsewhere on this data directory
	$(BIN)/finone down

.PHONY: compose-up
compose-up: ## Build the image and start the platform with Docker Compose (2 Ray workers)
	docker compose up -d --build --scale ray-worker=2

.PHONY: clean
clean: ## Remove the virtual environment and caches (keeps .finone/ data)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
