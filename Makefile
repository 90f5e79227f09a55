# The two quickstart commands: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo demo-deferred test lint typecheck unit bench clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install -q -e '.[dev]'
	touch $(VENV)/.installed $@

demo: $(VENV)/.installed
	$(BIN)/batchrouter demo

# Two nights of deferred summaries over the fake provider's batch APIs (docs/cost-levers.md).
demo-deferred: $(VENV)/.installed
	$(BIN)/python -m examples.nightly_summaries.deferred_demo

# The distribution's top-level packages (docs/architecture.md), and everything else with code.
PACKAGES := batchrouter producers worker routing ledger providers

# ruff, then the layers (import-linter contracts in pyproject.toml: a broken one names the chain).
lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check $(PACKAGES) tests examples bench
	$(BIN)/lint-imports

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy $(PACKAGES)

# The whole suite: lint, types, unit tests, and integration tests against a redis-server the
# suite starts itself and the machine's PostgreSQL (throwaway databases); nothing of the
# machine's is stopped or flushed (README). CI=true makes a missing service fail, not skip.
# --durations: the slowest tests are printed, so the suite's time stays watched.
test: lint typecheck
	$(BIN)/pytest -q --durations=15

unit: $(VENV)/.installed-dev
	$(BIN)/pytest -q tests -m "not redis and not postgres"

# The throughput suite (issue 5): prints each target's figure, baseline and ratio and writes
# docs/benchmarks.md. Starts its own redis-server; needs PostgreSQL (throwaway databases).
# `make bench ARGS="--quick"` for a smoke run, ARGS="--only P1,P3" for some targets.
bench: $(VENV)/.installed-bench
	$(BIN)/python -m bench $(ARGS)

# The `bench` extra: LiteLLM for P2's peer line (bench/peers.py); never a user's dependency.
$(VENV)/.installed-bench: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install -q -e '.[dev,bench]'
	touch $(VENV)/.installed $(VENV)/.installed-dev $@

clean:
	rm -rf .batchrouter .pytest_cache .mypy_cache .ruff_cache
