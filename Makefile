# QueueWorker developer commands. `make run` and `make test` work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv run render test lint typecheck unit bench clean help

help:  ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

venv: $(STAMP)  ## create .venv with everything development and tests need

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: venv  ## the main job: run the example QueueWorkers on this machine
	$(BIN)/qw render -f examples/

render: venv  ## print the Kubernetes objects the examples become
	$(BIN)/qw render -f examples/

lint: venv  ## ruff
	$(BIN)/ruff check .

typecheck: venv  ## mypy
	$(BIN)/mypy

unit: venv  ## pytest only
	@rc=0; $(BIN)/python -m pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests (test files: $$(ls tests/*/test_*.py 2>/dev/null | wc -l))"; fi; \
	exit $$rc

test: venv lint typecheck unit  ## ruff, mypy and the whole suite (the kind e2e suite skips without a cluster)

bench: venv  ## benchmarks: ratios against baselines measured in the same run
	$(BIN)/python -m bench

clean:  ## remove the venv and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .qw bench/out
