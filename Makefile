# Two entry points: `make run` (gateway on http://127.0.0.1:8787, embedded defaults)
# and `make test` (installs what the suite needs, then runs it). .ci/run calls `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# Lambda's runtime is python3.12: prefer it so `sam build` finds the same interpreter.
BASE_PYTHON ?= $(shell scripts/find_python.sh)

.PHONY: run test bench clean

$(PY):
	$(BASE_PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# constraints.txt pins every package to the versions the suite last passed with.
$(VENV)/.local-installed: $(PY) pyproject.toml constraints.txt
	$(PY) -m pip install -q -c constraints.txt -e '.[local]'
	touch $@

$(VENV)/.test-installed: $(PY) pyproject.toml constraints.txt
	$(PY) -m pip install -q -c constraints.txt -e '.[local,test]'
	touch $@

run: $(VENV)/.local-installed
	$(PY) -m aigw.adapters.local

test: $(VENV)/.test-installed
	scripts/ensure_system_packages.sh unshare:util-linux ip:iproute2 redis-server:redis-server redis-cli:redis-tools
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.test-installed
	scripts/ensure_system_packages.sh node:nodejs npm:npm
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m bench.run_all

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache
