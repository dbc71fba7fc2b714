# Fruits! image pipeline. `make demo` and `make test` install what they need into .venv
# (and the template linters into .venv-sam / .venv-checkov: their pins clash with pytest's).
PYTHON ?= python3.11
VENV := .venv
SAM_VENV := .venv-sam
CHECKOV_VENV := .venv-checkov
PIP_FLAGS := --quiet --disable-pip-version-check

.PHONY: help venv iac-tools demo test test-fast lint bench notebook slides sam-build sam-validate clean

help:
	@echo "make demo   - local end-to-end demo on the bundled images (installs .venv)"
	@echo "make test   - the whole test suite, template linters included"
	@echo "make lint   - ruff"
	@echo "make bench  - fruits bench --json"
	@echo "make notebook - re-execute notebooks/local_pipeline.ipynb (paired with notebooks/local_pipeline.py)"
	@echo "make slides - build docs/presentation.pdf from docs/slides/build.py"

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

venv: $(VENV)/.installed

iac-tools: $(SAM_VENV)/.installed $(CHECKOV_VENV)/.installed

demo: venv
	$(VENV)/bin/fruits demo

test: venv iac-tools
	$(VENV)/bin/pytest

test-fast: venv
	$(VENV)/bin/pytest -m "not slow and not iac"

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

sam-validate: $(SAM_VENV)/.installed
	$(SAM_VENV)/bin/sam validate --lint --region eu-west-3

sam-build: $(SAM_VENV)/.installed
	$(SAM_VENV)/bin/sam build

clean:
	rm -rf .aws-sam .pytest_cache .ruff_cache work
