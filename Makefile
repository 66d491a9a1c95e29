# Two commands for a fresh machine (see README.md):
#   make book   create .venv, install everything, build the book into _build/html
#   make test   create .venv, install everything, lint, run every test (what CI runs)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup book test refresh lint format constraints portability

# Exact versions from constraints.txt, so that today's install and tomorrow's test the same
# code; pyproject.toml keeps ranges for learners (Colab). `make constraints` refreshes the pins.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[tf,book,test]"
	touch $@

# Re-pin: install the newest releases the ranges allow into a throwaway environment, freeze it.
constraints:
	rm -rf .venv-pins
	$(PYTHON) -m venv .venv-pins
	.venv-pins/bin/python -m pip install --quiet --upgrade pip
	.venv-pins/bin/python -m pip install --quiet ".[tf,book,test]"
	{ echo "# Exact versions for CI and the tests (make setup installs with -c constraints.txt)."; \
	  echo "# Learners (Colab) get the ranges in pyproject.toml instead. Refresh: make constraints"; \
	  .venv-pins/bin/python -m pip freeze --all --exclude-editable | grep -v -E '^(pip|woofhelpers)([=@ ]|$$)'; \
	} > constraints.txt
	rm -rf .venv-pins

setup: $(VENV)/.installed

book: setup
	$(BIN)/jupyter-book build . -W -n --keep-going

test: lint
	$(BIN)/python -m pytest

# No compared output may depend on the CPU's BLAS kernel or the thread count: re-run the
# chapters (strict nbval, fresh trial results) and tests/test_resnet.py under another OpenBLAS
# kernel the CPU supports (oneDNN capped at AVX2 on AVX-512 CPUs) and one thread everywhere.
# PORTABILITY=both is one run with both changes (CI); "kernel threads" runs them separately.
PORTABILITY ?= both
portability: setup
	$(BIN)/python .ci/portability.py $(PORTABILITY)

# Re-execute every chapter in the smoke profile and rewrite the .ipynb halves.
refresh: setup
	$(BIN)/python tools/refresh.py

# ruff: lint and format check over the package, the tests and the chapters' code cells.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format woofhelpers tests benchmarks
	$(BIN)/ruff check --fix woofhelpers tests benchmarks
