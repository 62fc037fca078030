# The README's two commands: `make demo` and `make test`. Everything else here is what they need.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
SITE := $(VENV)/lib/python3.11/site-packages
GEN := gen/python
IMAGE := build/image.binpb
PROTOS := $(shell find proto -name '*.proto' 2>/dev/null)

.PHONY: demo test venv gen node-client lint typecheck proto-check unit integration e2e bench bench-ab resilience clean lock

demo: gen
	$(PY) -m fraudctl demo

test: gen lint typecheck proto-check node-client
	$(PY) -m pytest -q tests/unit tests/integration tests/e2e; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

# The Node.js client (clients/node) that tests/e2e/test_node_client.py runs: npm ci from its lock file.
node-client: clients/node/node_modules/.package-lock.json

clients/node/node_modules/.package-lock.json: clients/node/package-lock.json
	cd clients/node && npm ci --no-audit --no-fund --loglevel=error

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	printf '%s\n%s\n' "$(CURDIR)" "$(CURDIR)/$(GEN)" > $(SITE)/fraud-platform.pth
	touch $@

gen: $(GEN)/.stamp

$(GEN)/.stamp: $(VENV)/.installed $(PROTOS) tools/protogen.py
	rm -rf $(GEN)
	$(PY) tools/protogen.py --proto-dir proto --out $(GEN) --image $(IMAGE)
	touch $@

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: gen
	$(VENV)/bin/mypy fraudshared

# buf lint on our own files; buf breaking against the previous commit's protos (or HEAD when proto/ has
# uncommitted changes), built into an image the same way.
proto-check: gen
	$(VENV)/bin/buf lint $(IMAGE) --path fraud
	$(PY) tools/buf_breaking.py --image $(IMAGE)

bench: gen
	$(PY) -m bench

# kill -9 of each component under load, checked against the log; writes docs/resilience.md (resilience/).
resilience: gen
	$(PY) -m resilience $(RESILIENCE_ARGS)

# This checkout against another revision, both platforms up at once, requests alternating (bench/paired.py).
BASE ?= HEAD~1
bench-ab: gen
	$(PY) -m bench.paired --base $(BASE)

lock:
	rm -rf build/lockenv && $(PYTHON) -m venv build/lockenv && build/lockenv/bin/pip install -q -r requirements.in
	build/lockenv/bin/pip freeze --exclude-editable > requirements.lock

clean:
	rm -rf $(GEN) build var
	-git worktree prune
