# Every target runs in .venv, created (and refreshed when pyproject.toml changes) by one rule.
VENV := .venv
BIN := $(VENV)/bin
PYTHON ?= python3

.PHONY: venv run test lint migrate schema

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -e '.[dev]'
	touch $@

run: venv
	$(BIN)/python -m invite serve

test: venv
	$(BIN)/pytest $(ARGS)

lint: venv
	$(BIN)/ruff check invite tests
	$(BIN)/ruff format --check invite tests
	$(BIN)/mypy
	$(BIN)/lint-imports  # the layering: [tool.importlinter] in pyproject.toml

migrate: venv
	$(BIN)/python -m invite migrate

# sql/schema.sql from a scratch database migrated on DATABASE_URL's server (default the local
# one): needs a PostgreSQL server and a pg_dump of its version, not the embedded one of `make run`
schema: venv
	DATABASE_URL=$${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/postgres} $(BIN)/python -m invite schema
