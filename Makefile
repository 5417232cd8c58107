# iot_assets: `make dev` runs the product, `make test` runs the tests. Both set themselves up.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: install instance jars chromium dev test test-unit lint fmt docs demo bench local-aws ui clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@echo "installing the pinned packages into $(VENV)/ (first time, or after pyproject.toml changed: about 3 minutes)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip
	@$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[dev]"
	@rm -f $(VENV)/.installed-* && touch $@
	@echo "installed: $$($(BIN)/python -m pip list --format=freeze 2>/dev/null | grep -ci '^dagster')" \
	  "dagster packages, pyspark $$($(BIN)/python -c 'import pyspark; print(pyspark.__version__)')"

# Resolve the Spark jars into the Ivy cache once (later starts reuse it).
jars: install
	$(BIN)/iot-assets jars

# Headless Chromium and its driver for the UI browser test (Debian packages; the test also runs this).
chromium:
	scripts/ensure_chromium.sh

# The local Dagster instance: dagster.yaml copied into $(DAGSTER_HOME), the run-retry daemon's cursors primed.
instance: install
	@$(BIN)/iot-assets instance init

# Local AWS (moto) + Dagster UI on http://127.0.0.1:3000.
dev: jars instance
	scripts/dev.sh

# Two test processes, a test file per process at a time (its module fixtures stay together). On 2
# cores, three were slower: the subprocess JVMs of the e2e tests then compete.
TEST_WORKERS ?= 2
# `dg check defs` only loads the definitions: it gets an empty instance of its own, so a fresh
# clone's $(DAGSTER_HOME) is neither created nor warned about.
test: jars lint
	@home=$$(mktemp -d) && touch $$home/dagster.yaml && \
	  DAGSTER_HOME=$$home VIRTUAL_ENV=$(CURDIR)/$(VENV) PATH=$(CURDIR)/$(BIN):$$PATH \
	  PYTHONWARNINGS=ignore::Warning:dagster.components.scaffold.scaffold $(BIN)/dg check defs; \
	  rc=$$?; rm -rf $$home; exit $$rc
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=25

# ruff lint and format check ([tool.ruff] in pyproject.toml); `make fmt` fixes what it can.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# docs/settings.md is generated from iot_assets/settings.py; test_docs.py fails when it is stale.
docs: install
	$(BIN)/python -m iot_assets.settings > docs/settings.md.tmp && mv docs/settings.md.tmp docs/settings.md

test-unit: install
	$(BIN)/python -m pytest -m "not e2e"

# Headless: start local AWS if none runs, materialise the last 3 complete hours, print row counts.
demo: jars instance
	$(BIN)/iot-assets demo --hours 3

# Benchmarks with targets (not part of the tests): SCALE=small finishes in minutes, SCALE=full is
# the 1,000-device scale. Results: benchmarks/results/latest.json and the table in benchmarks/README.md.
SCALE ?= full
ONLY ?=
bench: jars
	$(BIN)/python -m benchmarks.run --scale $(SCALE) $(if $(ONLY),--only $(ONLY),)

local-aws: install
	$(BIN)/iot-assets local-aws

clean:
	rm -rf $(VENV) .dagster_home .dev
