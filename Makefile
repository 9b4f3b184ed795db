# Chorus — the two commands are `make demo` and `make test`; both start with `make setup`.
# Every step is idempotent: stamps under .stamps/ record what was installed and from which inputs,
# so a second run reuses what exists and starts in seconds.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CHORUS := $(VENV)/bin/chorus
FORGE := node_modules/.bin/forge
STAMPS := .stamps

.PHONY: setup demo test test-fast test-py test-sol lint slither contracts models clean distclean help

help:
	@echo "make setup   create .venv, install Python + npm dependencies, build contracts, prepare models"
	@echo "make demo    set-up, then run the devnet demo / quick experiment and print the summary"
	@echo "make test    set-up, then the whole test suite (layer check, pytest, forge test and slither)"
	@echo "make test-fast  set-up, then everything but the end-to-end and training (slow) tests, on 2 workers (under 2 minutes)"
	@echo "make slither Slither on contracts/src, compiled by forge (offline); fails on any finding not triaged"
	@echo "make clean   remove build outputs (contracts/out, model artifacts, reports, .chorus)"

setup: $(STAMPS)/python $(STAMPS)/npm contracts models

$(STAMPS)/python: pyproject.toml
	@mkdir -p $(STAMPS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# torch is pinned ==2.13.0 in the train extra: the CPU build on this machine's disk.
	$(PY) -m pip install --disable-pip-version-check -q -e '.[train,test]'
	@touch $@

$(STAMPS)/npm: package.json package-lock.json
	@mkdir -p $(STAMPS)
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

contracts: $(STAMPS)/npm
	@cd contracts && ../$(FORGE) build --quiet

models: $(STAMPS)/python
	@$(PY) -m scripts.prepare_models

demo: setup
	$(PY) -m scripts.demo

test: setup lint test-py test-sol slither

# The fast loop: the layer check, forge test and pytest without the end-to-end tests (which start
# real node processes against a real Anvil and take most of the suite's time) and without the few
# that train a model set first (`slow`), on two workers. `make test` runs them all.
test-fast: setup lint test-sol
	$(PY) -m pytest -q -m "not e2e and not slow" -n 2

test-py:
	$(PY) -m pytest -q

# The import-linter contracts in pyproject.toml: the layers point one way, the protocol is a leaf,
# serving code never imports torch.
lint:
	$(VENV)/bin/lint-imports

test-sol:
	cd contracts && ../$(FORGE) test

# Slither on contracts/src (test/, script/ and lib/ filtered out by contracts/slither.config.json),
# compiled by the project's forge under the `slither` profile (its own out and cache folders):
# crytic-compile reads forge's build-info, so no solc is fetched. About 10 s. Any finding that is
# not triaged in the source (`slither-disable-...` comments, see docs/protocol.md) fails it.
slither: $(STAMPS)/python $(STAMPS)/npm
	cd contracts && PATH="$(CURDIR)/node_modules/.bin:$$PATH" FOUNDRY_PROFILE=slither ../$(VENV)/bin/slither . --config-file slither.config.json

clean:
	rm -rf contracts/out contracts/cache models/artifacts reports .chorus

distclean: clean
	rm -rf $(VENV) node_modules $(STAMPS)
