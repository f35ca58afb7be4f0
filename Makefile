# Two commands on a fresh machine with Python 3.11:
#   make run    set everything up and run a demo node on the embedded PostgreSQL
#   make test   set everything up and run the test suite
# make test-fast runs the unit and integration tiers only (no processes started);
# make lint runs ruff (check and format) and mypy, as CI does.
PY ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test test-fast install bench lint schemas clean

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

test-fast: install
	$(BIN)/python -m pytest -q -m "not system" $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/run.py $(BENCH_ARGS)

LINTED := exchange schemas adapters tests bench

lint: install
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy exchange schemas adapters

schemas: install
	$(BIN)/python -m schemas.export

clean:
	@# Under root the demo's cluster may live outside demo-data (docs/operations.md,
	@# "Running as root"); remove it too, so a later 'make run' starts afresh.
	@if [ -f demo-data/pg.location ]; then \
	  loc=$$(cat demo-data/pg.location); \
	  case "$$loc" in /var/lib/congress-exchange/clusters/*) rm -rf -- "$$loc";; esac; \
	fi
	rm -rf $(VENV) demo-data .pytest_cache
