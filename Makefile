# Two commands on a fresh machine:  make serve  |  make test
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
TSTAMP := $(VENV)/.installed-test

.PHONY: serve test lint typecheck unit clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e .
	touch $@

$(TSTAMP): $(STAMP) pyproject.toml
	$(PIP) install -q -e '.[test]'
	touch $@

serve: $(STAMP)
	sh scripts/vendor-sdk.sh || echo "make: the demo runs without the centrifuge SDK"
	$(VENV)/bin/tidings serve --demo $(ARGS)

lint: $(TSTAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

typecheck: $(TSTAMP)
	$(VENV)/bin/mypy

unit: $(TSTAMP)
	$(VENV)/bin/pytest -q tests --ignore=tests/integration

test: $(TSTAMP) lint typecheck
	sh scripts/setup-test-deps.sh
	$(VENV)/bin/pytest -q -p no:cacheprovider tests

clean:
	rm -rf $(VENV) build src/*.egg-info
