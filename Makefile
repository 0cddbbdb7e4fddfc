# pulse-tui — every target bootstraps .venv idempotently.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run test lint proto bench bench-quick screenshots soak fuzz clean venv

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# the peers of the benchmarks (a `bench` extra); redis-server and PostgreSQL are started by the
# bench itself (redis-server is installed with apt-get when missing)
$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@touch $(BENCH_STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/pulse-tui --config examples/demo.toml $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/lint-imports
	$(BIN)/mypy

test: $(STAMP) lint
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

proto: $(STAMP)
	PYTHON=$(BIN)/python scripts/gen_proto.sh

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

bench-quick: $(BENCH_STAMP)
	$(BIN)/python -m bench --quick

screenshots: $(STAMP)
	$(BIN)/python -m scripts.screenshots

soak: $(STAMP)
	PULSE_SOAK=full $(BIN)/python -m pytest -q -m slow tests

fuzz: $(STAMP)
	PULSE_FUZZ_EXAMPLES=10000 $(BIN)/python -m pytest -q tests/test_fuzz.py

clean:
	rm -rf $(VENV) build dist *.egg-info
