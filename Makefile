# Two commands do all the set-up on a fresh machine:
#   make demo   - end-to-end run on the embedded chain (three nodes, transfer, receipts, challenges)
#   make test   - every test: ruff, mypy, forge (unit, fuzz, invariant), pytest (incl. anvil + e2e)
# Both bootstrap the toolchain on first use (Python venv from the lock file, npm packages).

PY      := .venv/bin/python
UV      := .venv/bin/uv
FORGE   := node_modules/@foundry-rs/forge-linux-amd64/bin/forge
STAMP   := .venv/.installed
NPMSTAMP:= node_modules/.installed

.PHONY: setup demo test lint typecheck forge pytest artifacts bench clean

setup: $(STAMP) $(NPMSTAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --disable-pip-version-check uv==0.13.8
	$(UV) pip install -q --python $(PY) --compile-bytecode -r requirements.lock
	$(UV) pip install -q --python $(PY) --no-deps -e .
	$(PY) -m compileall -q node chain simulations
	touch $(STAMP)

$(NPMSTAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NPMSTAMP)

demo: setup
	$(PY) -m node.cli demo

lint: setup
	$(PY) -m ruff check node chain simulations tests benchmarks
	$(PY) -m ruff format --check node chain simulations tests benchmarks

typecheck: setup
	$(PY) -m mypy

forge: setup
	FOUNDRY_SOLC=$(CURDIR)/contracts/tools/solc $(FORGE) test --root . -vv

pytest: setup
	PATH=$(CURDIR)/node_modules/@foundry-rs/anvil-linux-amd64/bin:$(PATH) $(PY) -m pytest -q -n 2

test: lint typecheck forge pytest

artifacts: setup
	$(PY) -m chain.build_artifacts

bench: setup
	$(PY) benchmarks/add.py
	$(PY) benchmarks/transfer.py

clean:
	rm -rf .venv node_modules out cache contracts/out contracts/cache
