# Everything a fresh machine needs comes from here: a virtualenv, the project, and
# Debian's chromium for the browser tests. Nothing is installed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup run test lint types unit integration e2e asyncapi bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

/usr/bin/chromium:
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/fairshare dev

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

integration: $(STAMP)
	$(BIN)/pytest tests/integration -q

e2e: $(STAMP) /usr/bin/chromium
	$(BIN)/pytest tests/e2e -q

test: $(STAMP) /usr/bin/chromium lint types
	$(BIN)/pytest -q --durations=15

asyncapi: $(STAMP)
	$(BIN)/fairshare asyncapi

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
