# embed-metrics: `make demo` and `make test` are all a fresh clone needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test test-fast install lint typecheck pytest dbt-test bench clean db-stop browser

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch and torchvision from the same release line (CPU here, CUDA on GPU hosts)
	$(BIN)/pip install --quiet 'torch==2.14.1' 'torchvision==0.29.1'
	# the core and every extra (the model stack included): the demo and every test need them
	$(BIN)/pip install --quiet -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP)

## demo: set up, start the embedded Postgres, load the demo catalog, embed it,
## build every metric with dbt, print the scorecard
demo: install
	$(BIN)/embed-udfs demo run

## test: set up, then the type checker, pytest (unit + integration on the embedded
## Postgres, including dbt builds with dbt unit tests), then ruff (lint and format) and sqlfluff
test: install typecheck pytest lint

## test-fast: the unit tier only (no database, no model training; under two
## minutes), then ruff; `make test` runs every tier
test-fast: install
	$(BIN)/pytest -q -m unit tests/python
	$(BIN)/ruff check embed_udfs tests bench
	$(BIN)/ruff format --check embed_udfs tests bench

# mypy over embed_udfs (settings in pyproject.toml)
typecheck: install
	$(BIN)/mypy

# every tier, unfiltered: pytest's "no tests collected" (exit 5) cannot arise from a marker
pytest: install browser
	$(BIN)/pytest -q tests/python

# the HTML report's test opens it in headless Chromium: install Debian's when
# it is missing and we may (root, as in CI); otherwise that one test skips
browser:
	@if command -v chromium >/dev/null || command -v chromium-browser >/dev/null \
	    || command -v google-chrome >/dev/null || [ -n "$$CHROMIUM" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium for the HTML report test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "no chromium and not root: the HTML report's browser test will skip"; fi

# the dbt templater compiles the models, so it needs the database (started on demand)
lint: install
	$(BIN)/ruff check embed_udfs tests bench
	$(BIN)/ruff format --check embed_udfs tests bench
	eval "$$($(BIN)/embed-udfs db env)" && $(BIN)/sqlfluff lint models analyses

bench: install
	$(BIN)/python bench/retrieval.py

db-stop:
	$(BIN)/embed-udfs db stop

clean:
	-$(BIN)/embed-udfs db stop
	rm -rf $(VENV) .embed_metrics target logs
