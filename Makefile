# Experiment Portal — `make run` starts everything, `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Python >= 3.12: $(PYTHON) if given, else the first suitable one on PATH, else pyenv's newest.
PYTHON ?= $(shell for p in python3.13 python3.12 python3 $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -Vr); do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1 && { command -v $$p || echo $$p; } && break; done)
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
export PORT

.PHONY: help install setup run test bench lock clean

help:
	@echo "make run    set up (venv, database, demo data) and start the portal on http://127.0.0.1:$(PORT)"
	@echo "make test   set up and run the whole test suite"
	@echo "make bench  run the benchmarks and print their figures"

$(VENV)/.installed: requirements.lock pyproject.toml
	@test -n "$(PYTHON)" || { echo "No Python >= 3.12 found: install one, or pass PYTHON=/path/to/python3.12"; exit 1; }
	@echo "Using $(PYTHON) ($$($(PYTHON) --version))"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	touch $@

install: $(VENV)/.installed

setup: install
	$(PY) manage.py migrate --noinput -v 0
	$(PY) manage.py load_demo_users
	@if [ -z "$$UPSTREAM_API_KEY" ] && [ ! -s var/upstream_api_key ]; then \
		$(PY) manage.py create_api_key portal --project 100001 | tail -n 1 > var/upstream_api_key.tmp && \
		mv var/upstream_api_key.tmp var/upstream_api_key && chmod 600 var/upstream_api_key && \
		echo "Created the embedded upstream's API key for the portal (var/upstream_api_key)"; fi
	$(PY) manage.py seed_demo_upstream

run: setup
	$(PY) -m portal.devstack

test: install
	@test -x /usr/bin/chromium || ./.ci/install-chromium
	$(PY) -m pytest

bench: setup
	@for b in bench/[!_]*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# Re-resolve the pinned versions after changing pyproject.toml's dependencies.
lock:
	rm -rf /tmp/portal-lock-venv && $(PYTHON) -m venv /tmp/portal-lock-venv
	/tmp/portal-lock-venv/bin/pip install --quiet --disable-pip-version-check ".[dev]"
	/tmp/portal-lock-venv/bin/pip freeze --exclude experiment-portal > requirements.lock

clean:
	rm -rf $(VENV) var
