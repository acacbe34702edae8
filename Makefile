# Every target sets up .venv by itself on a fresh Debian machine (python3 + python3-venv).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint types unit integration bench clean lock sysdeps

$(STAMP): requirements.lock pyproject.toml
	@$(PY) -m venv --help >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq python3-venv)
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	@# Bytecode, as an installed package has it: with PYTHONDONTWRITEBYTECODE set, every process (tests start
	@# hundreds) would compile logferry again. Edited modules are recompiled in memory, never used stale.
	$(BIN)/python -m compileall -q src
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/logferry demo $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

types: $(STAMP)
	$(BIN)/mypy src

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

integration: $(STAMP) sysdeps
	$(BIN)/pytest -q tests/integration

# Real peers the tests drive (rsyslog and its TLS driver, rsync, logger): installed if missing.
sysdeps:
	bash scripts/system-deps.sh

test: lint types sysdeps
	$(BIN)/pytest -q tests

bench: $(STAMP) sysdeps
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# Regenerate requirements.lock after changing dependency ranges in pyproject.toml.
lock:
	$(PY) -m venv /tmp/logferry-lock && /tmp/logferry-lock/bin/pip install -q uv
	/tmp/logferry-lock/bin/uv pip compile pyproject.toml --extra dev -o requirements.lock --python-version 3.11

clean:
	rm -rf $(VENV) logferry-data .pytest_cache .mypy_cache .ruff_cache
