# splight-runner developer tasks. Everything runs from a project-local virtualenv (.venv).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install test test-fast lint demo bench bench-smoke collector clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,gateway]"
	touch $(STAMP)

# The collector distribution (official OpenTelemetry Collector Builder), cached by manifest hash.
collector: install
	$(PY) collector-config/build.py

# The whole suite, slow fault scenarios and the real collector included (what CI runs).
test: install collector
	$(PY) -m pytest

# Without the slow scenarios and the collector, for a quick local loop.
test-fast: install
	$(PY) -m pytest -m "not slow and not collector"

lint: install
	$(VENV)/bin/ruff check src tests bench collector-config examples
	$(VENV)/bin/ruff format --check src tests bench collector-config examples

demo: install
	$(PY) examples/run_demo.py

bench: install
	$(PY) -m bench

bench-smoke: install
	$(PY) -m bench --smoke

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache
