# supportstream: `make demo` and `make test` work on a fresh machine with nothing installed by hand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck unit bench bench-replay clean system-deps

# The virtual environment, rebuilt when the pinned dependencies change.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/supportstream demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

system-deps:
	bash .ci/system-deps.sh

unit: $(STAMP) system-deps
	$(BIN)/pytest

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python -m loadtest.bench

# Replay's records/s (wall and per CPU-second), its limits and its memory: BENCHMARKS.md's
# "Replay" section (rewrites only that section).
bench-replay: $(STAMP)
	$(BIN)/python -m loadtest.replay_bench --write BENCHMARKS.md

clean:
	rm -rf $(VENV) .supportstream .pytest_cache .mypy_cache .ruff_cache
