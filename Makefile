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

.PHONY: help
help: ## List the targets with what they do
	@grep -E '^[a-z][a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

.PHONY: install
install: $(INSTALLED) ## Create .venv/ and install the platform with its test tools

.PHONY: run
run: $(INSTALLED) ## Bring up the whole platform in the foreground (Ctrl-C stops it)
	$(BIN)/finone up

.PHONY: demo
demo: $(INSTALLED) ## Bring up the platform streaming bundled stock history (no internet needed)
	$(BIN)/finone up --demo

.PHONY: test
test: $(INSTALLED) ## Run the test suite (what CI runs)
	@$(BIN)/python -m pytest $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	exit $$status

.PHONY: bench
bench: $(INSTALLED) ## Run the benchmarks in bench/ and print their figures
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
	rm -rf $(VENV) .pytest_cache *.egg-info
