# The two commands of the README: `make run` and `make test`. Each builds the virtual
# environment first when it is missing or older than the dependency files.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run demo test lint unit fuzz contracts bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/corridor serve

demo: $(STAMP)
	$(BIN)/corridor demo

lint: $(STAMP)
	$(BIN)/ruff check settlement fx api node_config tests bench
	$(BIN)/ruff format --check settlement fx api node_config tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# Rebuilds the contracts with the pinned solc-js and fails if the committed artifacts differ.
contracts:
	@if command -v npm >/dev/null 2>&1; then \
		cd contracts && npm ci --no-audit --no-fund --loglevel=error && node build.js --check; \
	else echo "contracts: npm not found, artifact rebuild check skipped"; fi

unit: $(STAMP)
	$(BIN)/pytest -q

# Schemathesis against the live OpenAPI document, with a key of each role.
fuzz: $(STAMP)
	$(BIN)/python .ci/fuzz.py

test: lint contracts unit fuzz

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .corridor
