# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint demo bench clean deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## make deps: the system packages the project uses, where missing (Debian: run as root).
deps:
	@command -v java >/dev/null || { echo "Java 17 is needed (apt-get install openjdk-17-jre-headless)"; exit 1; }
	@command -v mvn >/dev/null || { echo "Maven is needed (apt-get install maven)"; exit 1; }
	@if ! command -v promtool >/dev/null || ! command -v amtool >/dev/null || ! command -v prometheus-alertmanager >/dev/null; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus prometheus-alertmanager; \
	fi

## make test: create the virtualenv, install the project and run the whole suite (lint first).
test: deps $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## make demo: simulate an incident day and replay it through the catalog.
demo: $(STAMP)
	$(BIN)/tpmon simulate --out .demo/events.jsonl --scenario incident-day --customers 4000 --duration 70m --seed 7
	$(BIN)/tpmon replay .demo/events.jsonl --journeys .demo/journeys.jsonl --rejects .demo/rejects.jsonl

## make bench: replay throughput against a bare parse loop.
bench: $(STAMP)
	$(BIN)/python bench/replay_throughput.py

clean:
	rm -rf $(VENV) .demo .pytest_cache
