# splight-runner developer tasks. Everything runs from a project-local virtualenv (.venv).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install test test-fast test-pythons lint demo bench bench-smoke collector clean image build start stop

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

# The component-facing tests (marker component_facing) on every other CPython 3.10-3.13
# found (pyenv's included), each in its own .venv-py3.X; CI runs it after `make test`.
test-pythons: install
	bash .ci/other-pythons

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

# Containers, for people who have Docker (no Docker engine runs on the project's machines).
# Every image is built from this checkout: deploy/Dockerfile builds the wheel from src/.
DOCKER        ?= docker
IMAGE_TAG     ?= dev
# The component folder built into the component image (main.py, optional requirements.txt).
COMPONENT_DIR ?= $(CURDIR)/examples/demo
COMPOSE       := COMPONENT_DIR="$(abspath $(COMPONENT_DIR))" $(DOCKER) compose -f deploy/compose.yaml
# compose.yaml requires these for every command; building and stopping do not use them.
PLACEHOLDERS  := COMPONENT_ID="$${COMPONENT_ID:-unused}" SPLIGHT_ACCESS_ID="$${SPLIGHT_ACCESS_ID:-unused}" \
                 SPLIGHT_SECRET_KEY="$${SPLIGHT_SECRET_KEY:-unused}" SPLIGHT_GATEWAY_TOKEN="$${SPLIGHT_GATEWAY_TOKEN:-unused}"

# Missing Docker is one line (make's own error line), before anything runs.
ifneq ($(filter image build start stop,$(MAKECMDGOALS)),)
ifeq ($(shell command -v $(DOCKER) 2>/dev/null),)
$(error '$(DOCKER)' is not installed or not on PATH: 'make $(MAKECMDGOALS)' needs Docker)
endif
ifneq ($(shell $(DOCKER) info >/dev/null 2>&1 && echo up),up)
$(error no Docker engine answers ('$(DOCKER) info' failed): 'make $(MAKECMDGOALS)' needs a running Docker)
endif
ifneq ($(filter build start stop,$(MAKECMDGOALS)),)
ifneq ($(shell $(DOCKER) compose version >/dev/null 2>&1 && echo yes),yes)
$(error the Docker Compose plugin ('$(DOCKER) compose') is not installed: 'make $(MAKECMDGOALS)' needs it)
endif
endif
endif

# splight-runner:TAG (the runner and gateway image), splight-otelcol:TAG (the collector),
# splight-component:TAG (the runner image with COMPONENT_DIR as /app).
image:
	$(DOCKER) build -f deploy/Dockerfile --target runner -t splight-runner:$(IMAGE_TAG) .
	$(DOCKER) build -f deploy/Dockerfile.collector -t splight-otelcol:$(IMAGE_TAG) .
	$(DOCKER) build -f deploy/Dockerfile --target app --build-context component="$(abspath $(COMPONENT_DIR))" \
	    -t splight-component:$(IMAGE_TAG) .

# The compose stack of deploy/compose.yaml: component, collector, gateway.
build:
	$(PLACEHOLDERS) $(COMPOSE) build

# Needs COMPONENT_ID, SPLIGHT_ACCESS_ID, SPLIGHT_SECRET_KEY and SPLIGHT_GATEWAY_TOKEN in the environment.
start:
	$(COMPOSE) up --build --detach

stop:
	$(PLACEHOLDERS) $(COMPOSE) down
