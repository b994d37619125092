# supportstream: `make demo` and `make test` work on a fresh machine with nothing installed by hand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck unit bench bench-replay clean system-deps bytecode

# The domain's sources: the modules compiled with mypyc (processors/native.py) are checked
# against all of them, so an edit to any rebuilds the install (else the stale compiled module
# would run instead of the edited source; tests/conftest.py refuses to test such a tree).
DOMAIN := $(shell find processors -name '*.py')
# Once a C compiler is found, an install made without one (pure Python) is made again.
COMPILER := $(if $(shell command -v cc 2>/dev/null),$(VENV)/.compiler-found)

# The virtual environment, rebuilt when the pinned dependencies or the domain change. Without a
# C compiler (or with SUPPORTSTREAM_NATIVE=0) the domain installs as pure Python, with a notice.
$(STAMP): pyproject.toml setup.py $(DOMAIN) $(COMPILER)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@command -v cc >/dev/null || rm -f $(VENV)/.compiler-found
	@command -v cc >/dev/null || [ "$${SUPPORTSTREAM_NATIVE:-1}" = 0 ] || echo "NOTICE: no C" \
	  "compiler (cc): the domain installs as pure Python, slower but with the same results. For" \
	  "the compiled domain: apt-get install gcc (make system-deps), then make again." >&2
	env $$(command -v cc >/dev/null || echo SUPPORTSTREAM_NATIVE=0) \
	  $(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

$(VENV)/.compiler-found:
	mkdir -p $(VENV) && touch $@

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

# The tests run on the compiled domain, then tests/processors and replay's acceptance tests once
# more on its sources (SUPPORTSTREAM_INTERPRETED=1), so that the pure-Python path cannot rot.
# system-deps comes first: it installs the C compiler the install needs.
unit: system-deps $(STAMP) bytecode
	$(BIN)/pytest
	SUPPORTSTREAM_INTERPRETED=1 $(BIN)/pytest -q $(INTERPRETED_TESTS)

INTERPRETED_TESTS := tests/processors tests/streams/test_replay_handworked.py \
	tests/streams/test_replay_routing.py tests/streams/test_replay_agents_quality.py \
	tests/streams/test_replay_promises_incidents.py tests/streams/test_generated_week.py \
	tests/schemas/test_avro_writer.py tests/schemas/test_avro_reader.py

test: system-deps lint typecheck unit

bench: $(STAMP) bytecode
	$(BIN)/python -m loadtest.bench

# Replay's records/s (wall and per CPU-second), its limits and its memory: BENCHMARKS.md's
# "Replay" section (rewrites only that section).
bench-replay: $(STAMP) bytecode
	$(BIN)/python -m loadtest.replay_bench --write BENCHMARKS.md

clean:
	rm -rf $(VENV) .supportstream .pytest_cache .mypy_cache .ruff_cache build
	find processors -name '*.so' -delete
	rm -f supportstream__mypyc.*.so
