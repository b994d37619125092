# supportstream: `make demo` and `make test` work on a fresh machine with nothing installed by hand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck unit bench bench-replay clean system-deps bytecode

# The virtual environment, rebuilt when the pinned dependencies change.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

# The project's bytecode, compiled ahead: where PYTHONDONTWRITEBYTECODE is set, every replay,
# worker and sink otherwise compiles the project's modules again when it starts.
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q processors streams sinks schemas loadtest

demo: $(STAMP) bytecode
	$(BIN)/supportstream demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

system-deps:
	bash .ci/system-deps.sh

unit: $(STAMP) system-deps bytecode
	$(BIN)/pytest

test: lint typecheck unit

bench: $(STAMP) bytecode
	$(BIN)/python -m loadtest.bench

# Replay's records/s (wall and per CPU-second), its limits and its memory: BENCHMARKS.md's
# "Replay" section (rewrites only that section).
bench-replay: $(STAMP) bytecode
	$(BIN)/python -m loadtest.replay_bench --write BENCHMARKS.md

clean:
	rm -rf $(VENV) .supportstream .pytest_cache .mypy_cache .ruff_cache
