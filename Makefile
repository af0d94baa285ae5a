# Two commands do all the set-up on a fresh machine:
#   make demo   - end-to-end run on the embedded chain (three nodes, transfer, receipts, challenges)
#   make test   - every test: ruff, mypy, forge (unit, fuzz, invariant), pytest (incl. anvil + e2e)
# Both bootstrap the toolchain on first use (Python venv from the lock file, npm packages).

PY      := .venv/bin/python
UV      := .venv/bin/uv
FORGE   := node_modules/@foundry-rs/forge-linux-amd64/bin/forge
STAMP   := .venv/.installed
NPMSTAMP:= node_modules/.installed
KERNEL  := node/content/_ctree.so

.PHONY: setup demo test lint typecheck forge pytest artifacts bench clean browser

setup: $(STAMP) $(NPMSTAMP) $(KERNEL)

# The editable install is "compat" (a plain path in a .pth): setuptools' default import-hook
# finder cost every Python process, each `bcai` command too, ~12-15 ms of start-up.
$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --disable-pip-version-check uv==0.13.8
	$(UV) pip install -q --python $(PY) --compile-bytecode -r requirements.lock
	$(UV) pip install -q --python $(PY) --no-deps -e . -C editable_mode=compat
	$(PY) -m compileall -q node chain simulations
	touch $(STAMP)

# The segment-tree kernel (node/content/_accel.py, node/_native.py, docs/decisions.md D30): built with the
# system C compiler; without one a note is printed and the pure-Python tree is used.
$(KERNEL): node/content/_ctree.c $(STAMP)
	$(PY) -m node._native

$(NPMSTAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NPMSTAMP)

# tests/app/test_dashboard.py drives Debian's headless Chromium: installed once when missing
# (apt-get as root, or through sudo); where neither works the browser tests skip with a reason
# (under CI=true they fail instead).
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo"; \
	  if command -v apt-get >/dev/null && { [ -z "$$sudo" ] || command -v sudo >/dev/null; }; then \
	    $$sudo apt-get update -qq >/dev/null && \
	    $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends chromium chromium-driver >/dev/null; \
	  else echo "note: no chromium/chromedriver and no apt-get: dashboard browser tests skip"; fi; \
	fi

demo: setup
	$(PY) -m node.cli demo

lint: setup
	$(PY) -m ruff check node chain simulations tests benchmarks
	$(PY) -m ruff format --check node chain simulations tests benchmarks

typecheck: setup
	$(PY) -m mypy

forge: setup
	FOUNDRY_SOLC=$(CURDIR)/contracts/tools/solc $(FORGE) test --root . -vv

# Under CI the kernel must have been built (tests/content/test_accel.py checks).
pytest: setup browser
	$(if $(CI),BCAI_REQUIRE_ACCEL=1) PATH=$(CURDIR)/node_modules/@foundry-rs/anvil-linux-amd64/bin:$(PATH) $(PY) -m pytest -q -n 2

test: lint typecheck forge pytest

artifacts: setup
	$(PY) -m chain.build_artifacts

bench: setup
	$(PY) benchmarks/add.py
	$(PY) benchmarks/transfer.py

clean:
	rm -rf .venv node_modules out cache contracts/out contracts/cache
