# Fruits! image pipeline. `make demo` and `make test` install what they need into .venv
# (and the template linters into .venv-sam / .venv-checkov: their pins clash with pytest's;
# the ingest Lambda's runtime and exact pins into .venv-lambda, where its bad-input corpus runs).
PYTHON ?= python3.11
# The function's runtime: the first python3.12 that runs (a pyenv shim may not), else $(PYTHON).
LAMBDA_PYTHON_CANDIDATES := python3.12 $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) /usr/bin/python3.12
LAMBDA_PYTHON ?= $(firstword $(foreach candidate,$(LAMBDA_PYTHON_CANDIDATES),$(shell $(candidate) -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1 && echo $(candidate))) $(PYTHON))
VENV := .venv
SAM_VENV := .venv-sam
CHECKOV_VENV := .venv-checkov
LAMBDA_VENV := .venv-lambda
PIP_FLAGS := --quiet --disable-pip-version-check

.PHONY: help venv iac-tools lambda-venv jvm-archive env-archive demo test test-setup test-fast lint bench notebook slides demo-record events sam-build sam-validate clean

help:
	@echo "make demo   - local end-to-end demo on the bundled images (installs .venv)"
	@echo "make test   - the whole test suite, template linters included"
	@echo "make lint   - ruff"
	@echo "make bench  - fruits bench --json"
	@echo "make notebook - re-execute notebooks/local_pipeline.ipynb (paired with notebooks/local_pipeline.py)"
	@echo "make slides - build docs/presentation.pdf from docs/slides/build.py"
	@echo "make demo-record - run the demo, fruits status and a table read-back into docs/data/ (the slides' demonstration)"
	@echo "make events - rewrite the sample Lambda events in events/ (operations/sample_events.py)"

$(VENV)/.installed: pyproject.toml lambdas/ingest/requirements.txt
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required (set PYTHON=...)"'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_FLAGS) --upgrade pip
	$(VENV)/bin/pip install $(PIP_FLAGS) -e '.[dev]'
	touch $@

$(SAM_VENV)/.installed: infra/requirements-sam.txt
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install $(PIP_FLAGS) -r infra/requirements-sam.txt
	touch $@

$(CHECKOV_VENV)/.installed: infra/requirements-checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install $(PIP_FLAGS) -r infra/requirements-checkov.txt
	touch $@

# The function's runtime (python3.12, else 3.11) with lambdas/ingest/requirements.txt as pinned, plus test tools.
$(LAMBDA_VENV)/.installed: lambdas/ingest/requirements.txt tests/ingest/requirements-lambda-pins.txt
	@$(LAMBDA_PYTHON) -c 'import sys; found = sys.version_info[:2]; assert found in ((3, 12), (3, 11)), "LAMBDA_PYTHON must be Python 3.12 (or 3.11)"; found == (3, 12) or print("note: no Python 3.12 found, so .venv-lambda runs the Lambda pins on Python 3.11 and the sam build test is skipped (set LAMBDA_PYTHON=...)")'
	$(LAMBDA_PYTHON) -m venv $(LAMBDA_VENV)
	$(LAMBDA_VENV)/bin/pip install $(PIP_FLAGS) -r lambdas/ingest/requirements.txt -r tests/ingest/requirements-lambda-pins.txt
	touch $@

venv: $(VENV)/.installed

iac-tools: $(SAM_VENV)/.installed $(CHECKOV_VENV)/.installed

lambda-venv: $(LAMBDA_VENV)/.installed

# Built once per machine and cached outside the checkout, beside the other installs: the archive of
# Spark's classes the tests' JVMs map (tests/jvm_class_archive.py; a bare pytest starts it in the
# background) and the packed job environment the deploy tests run (tests/packed_env_cache.py).
jvm-archive: venv
	$(VENV)/bin/python -m tests.jvm_class_archive build

env-archive: venv
	$(VENV)/bin/python -m tests.packed_env_cache build

demo: venv
	$(VENV)/bin/fruits demo

# -n 2 --dist loadscope: two pytest-xdist workers, a module's tests (a folder's, where they share a session
# fixture) on one worker (tests/conftest.py, xdist_scope), the units with slow tests handed out first
# (--no-loadscope-reorder keeps that order instead of xdist's largest-count-first); --durations: the slowest tests after every run, so the
# 10-minute budget stays in sight (docs/testing.md).
test:
	@$(MAKE) --no-print-directory -j4 test-setup
	$(VENV)/bin/pytest -n 2 --dist loadscope --no-loadscope-reorder --durations=25

# The four environments install side by side (pip waits on the registry and the disk more than on the
# CPU); the two cached builds run as soon as .venv is there.
test-setup: venv jvm-archive env-archive iac-tools lambda-venv

test-fast: venv
	$(VENV)/bin/pytest -n 2 --dist loadscope --no-loadscope-reorder -m "not slow and not iac and not lambda_pins"

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: venv
	$(VENV)/bin/fruits bench --json

# The notebook's source is the jupytext percent file; the .ipynb is committed with its outputs.
notebook: venv
	$(VENV)/bin/jupytext --sync notebooks/local_pipeline.py
	$(VENV)/bin/python notebooks/execute.py notebooks/local_pipeline.ipynb

slides: venv
	$(VENV)/bin/python docs/slides/build.py

demo-record: venv
	$(VENV)/bin/python docs/slides/capture_demo.py

events: venv
	$(VENV)/bin/python -m operations.sample_events --write

sam-validate: $(SAM_VENV)/.installed
	$(SAM_VENV)/bin/sam validate --lint --region eu-west-3

# SAM's pip builder needs the runtime's python3.12 on PATH: .venv-lambda has it.
sam-build: $(SAM_VENV)/.installed $(LAMBDA_VENV)/.installed
	PATH="$(CURDIR)/$(LAMBDA_VENV)/bin:$$PATH" $(SAM_VENV)/bin/sam build

clean:
	rm -rf .aws-sam .pytest_cache .ruff_cache work
