# batchbox developer entry points. `make test` or `make demo` on a fresh Debian 12 (root) installs and
# starts everything: Python venvs, Azurite (npm), a Docker engine and the node image. Every step is
# idempotent; stamp files make a second `make setup` take seconds.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
SDK14_VENV := .venv-sdk14
SDK14_PACKAGES := azure-batch==14.2.0 msrest pytest pytest-timeout
PYTEST_ARGS ?=
APT_ENV := DEBIAN_FRONTEND=noninteractive

VENV_STAMP := $(VENV)/.batchbox-dev-installed
SDK14_STAMP := $(SDK14_VENV)/.batchbox-sdk14-installed
NPM_STAMP := node_modules/.batchbox-npm-installed

.PHONY: help setup venv npm docker node-image sdk14-venv browser test soak demo bench lint clean

help:
	@echo "make setup       venv (.venv), npm ci (Azurite), Docker engine, node image, .venv-sdk14, chromium"
	@echo "make test        setup, then pytest over tests/ (extra arguments: PYTEST_ARGS=...)"
	@echo "make soak        setup, then the long soaks and sweeps (tests marked soak; about 40 minutes)"
	@echo "make demo        setup, then the top-N words demo"
	@echo "make bench       setup, then every benchmark in bench/ (numbers go to bench/RESULTS.md)"
	@echo "make lint        ruff check, ruff format --check, mypy"
	@echo "make clean       remove .venv, .venv-sdk14, node_modules and stamps (images stay)"

setup: venv npm docker node-image sdk14-venv browser

venv: $(VENV_STAMP)

# Creates the venv with $(PYTHON) (>= 3.10); on Debian, python3-venv is installed when ensurepip is missing.
define make_venv
	if [[ ! -x $(1)/bin/python ]]; then \
	  echo "creating $(1) with $(PYTHON)"; \
	  $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
	    || { echo "batchbox needs Python >= 3.10; run: make PYTHON=/path/to/python3.1x setup" >&2; exit 1; }; \
	  if ! $(PYTHON) -m venv $(1); then \
	    rm -rf $(1); \
	    if [[ $$(id -u) == 0 ]] && command -v apt-get >/dev/null; then \
	      $(APT_ENV) apt-get install -y python3-venv || { apt-get update && $(APT_ENV) apt-get install -y python3-venv; }; \
	      $(PYTHON) -m venv $(1); \
	    else \
	      echo "cannot create $(1): install the venv module (Debian: apt-get install python3-venv)" >&2; exit 1; \
	    fi; \
	  fi; \
	  $(1)/bin/python -m pip install --quiet --upgrade pip; \
	fi
endef

$(VENV_STAMP): pyproject.toml
	@$(call make_venv,$(VENV))
	$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	touch $@

npm: $(NPM_STAMP)

$(NPM_STAMP): package.json package-lock.json
	@if ! command -v npm >/dev/null; then \
	  if [[ $$(id -u) == 0 ]] && command -v apt-get >/dev/null; then \
	    $(APT_ENV) apt-get install -y nodejs npm || { apt-get update && $(APT_ENV) apt-get install -y nodejs npm; }; \
	  else \
	    echo "npm is missing: install Node.js (>= 18) and npm" >&2; exit 1; \
	  fi; \
	fi
	npm ci --no-audit --no-fund
	touch $@

docker:
	BATCHBOX_PYTHON=$(VENV)/bin/python batchbox/backends/local/ensure-docker.sh

node-image: venv docker
	$(VENV)/bin/python -m batchbox.backends.local.node_image build

# The stamp holds the package list, so editing SDK14_PACKAGES reinstalls.
sdk14-venv:
	@if [[ "$$(cat $(SDK14_STAMP) 2>/dev/null)" != "$(SDK14_PACKAGES)" ]]; then \
	  echo "installing $(SDK14_PACKAGES) into $(SDK14_VENV)"; \
	  $(call make_venv,$(SDK14_VENV)); \
	  $(SDK14_VENV)/bin/python -m pip install --quiet $(SDK14_PACKAGES); \
	  echo "$(SDK14_PACKAGES)" >$(SDK14_STAMP); \
	fi

# Debian's chromium, for the portal's browser tests (driven by Playwright); without root and apt they are skipped.
browser:
	@if command -v chromium >/dev/null; then :; \
	elif [[ $$(id -u) == 0 ]] && command -v apt-get >/dev/null; then \
	  $(APT_ENV) apt-get install -y chromium || { apt-get update && $(APT_ENV) apt-get install -y chromium; }; \
	else \
	  echo "chromium is not installed and cannot be (needs root and apt-get): the portal's browser tests will be skipped"; \
	fi

test: setup
	$(VENV)/bin/pytest -p no:cacheprovider $(PYTEST_ARGS)

# The chaos soak, the whole crash sweep and the long model-based run (skipped by `make test`); -s shows their figures.
soak: setup
	BATCHBOX_SOAK=1 $(VENV)/bin/pytest -p no:cacheprovider -m soak -s $(PYTEST_ARGS)

demo: setup
	$(VENV)/bin/python examples/topn_words/run_demo.py

# The `bench` extra (matplotlib, pyinstrument) is installed once; the stamp is redone when pyproject.toml changes.
bench: setup
	@if [[ ! $(VENV)/.batchbox-bench-installed -nt pyproject.toml ]]; then \
	  $(VENV)/bin/pip install -q -e '.[dev,bench]' && touch $(VENV)/.batchbox-bench-installed; \
	fi
	$(VENV)/bin/python -m bench.run_all

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) $(SDK14_VENV) node_modules
