# The two commands: `make dev` runs the whole stack, `make test` runs every check.
# Both install what they need first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test lint typecheck pytest install lock system-deps clean bench \
	node-deps router-deps schema-deps sdk-deps schema schema-check sdk-check

# Node packages come from the committed lockfiles only (npm ci), each folder once per lockfile
# change: router/ (the gateway, ~500 MB: dev and the router tests), router/compose/ (composition
# and graphql-inspector, small), sdk/ (codegen, TypeScript, graphql-ws/sse).
NPM_CI := npm ci --no-audit --no-fund --loglevel=error
ROUTER_STAMP := router/node_modules/.installed
SCHEMA_STAMP := router/compose/node_modules/.installed
SDK_STAMP := sdk/node_modules/.installed

# Python packages come from the committed lock only, every file checked against its hash:
# requirements-dev.lock (runtime, tools and tests; requirements.lock, the runtime alone, is what
# the images install). Then the project itself, without resolving anything, and `pip check`:
# a dependency pyproject.toml asks for and the lock lacks fails here. `make lock` updates both.
LOCK := requirements-dev.lock
UV_VERSION := 0.13.9
LOCK_FLAGS := --generate-hashes --python-version 3.11 --universal --no-header --quiet

$(STAMP): pyproject.toml $(LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	@touch $(STAMP)

install: $(STAMP)

# Re-resolves the locks from pyproject.toml (keeping every pin that still fits; `ARGS=--upgrade`
# takes the newest versions instead), with uv, installed on demand.
lock: install
	$(BIN)/python -m pip install --quiet uv==$(UV_VERSION)
	$(BIN)/uv pip compile pyproject.toml scripts/build-requirements.in $(LOCK_FLAGS) \
		-o requirements.lock $(ARGS)
	$(BIN)/uv pip compile pyproject.toml scripts/build-requirements.in --extra dev $(LOCK_FLAGS) \
		-o requirements-dev.lock $(ARGS)

system-deps:
	@bash scripts/system-deps.sh

dev: install router-deps schema-deps
	$(BIN)/adx dev $(ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy .

# Side by side in one process per core (pytest-xdist; each starts its own Temporal, Redis and
# PostgreSQL): most tests wait on servers, so the run takes well under half the time.
PYTEST_WORKERS ?= auto
pytest: install system-deps router-deps schema-deps sdk-deps
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

# The checks are independent, so they run side by side: pytest takes most of the time, and
# the others finish within its first minutes.
test:
	$(MAKE) --jobs=5 --output-sync=line lint typecheck schema-check sdk-check pytest

# Benchmarks (bench/): starts its own stack on free ports, prints a table, writes JSON under
# bench/results/. `make bench ARGS=--quick` takes about a minute and a half.
bench: install system-deps
	$(BIN)/python -m bench $(ARGS)

# Node.js >= 20 and npm (the machine's; Debian's packages when missing).
node-deps:
	@if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then \
	  echo "node-deps: installing Debian's nodejs and npm"; \
	  if [ "$$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null; \
	fi
	@node -e 'if (+process.versions.node.split(".")[0] < 20) { console.error("Node.js >= 20 is needed (the gateway), found " + process.version); process.exit(1) }'

$(ROUTER_STAMP): router/package-lock.json | node-deps
	cd router && $(NPM_CI)
	@touch $@

$(SCHEMA_STAMP): router/compose/package-lock.json | node-deps
	cd router/compose && $(NPM_CI)
	@touch $@

$(SDK_STAMP): sdk/package-lock.json | node-deps
	cd sdk && $(NPM_CI)
	@touch $@

router-deps: $(ROUTER_STAMP)
schema-deps: $(SCHEMA_STAMP)
sdk-deps: $(SDK_STAMP)

# Regenerates every schema file from the code: subgraph SDL, supergraph, public SDL (refused if
# it breaks the committed one without an allow-list entry), then the SDK's generated code and
# its trusted documents (what the router runs in production).
schema: install schema-deps sdk-deps
	$(BIN)/adx schema export
	$(BIN)/adx schema compose
	cd sdk && node_modules/.bin/graphql-codegen --config codegen.ts && node_modules/.bin/tsc -p tsconfig.json \
		&& node scripts/trusted-documents.mjs

# Composition succeeds, the committed schema files are what the code defines, no breaking change
# outside schema/breaking-changes-allowed.txt.
schema-check: install schema-deps
	$(BIN)/adx schema check

# The SDK's generated code is reproducible, it builds with tsc --strict, its unit tests pass.
sdk-check: sdk-deps
	bash sdk/scripts/check.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
	rm -rf router/node_modules router/compose/node_modules sdk/node_modules sdk/dist sdk/build
