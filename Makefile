# make run  : a demo of the whole job against the local MariaDB and RabbitMQ (options: DEMO_ARGS='...')
# make test : the unit tests on the oldest and newest Python we admit, then the whole suite (what .ci/run calls)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Every Python requires-python admits but the one .venv runs the whole suite on (python3, 3.11 here): the unit
# tests run on each; a missing one fails `make test`.
UNIT_PYTHONS ?= 3.10 3.12 3.13
PYENV_ROOT ?= $(HOME)/.pyenv
# pyenv's own copy first (its shims refuse a version that is not selected), else pythonX.Y on PATH.
find_python = $(or $(firstword $(wildcard $(PYENV_ROOT)/versions/$(1).*/bin/python$(1))),$(shell command -v python$(1)))

.PHONY: run test test-cluster install lint bench clean services unit-pythons alerts

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

# make run DEMO_ARGS='--database my_demo --vhost my-demo --directory /tmp/my-demo': another person's demo
# on a shared server is left alone (see `pmtabounce demo --help`).
run: services
	$(BIN)/pmtabounce demo $(DEMO_ARGS)

# mypy checks the installed package (pmtabounce.common and the rest exist only once installed), from inside
# the venv so that the source tree's folders do not shadow it.
MYPY := cd $(VENV) && bin/mypy --config-file $(CURDIR)/pyproject.toml

test: services unit-pythons alerts
	$(BIN)/ruff check .
	$(MYPY)
	$(BIN)/pytest -q $(PYTEST_ARGS)

# The tests on a three-node RabbitMQ cluster they start themselves (a few minutes); `make test` runs them too.
test-cluster: services
	$(BIN)/pytest -q -m cluster -s $(PYTEST_ARGS)

.PRECIOUS: .venv-%/.deps

unit-pythons: $(addprefix unit-python-,$(UNIT_PYTHONS))

# One venv per version (.venv-3.10, ...), reinstalled like .venv so the tests run what `pip install .` gives.
.venv-%/.deps: pyproject.toml
	@py='$(call find_python,$*)'; [ -n "$$py" ] && "$$py" -c '' 2>/dev/null || \
	  { echo "make test: Python $* is not installed; the unit tests must run on it (pyenv install $*)" >&2; exit 1; }
	$(call find_python,$*) -m venv .venv-$*
	.venv-$*/bin/pip install -q --upgrade pip
	.venv-$*/bin/pip install -q '.[test]'
	touch $@

unit-python-%: .venv-%/.deps
	rm -rf build
	.venv-$*/bin/pip install -q --no-deps --force-reinstall .
	.venv-$*/bin/pytest -q tests/unit

# The alert rules and their unit tests (deploy/prometheus), when promtool is on PATH (Debian's `prometheus`
# package; .ci/run puts it there).
alerts:
	@if command -v promtool >/dev/null; then \
	  cd deploy/prometheus && promtool check rules alerts.yaml && promtool test rules alerts.test.yaml; \
	else echo "make test: promtool is not on PATH: the alert rules' unit tests are skipped"; fi

lint: install
	$(BIN)/ruff check .
	$(MYPY)

bench: services
	$(BIN)/python bench/bench.py

clean:
	rm -rf $(VENV) $(addprefix .venv-,$(UNIT_PYTHONS)) build *.egg-info demo
