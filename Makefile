# QueueWorker developer commands. `make run` and `make test` work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv run render test lint typecheck unit test-fast test-redis test-apiserver pytest k8s-bin bench clean help

help:  ## list targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

venv: $(STAMP)  ## create .venv with everything development and tests need

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# setuptools cautions on every editable install that a same-named folder in the working directory
	@# would shadow the package; the packages live under workers/ and operator/, so none can.
	PYTHONWARNINGS='ignore:Editable installation' $(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

RUN_ARGS ?= --demo --burst 200:tasks.taskA --burst 120:tasks.taskB --burst '10:tasks.add:[2,3]' \
	--scale-down-delay 15 --duration 600
run: venv  ## the main job: run the example QueueWorkers on this machine with a demo burst (ends by itself)
	$(BIN)/qw up -f examples/ $(RUN_ARGS)

render: venv  ## print the Kubernetes objects the examples become
	$(BIN)/qw render -f examples/ -R

lint: venv  ## ruff (the lint rules and the formatting: `ruff format .` fixes it) and the import layers
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache --no-logo

typecheck: venv  ## mypy
	$(BIN)/mypy

# The tiers, named by what they need (tests/README.md). PYTEST_ARGS adds pytest options to any of them.
test-fast: venv  ## the fast tier (tests/fast): pure functions, the chart (Helm engine), the rules (promtool); no Redis, no API server
	$(BIN)/python -m pytest -m fast tests/fast $(PYTEST_ARGS)

unit: test-fast  ## the fast tier (its old name)

test-redis: venv  ## the redis tier (tests/redis): real redis-server and Sentinel, celery workers, beats, Prometheus
	$(BIN)/python -m pytest -m redis tests/redis $(PYTEST_ARGS)

test-apiserver: venv k8s-bin  ## the apiserver tier (tests/apiserver): the real kube-apiserver on etcd, the operator against it (and Redis)
	$(BIN)/python -m pytest -m apiserver tests/apiserver $(PYTEST_ARGS)

pytest: venv  ## every tier but e2e (fast, redis, apiserver), without ruff, mypy or the Kubernetes build
	@rc=0; $(BIN)/python -m pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests (test files: $$(find tests -name 'test_*.py' | wc -l))"; fi; \
	exit $$rc

k8s-bin:  ## build etcd, kube-apiserver, kubectl and the node binaries from Go modules (cached in ~/.cache/queueworker)
	hack/k8s/build.sh

test: venv lint typecheck k8s-bin pytest  ## ruff, mypy and every tier but e2e (fast, redis, apiserver; e2e: make e2e)

bench: venv  ## benchmarks: ratios against baselines measured in the same run
	$(BIN)/python -m bench

bench-cluster: venv  ## autoscaling on the local cluster against a real KEDA (default and tuned) and mode hpa, with the simulation's replay (root; make cluster-up deploy first; about 30 min)
	$(BIN)/python -m bench.cluster $(BENCH_ARGS)

bench-scale: venv  ## the operator with 1,000 QueueWorkers on the local cluster (root; make cluster-up deploy first): one RESULT line
	$(BIN)/python -m bench.scale $(BENCH_ARGS)

clean:  ## remove the venv and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .qw bench/out

# --- Kubernetes: the local cluster (built here, no registry), kind, images, chart ----------------------
KIND_CLUSTER ?= queueworker
KIND_CONTEXT := kind-$(KIND_CLUSTER)
IMAGE_TAG ?= dev
NAMESPACE ?= queueworker-system
LOCAL_CONTEXT := queueworker-local
CLUSTER_KUBECONFIG = $(or $(QW_CACHE),$(HOME)/.cache/queueworker)/cluster/kubeconfig

.PHONY: cluster-up cluster-down cluster-env tools kind-up kind-down images push deploy dev e2e smoke crds bench-cluster bench-scale

ADDONS ?= 1
cluster-up: venv  ## a real single-node cluster on this machine with KEDA, Prometheus Operator, adapter, metrics-server (root; ADDONS=0: without them)
	$(BIN)/python -m hack.cluster up --tag $(IMAGE_TAG) $(if $(filter 0,$(ADDONS)),--no-addons)

cluster-env: venv  ## print the exports that put the local cluster's kubeconfig, kubectl and helm in your shell: eval "$$(make -s cluster-env)"
	@$(BIN)/python -m hack.cluster env

tools:  ## build kubectl and the helm CLI from Go modules (cached in ~/.cache/queueworker; see make cluster-env)
	@hack/k8s/build.sh kubectl >/dev/null
	@hack/addons/build.sh helm >/dev/null

cluster-down: venv  ## stop the local cluster and remove its state (binaries and images stay cached)
	$(BIN)/python -m hack.cluster down

kind-up:  ## create the kind cluster (tests/e2e/kind-config.yaml) unless it exists
	@kind get clusters 2>/dev/null | grep -qx '$(KIND_CLUSTER)' || \
	  kind create cluster --name $(KIND_CLUSTER) --config tests/e2e/kind-config.yaml --wait 180s

kind-down:  ## delete the kind cluster
	kind delete cluster --name $(KIND_CLUSTER)

images: venv  ## build the images (a local base, no registry needed) and load them into the local cluster or kind
	$(BIN)/python -m hack.cluster images --tag $(IMAGE_TAG)
	@if command -v kind >/dev/null && kind get clusters 2>/dev/null | grep -qx '$(KIND_CLUSTER)'; then \
	  kind load docker-image --name $(KIND_CLUSTER) queueworker/operator:$(IMAGE_TAG) queueworker/worker:$(IMAGE_TAG); fi

push:  ## build the images on the upstream base and push them: make push REGISTRY=registry.example/team IMAGE_TAG=1.0
	@test -n "$(REGISTRY)" || { echo "set REGISTRY=host/path, then: helm install ... --set imageRegistry=<that path>"; exit 2; }
	for image in operator worker; do \
	  docker build -f images/Dockerfile --target $$image -t $(REGISTRY)/queueworker/$$image:$(IMAGE_TAG) . && \
	  docker push $(REGISTRY)/queueworker/$$image:$(IMAGE_TAG) || exit 1; done

deploy: venv images tools  ## install or upgrade the chart with those images on the local cluster, else kind (helm CLI; monitoring and KEDA on where the cluster has them)
	$(BIN)/python -m hack.deploy --namespace $(NAMESPACE) --tag $(IMAGE_TAG) \
	  --helm "$$(hack/addons/build.sh helm | tail -n 1)/helm"

dev:  ## skaffold's dev loop on the kind cluster: rebuild, reload and redeploy on every change
	skaffold dev --profile kind --kube-context $(KIND_CONTEXT)

e2e: venv  ## the e2e suite on the local cluster (make cluster-up) or kind; skips, saying why, with neither
	@if [ -f "$(CLUSTER_KUBECONFIG)" ]; then \
	  KUBECONFIG=$(CLUSTER_KUBECONFIG) QW_E2E_CONTEXT=$(LOCAL_CONTEXT) QW_E2E_IMAGE_TAG=$(IMAGE_TAG) \
	    $(BIN)/python -m pytest -m e2e tests/e2e $(PYTEST_ARGS); \
	else \
	  if command -v kind >/dev/null && command -v docker >/dev/null && docker info >/dev/null 2>&1; then \
	    $(MAKE) kind-up images IMAGE_TAG=e2e; \
	  else echo "no local cluster (make cluster-up), no kind or no Docker engine: the e2e suite will skip and say why"; fi; \
	  QW_E2E_CONTEXT=$(KIND_CONTEXT) QW_E2E_IMAGE_TAG=e2e $(BIN)/python -m pytest -m e2e tests/e2e $(PYTEST_ARGS); \
	fi

crds: venv  ## generate the CRD (operator/crds and the chart's crds/) and docs/reference.md from the field table (workers/queueworker/api/fields.py)
	$(BIN)/python -m hack.crdgen --write
