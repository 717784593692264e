# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint demo bench clean deps fuzz

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## make deps: the system packages the project uses, where missing (Debian: run as root): Prometheus and
## Alertmanager, and Chromium (headless), which renders the review in the tests (tpmon report).
deps:
	@command -v java >/dev/null || { echo "Java 17 is needed (apt-get install openjdk-17-jre-headless)"; exit 1; }
	@command -v mvn >/dev/null || { echo "Maven is needed (apt-get install maven)"; exit 1; }
	@if ! command -v promtool >/dev/null || ! command -v amtool >/dev/null || ! command -v prometheus-alertmanager >/dev/null \
		|| ! command -v chromium >/dev/null; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
			prometheus prometheus-alertmanager chromium; \
	fi

## make test: create the virtualenv, install the project and run the whole suite (lint first), in three
## processes, each with its own Kafka broker for its session (the integration tests mostly wait: on two
## cores, three processes took 13 min where two took 19, every test about as long); the 25 slowest
## tests are listed at the end (the suite must stay under 20 minutes).
test: deps $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 3 --dist loadgroup --durations=25

## make fuzz: the fuzz suite at length (make test runs it bounded); FUZZ_EXAMPLES per property, 20000.
FUZZ_EXAMPLES ?= 20000
fuzz: $(STAMP)
	TPMON_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q tests/test_fuzz.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## make demo: a local Kafka, a worker and the simulator's incident day, with the Customer Room live.
DURATION ?= 3m
demo: $(STAMP)
	$(BIN)/tpmon demo --duration $(DURATION)

## make bench: every benchmark side by side on a local broker (docs/PERFORMANCE.md); BENCH_ARGS=--smoke for a quick check.
bench: deps $(STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .demo .pytest_cache
