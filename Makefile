# The two commands a newcomer needs: `make demo` and `make test`. Each creates .venv when missing
# and installs what it needs, so on a fresh machine each is the only command to type.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# No calls home from MLflow or DVC, whatever runs under make.
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export DVC_NO_ANALYTICS := 1

.PHONY: install demo test lint typecheck pytest browser lock clean

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[train,serve,dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/catdog data prepare --raw samples/petimages --out data/prepared

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: install
	$(BIN)/mypy

# The web page is tested in a real headless Chromium: Debian's packages, installed only when missing.
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update && $$SUDO apt-get install -y chromium chromium-driver; \
	fi

pytest: install browser
	$(BIN)/pytest

test: lint typecheck pytest

# Refresh the committed lock after changing dependencies in pyproject.toml.
lock: install
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^catdog' > constraints.txt

clean:
	rm -rf data mlruns mlartifacts mlflow.db models reports .pytest_cache .mypy_cache .ruff_cache
