# Two commands on a fresh machine with Python 3.11:
#   make run    set everything up and run a demo node on the embedded PostgreSQL
#   make test   set everything up and run the test suite
PY ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test install bench lint schemas clean

$(BIN)/.installed: pyproject.toml
	$(PY) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed"'
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/.installed

run: install
	$(BIN)/exchange demo

test: install
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/run.py $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check exchange schemas adapters tests
	$(BIN)/mypy exchange schemas

schemas: install
	$(BIN)/python -m schemas.export

clean:
	rm -rf $(VENV) demo-data .pytest_cache
