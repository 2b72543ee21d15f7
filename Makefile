# Everything a fresh machine needs comes from here: a virtualenv, the project, Debian's
# chromium for the browser tests and Debian's prometheus (with promtool) for the checks
# of deploy/prometheus/ and the scrape test. Nothing is installed by hand.
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

# Without its recommended node exporter: a host daemon the tests have no use for.
/usr/bin/promtool:
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
		prometheus >/dev/null

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/fairshare dev

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) /usr/bin/promtool
	$(BIN)/pytest tests/unit -q

integration: $(STAMP)
	$(BIN)/pytest tests/integration -q

e2e: $(STAMP) /usr/bin/chromium /usr/bin/promtool
	$(BIN)/pytest tests/e2e -q

test: $(STAMP) /usr/bin/chromium /usr/bin/promtool lint types
	$(BIN)/pytest -q --durations=15

asyncapi: $(STAMP)
	$(BIN)/fairshare asyncapi

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
