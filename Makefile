# The few commands people type. `make quickstart` and `make test` work on a fresh machine (Python 3.11).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: install quickstart test test-fast lint format ui clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned: CPU machines get the CPU build, GPU workstations the CUDA build of the same version
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

quickstart: $(STAMP)
	$(BIN)/ape-nas sweep experiments/quickstart.yaml

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# ruff, then the layer contracts of pyproject.toml's [tool.importlinter] (a wrong import fails the build)
lint: $(STAMP)
	$(BIN)/ruff check ape_nas tests benchmarks
	$(BIN)/ruff format --check ape_nas tests benchmarks
	$(BIN)/lint-imports --no-cache --no-logo

format: $(STAMP)
	$(BIN)/ruff format ape_nas tests benchmarks
	$(BIN)/ruff check --fix ape_nas tests benchmarks

ui: $(STAMP)
	$(BIN)/ape-nas ui

clean:
	rm -rf runs .pytest_cache .ruff_cache
