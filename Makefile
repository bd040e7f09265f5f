# Every target creates and uses .venv itself: `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Extra arguments for pytest, e.g. `make test PYTEST_ARGS="-k rfc4475"`.
PYTEST_ARGS ?=

.PHONY: demo test lint bench clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	@command -v espeak-ng >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq --no-install-recommends espeak-ng >/dev/null; } \
	  || { echo "make demo needs espeak-ng: apt-get install espeak-ng" >&2; exit 1; }
	$(BIN)/gateway demo

# Lint, then tests/run.sh: installs the missing peers (as root), finds or starts PostgreSQL,
# runs every test, then the calendar-dependent ones again at another date (libfaketime).
test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	tests/run.sh $(BIN)/python $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
