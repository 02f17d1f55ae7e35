# kubetask — `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CLUSTER ?= kubetask
PYTEST_ARGS ?=

.PHONY: help
help: ## List every target with a one-line description
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

.PHONY: install
install: $(VENV)/.installed ## Create .venv and install kubetask with its dev dependencies

.PHONY: controlplane
controlplane: ## Build (or reuse) etcd, kube-* and kwok binaries in ~/.cache/kubetask
	bash hack/build-controlplane.sh

.PHONY: images
images: ## Build the kubetask and handler images (Docker, else buildah); REGISTRY=host/path PUSH=1 pushes them (docs/helm.md)
	REGISTRY="$(REGISTRY)" PUSH="$(PUSH)" bash hack/images.sh

.PHONY: realnode
realnode: ## Build (or reuse) the kubelet and the handler images for the local real node (root; docs/real-node.md)
	bash hack/build-realnode.sh

.PHONY: up-real-node
up-real-node: install ## Start the local control plane plus real-node-0, a real kubelet on containerd (root)
	@$(PY) hack/localcluster.py up --name $(CLUSTER) --real-node

.PHONY: test-real-node
test-real-node: install ## Run the handler images in real containers: real-node-0 on cluster $(CLUSTER)-realnode, then its tests
	@kubeconfig="$$($(PY) hack/localcluster.py up --name $(CLUSTER)-realnode --real-node)" && \
	  KUBETASK_TEST_KUBECONFIG="$$kubeconfig" $(PY) -m pytest tests/integration/test_real_node.py $(PYTEST_ARGS)

.PHONY: run
run: install ## Run kubetask: local control plane (unless KUBECONFIG is set), CRDs, operator and gateway
	bash hack/run-local.sh

.PHONY: up
up: install ## Start the local control plane with the CRDs installed; prints the kubeconfig path
	@$(PY) hack/localcluster.py up --name $(CLUSTER)

.PHONY: down
down: install ## Stop and delete the local control plane
	@$(PY) hack/localcluster.py down --name $(CLUSTER)

.PHONY: kubeconfig
kubeconfig: install ## Print the local control plane's kubeconfig path
	@$(PY) hack/localcluster.py kubeconfig --name $(CLUSTER)

.PHONY: test
test: install ## Run the whole test suite: mypy --strict, chart lint, unit, then integration on a fresh local control plane with its real node
	bash hack/build-controlplane.sh >/dev/null
	@# The real node's kubelet, Debian packages and images (docs/real-node.md): about 4 minutes the first time, cached after.
	bash hack/build-realnode.sh >/dev/null
	$(PY) -m kubetask.resources.crdgen --check crds
	@# The static checks first, so CI (.ci/run) keeps them true: about 2 s with warm caches (a first chart lint builds helm and kubeconform).
	$(MAKE) --no-print-directory lint chart-lint
	@# KUBETASK_TEST_REAL_NODE=1: tests/integration/test_real_node.py starts real-node-0 on the session's cluster and fails, not skips, if it cannot.
	KUBETASK_TEST_REAL_NODE=1 $(PY) -m pytest $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: install ## Run the tests that need no cluster
	$(PY) -m pytest -m "not integration" $(PYTEST_ARGS)

.PHONY: test-integration
test-integration: install ## Run only the tests against the local control plane
	$(PY) -m pytest -m integration $(PYTEST_ARGS)

.PHONY: soak
soak: install ## Fault tests with a large burst (SOAK_TASKS Tasks, default 2000): kills, restarts, two operators
	KUBETASK_SOAK_TASKS=$${SOAK_TASKS:-2000} $(PY) -m pytest tests/integration/test_faults.py -v $(PYTEST_ARGS)

.PHONY: generate
generate: install ## Regenerate the CRDs in crds/ from the resource models
	$(PY) -m kubetask.resources.crdgen --out crds

.PHONY: verify
verify: install ## Fail when generated files drifted from their sources
	$(PY) -m kubetask.resources.crdgen --check crds

.PHONY: lint
lint: install ## Type-check with mypy (strict)
	$(PY) -m mypy operator/kubetask api/kubetask handlers-images/sdk/kubetask_sdk

.PHONY: wheel
wheel: install ## Build the wheel into dist/
	$(PY) -m pip wheel --no-deps -w dist .

.PHONY: bench
bench: install ## Run the benchmarks against the local control plane; prints a table, writes JSON
	$(PY) tests/bench/__main__.py $(BENCH_ARGS)

.PHONY: chart-lint
chart-lint: install ## Lint the Helm chart: helm lint --strict, helm template, kubeconform -strict (offline schemas)
	bash hack/chart-tools.sh lint

.PHONY: kind-e2e
kind-e2e: install ## Build the images, create a kind cluster, install the chart, run the e2e tests (needs Docker)
	bash hack/kind-e2e.sh
