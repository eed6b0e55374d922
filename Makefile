# Every target installs what it uses first, so a fresh clone needs nothing else.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV ?= uv
CACHE ?= $(or $(DTPOC_CACHE_DIR),$(HOME)/.cache/dtpoc)

.PHONY: help bootstrap hostpkgs sync generate check-generated schema check-schema check-length lint format typecheck buf-lint helm-lint check test test-fast run bench testbin images cluster cluster-down test-cluster

help:
	@echo "make run        start the platform on this machine and run the sample analysis"
	@echo "make test       install what is missing, build the test servers, run the tests (in TEST_WORKERS=3 processes; 0: this one)"
	@echo "make test-fast  the unit tier only (tests/unit: use cases and rules on in-memory fakes, no servers)"
	@echo "make cluster    a real one-node Kubernetes here with the chart; gateway on 127.0.0.1:8000"
	@echo "make cluster-down   remove that node and its data"
	@echo "make test-cluster   the cluster tier: tests/cluster against a real node (root)"
	@echo "make check      ruff, mypy, buf lint/format, helm lint, generated code up to date, no function over 60 lines"
	@echo "make console   build the web console (console/ -> console/dist, served by the gateway at /)"
	@echo "make images     build the container images here (Docker, else buildah; cached by content)"
	@echo "make generate   regenerate the Python API package from protos/"
	@echo "make schema     regenerate infra/values.schema.json from the annotated infra/values.yaml"

bootstrap:
	@command -v $(UV) >/dev/null || python3 -m pip install --quiet 'uv>=0.5'

sync: bootstrap
	@$(UV) sync --frozen --quiet

testbin:
	@tools/testbin/build

# Debian's container tools (runc, podman, buildah, containerd...), when missing and root.
hostpkgs:
	@tools/hostpkgs/install

# The web console (console/: Vite, TypeScript, Preact) from package-lock.json into console/dist,
# which the gateway serves at /. Without npm it says so and the browser tests skip.
.PHONY: console
console:
	@if ! command -v npm >/dev/null; then \
	  echo "console: npm not found: install Node.js >= 20.19 to build the web console (browser tests skip)" >&2; \
	elif cd console && { [ node_modules/.package-lock.json -nt package-lock.json ] || nice -n 10 npm ci --no-audit --no-fund --loglevel=error; } \
	  && nice -n 10 npm run --silent build -- --logLevel warn; then :; else \
	  echo "console: build failed" >&2; exit 1; fi

generate: sync
	@$(UV) run python tools/generate.py

check-generated: generate
	@git diff --exit-code --stat -- libs/api/src || (echo "generated code differs from protos/: run make generate and commit" >&2; exit 1)
	@test -z "$$(git status --porcelain -- libs/api/src)" || (echo "untracked generated files: run make generate and commit" >&2; git status --porcelain -- libs/api/src; exit 1)

# infra/values.schema.json is written from infra/values.yaml's defaults and # @schema lines.
schema: sync
	@$(UV) run python tools/values_schema.py

check-schema: sync
	@$(UV) run python tools/values_schema.py --check

# No hand-written function over 60 lines (services/, gateway/, libs/ but libs/api, clients/, tools/).
check-length: sync
	@$(UV) run python tools/longest_functions.py --limit 60 --fail

lint: sync
	@$(UV) run ruff check .
	@$(UV) run ruff format --check .

format: sync
	@$(UV) run ruff format .
	@$(UV) run ruff check --fix .

typecheck: sync
	@$(UV) run mypy libs/common/src services/files/src services/orchestrator/src services/operator/src gateway/src examples/histolab/src tools/generate.py tools/values_schema.py tools/longest_functions.py tools/cluster tools/images libs/local/src clients/python/src tests/unit

buf-lint: generate
	@tools/testbin/build buf >&2
	@BUF=$$(ls -d $(CACHE)/bin/buf-*/buf | sort -V | tail -1); \
	  $$BUF lint && $$BUF format --diff --exit-code protos

helm-lint:
	@if [ -f infra/Chart.yaml ]; then \
	  tools/testbin/build helm >&2; \
	  HELM=$$(ls -d $(CACHE)/bin/helm-*/helm | sort -V | tail -1); \
	  $$HELM lint --strict infra; \
	fi

check: lint typecheck buf-lint helm-lint check-generated check-schema check-length

# tests/unit alone; --confcutdir keeps tests/conftest.py (the server fixtures) out of it, and the
# hypothesis/schemathesis plugins (seconds of imports, unused there) stay unloaded.
test-fast: sync
	@GRPC_ENABLE_FORK_SUPPORT=false $(UV) run pytest tests/unit --confcutdir=tests/unit -p no:schemathesis -p no:hypothesispytest -p no:anyio $(PYTEST_ARGS)

# TEST_WORKERS=N: the suite in N pytest-xdist processes, a file per worker at a time, the slow
# tiers first (tests/realdeps/parallel.py). 3 by default: on two cores the suite waits (schedule
# ticks, containers, server starts) more than it computes; on a quiet machine three workers took
# 13 min 38 s, two 15 min 28 s, one 36 min 30 s (docs/testing.md); TEST_WORKERS=0: this one process.
# --durations=30: every log ends with the 30 slowest setups, calls and teardowns (docs/testing.md).
TEST_WORKERS ?= 3
test: sync testbin hostpkgs console
	@GRPC_ENABLE_FORK_SUPPORT=false $(UV) run pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=30 $(PYTEST_ARGS)

# IMAGES="dtpoc histolab" builds only those (and their bases); default: all of them.
images: sync hostpkgs
	@$(UV) run python -m tools.images $(IMAGES)

run: sync hostpkgs
	@$(UV) run dtpoc up $(RUN_ARGS)

bench: sync testbin
	@for b in bench/[a-z]*.py; do m=$$(basename $$b .py); echo "== bench.$$m"; $(UV) run python -m bench.$$m || exit 1; done

# The node's binaries (kubelet, kube-scheduler, kube-proxy, CoreDNS, pause) come on top of testbin's.
cluster: sync testbin hostpkgs
	@tools/testbin/build node
	@$(UV) run python -m tools.cluster up $(CLUSTER_ARGS)

cluster-down: sync
	@$(UV) run python -m tools.cluster down

test-cluster: sync testbin hostpkgs
	@tools/testbin/build node
	@DTPOC_TEST_CLUSTER=1 GRPC_ENABLE_FORK_SUPPORT=false $(UV) run pytest tests/cluster $(PYTEST_ARGS)
