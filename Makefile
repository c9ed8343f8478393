# mathtx — `make` lists the targets. Everything installs itself into .venv on first use.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= $(or $(MATHTX_PROFILE),cpu)
# CPU build of torch, installed first when the venv has no torch (a plain `pip install torch` on Linux pulls
# gigabytes of CUDA packages). Elsewhere, point pip at PyTorch's CPU wheel index with TORCH_PIP_ARGS.
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
STAMP := $(VENV)/.installed

.PHONY: help env figures retrain test lint lab bench clean

help: ## list the targets
	@echo "mathtx — reproducible companion to 'What is my math transformer doing?'"
	@echo
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'
	@echo
	@echo "  PROFILE=smoke|cpu|gpu|paper selects the profile of 'make figures' (default: \$$MATHTX_PROFILE, else cpu)"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --disable-pip-version-check -q $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(PY) -m pip install --disable-pip-version-check -q -e ".[dev]"
	@touch $@

env: $(STAMP) ## create .venv and install the package with its notebook and test extras

figures: $(STAMP) ## restore the shipped models, execute every notebook with papermill, write figures/ (RETRAIN=1: retrain first)
	$(if $(RETRAIN),$(PY) -m mathtx_helpers retrain --profile $(PROFILE))
	$(PY) -m mathtx_helpers figures --profile $(PROFILE)

retrain: $(STAMP) ## train every run of the profile from scratch as the shipped ones were, and compare with models/
	$(PY) -m mathtx_helpers retrain --profile $(PROFILE)

test: $(STAMP) ## ruff, then pytest (unit + property tests) and nbval over every notebook at the smoke profile
	$(VENV)/bin/ruff check .
	MATHTX_PROFILE=smoke TQDM_DISABLE=1 $(PY) -m pytest -p no:cacheprovider tests notebooks \
		--nbval-lax --nbval-current-env --nbval-cell-timeout=600

lint: $(STAMP) ## ruff on the package, tests, benchmarks and notebooks
	$(VENV)/bin/ruff check .

lab: $(STAMP) ## open JupyterLab on the notebooks with the project's kernel
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root,)

bench: $(STAMP) ## print throughput numbers (problem generation, addition training and scoring)
	$(PY) benchmarks/generate.py
	$(PY) benchmarks/arith_throughput.py

clean: ## remove generated data (data/ but its README) and caches; keeps .venv and figures/
	find data -mindepth 1 ! -name README.md -exec rm -rf {} +
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	rm -rf .pytest_cache .ruff_cache .hypothesis
