# make run  : a demo of the whole job against the local MariaDB and RabbitMQ
# make test : the whole test suite (what .ci/run calls)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test install lint bench clean services

$(BIN)/.deps: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q '.[test]'
	touch $@

# Reinstall the project itself each time (not editable): tests run what `pip install .` gives.
# build/ goes first: setuptools ships whatever an earlier build left there, moved modules included.
install: $(BIN)/.deps
	rm -rf build
	$(BIN)/pip install -q --no-deps --force-reinstall .

services: install
	$(BIN)/python tests/preflight.py

run: services
	$(BIN)/pmtabounce demo

test: services
	$(BIN)/ruff check .
	$(BIN)/pytest -q $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .

bench: services
	$(BIN)/python bench/bench.py

clean:
	rm -rf $(VENV) build *.egg-info demo
