# Two commands for a fresh machine (see README.md):
#   make book   create .venv, install everything, build the book into _build/html
#   make test   create .venv, install everything, lint, run every test (what CI runs)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup book test refresh lint format

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[tf,book,test]"
	touch $@

setup: $(VENV)/.installed

book: setup
	$(BIN)/jupyter-book build . -W -n --keep-going

test: lint
	$(BIN)/python -m pytest

# Re-execute every chapter in the smoke profile and rewrite the .ipynb halves.
refresh: setup
	$(BIN)/python -m woofhelpers.refresh

# ruff: lint and format check over the package, the tests and the chapters' code cells.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format woofhelpers tests benchmarks
	$(BIN)/ruff check --fix woofhelpers tests benchmarks
