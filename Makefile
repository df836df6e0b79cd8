# kip.image_puller — developer entry points. `make demo` and `make test` are the two a new user needs.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= $(CURDIR)/.venv
export KIP_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/kip-image-puller
BIN := $(VENV)/bin
# The checkout is linked in here (make venv); naming it first means no installed copy can shadow it.
SITE_PACKAGES = $(shell $(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
CLUSTER := tests/cluster/cluster.sh
E2E ?= tests/e2e
# Everything below talks only to the local cluster: its kubeconfig, nothing from the environment.
LOCAL_KUBECONFIG = $(shell $(CLUSTER) kubeconfig)
CLUSTER_BIN = $(shell tests/cluster/build.sh paths 2>/dev/null | sed -n 's/^K8S_BIN=//p')
LOCAL_ENV = env -u KUBECONFIG -u K8S_AUTH_HOST -u K8S_AUTH_API_KEY -u K8S_AUTH_CONTEXT \
	-u K8S_AUTH_SSL_CA_CERT -u K8S_AUTH_VERIFY_SSL -u K8S_AUTH_USERNAME -u K8S_AUTH_PASSWORD \
	K8S_AUTH_KUBECONFIG=$(LOCAL_KUBECONFIG) KUBECONFIG=$(LOCAL_KUBECONFIG) PATH=$(BIN):$(CLUSTER_BIN):$(PATH) \
	ANSIBLE_COLLECTIONS_PATH=$(SITE_PACKAGES)

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

## ---- set-up -------------------------------------------------------------
$(VENV)/.installed: requirements-dev.txt
	@# flock: two make runs at once must not install into one venv together.
	flock $(VENV).lock bash -c '[ $@ -nt requirements-dev.txt ] || { \
	  $(PYTHON) -m venv $(VENV) && $(BIN)/pip install -q -r requirements-dev.txt && touch $@; }'


.PHONY: venv
venv: $(VENV)/.installed ## Python venv with the pinned tools; the collection is linked into it
	@site=$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	  mkdir -p $$site/ansible_collections/kip; \
	  ln -sfn $(CURDIR) $$site/ansible_collections/kip/image_puller; \
	  for d in $(HOME)/.ansible/collections /usr/share/ansible/collections; do \
	    [ ! -e $$d/ansible_collections/kip/image_puller ] || echo "warning: $$d/ansible_collections/kip/image_puller" \
	      "is found before this checkout by ansible-playbook; remove it to run the code here" >&2; done

## ---- local cluster --------------------------------------------------------
.PHONY: cluster cluster-down cluster-status cluster-build clusters clusters-down
cluster-build: ## build (or reuse) the cluster binaries
	tests/cluster/build.sh all >/dev/null
cluster: ## start the local cluster (kwok nodes + real-node-0; CLUSTER_NODES=N, CLUSTER_FLAVOUR=openshift, CLUSTER_REAL_NODES=0)
	$(CLUSTER) up
cluster-down: ## stop the local cluster and remove its state
	$(CLUSTER) down
cluster-status: ## show the local cluster
	$(CLUSTER) status
clusters: ## start several small clusters side by side (CLUSTERS="kip-a:6450 kip-b:6451 kip-c:6452"); prints NAME KUBECONFIG
	tests/cluster/clusters.sh up
clusters-down: ## stop the clusters of `make clusters` (same CLUSTERS)
	tests/cluster/clusters.sh down

## ---- tests -------------------------------------------------------------------
.PHONY: test unit e2e e2e-gc sanity units lint argspec-check molecule molecule-quota bench kube-score ee galaxy-import
# The cluster's Go builds (cold: about 20 minutes, much of it downloading modules) run beside the
# static gates; once cached, build.sh only checks that the binaries are there.
# Each phase prints how long it took, so that a CI log shows where the time budget goes.
test: venv ## everything CI runs: static gates (beside the cluster build), then both cluster flavours
	@start=$$(date +%s); build_log=$$(mktemp); \
	{ rc=0; tests/cluster/build.sh all || rc=$$?; echo "[build] took $$(( $$(date +%s) - start )) s"; exit $$rc; } >"$$build_log" 2>&1 & build=$$!; \
	rc=0; $(MAKE) --no-print-directory argspec-check unit lint sanity units kube-score ee galaxy-import || rc=$$?; \
	echo "[test] static gates: $$(( $$(date +%s) - start )) s"; \
	build_rc=0; wait $$build || build_rc=$$?; echo "--- the cluster build (beside the static gates):"; \
	cat "$$build_log"; rm -f "$$build_log"; [ $$rc -eq 0 ] && [ $$build_rc -eq 0 ]
	@start=$$(date +%s); $(MAKE) --no-print-directory cluster e2e molecule CLUSTER_FLAVOUR=kubernetes REAL_NODE_IMAGE_MAX_AGE=30s; \
	echo "[test] Kubernetes flavour (cluster, e2e, molecule): $$(( $$(date +%s) - start )) s"
	@start=$$(date +%s); $(MAKE) --no-print-directory cluster e2e molecule-quota CLUSTER_FLAVOUR=openshift \
	  E2E="tests/e2e/test_cluster.py tests/e2e/test_quota_module.py"; \
	echo "[test] OpenShift flavour (cluster, e2e, molecule quota): $$(( $$(date +%s) - start )) s"

unit: venv ## pytest unit tests of the pure logic
	@rc=0; $(BIN)/pytest -q -m 'not cluster' tests/unit || rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo 'error: no tests collected' >&2; exit 1; fi; exit $$rc

e2e: venv ## pytest against the local cluster (with the image GC test beside it when the kubelet has a max image age)
	$(LOCAL_ENV) PYTEST=$(BIN)/pytest tests/tools/e2e.sh $(E2E)

e2e-gc: venv ## the real node's image GC test alone (5-13 minutes: the kubelet collects every 5)
	REAL_NODE_IMAGE_MAX_AGE=30s $(CLUSTER) up >/dev/null
	@rc=0; $(LOCAL_ENV) $(BIN)/pytest -q -s -m gc tests/e2e/test_real_node.py || rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo 'error: no tests collected' >&2; exit 1; fi; exit $$rc

sanity: venv ## ansible-test sanity (offline, empty ignore files)
	PATH=$(BIN):$(PATH) tests/tools/ansible-test.sh sanity

units: venv ## ansible-test units
	PATH=$(BIN):$(PATH) tests/tools/ansible-test.sh units

lint: venv ## ansible-lint, production profile
	PATH=$(BIN):$(PATH) $(BIN)/ansible-lint

argspec-check: venv ## defaults/main.yml and meta/argument_specs.yml hold the same keys and defaults
	$(BIN)/python tests/tools/check_argument_specs.py roles/image_puller

kube-score: venv ## kube-score on the manifests the role renders (kube-score built once with go install)
	PATH=$(BIN):$(PATH) ANSIBLE_COLLECTIONS_PATH=$(SITE_PACKAGES) tests/tools/kube-score.sh score

ee: venv ## ansible-builder: the collection's needs (introspect) and a build context for docs/ee/execution-environment.yml
	PATH=$(BIN):$(PATH) tests/tools/awx-tools.sh ee

galaxy-import: venv ## galaxy-importer on the built tarball, offline
	PATH=$(BIN):$(PATH) tests/tools/awx-tools.sh galaxy-import

molecule: venv cluster ## molecule scenario `default` against the local cluster
	$(LOCAL_ENV) $(BIN)/molecule test -s default

molecule-quota: venv ## molecule scenario `quota` (needs CLUSTER_FLAVOUR=openshift for its ClusterResourceQuota case)
	CLUSTER_FLAVOUR=openshift $(CLUSTER) up >/dev/null
	$(LOCAL_ENV) $(BIN)/molecule test -s quota

bench: venv ## benchmarks: cluster start (replaces the running cluster), quota pre-flight, role vs kubectl, real-node caching; prints figures
	benchmarks/cluster_start.sh 3 1000
	CLUSTER_NODES=5000 $(CLUSTER) up >/dev/null
	$(LOCAL_ENV) $(BIN)/python benchmarks/quota_preflight.py
	$(LOCAL_ENV) $(BIN)/python benchmarks/converge.py $(CONVERGE_ARGS)
	$(CLUSTER) up >/dev/null
	$(LOCAL_ENV) $(BIN)/python benchmarks/real_node_pull.py

## ---- demo ---------------------------------------------------------------------
.PHONY: demo
demo: venv cluster ## deploy a sample image set to the local cluster and show it per node
	$(LOCAL_ENV) $(BIN)/ansible-playbook kip.image_puller.deploy -e @playbooks/vars/demo.yml
	$(LOCAL_ENV) $(BIN)/ansible-playbook kip.image_puller.status -e @playbooks/vars/demo.yml
	@if [ "$${CLUSTER_REAL_NODES:-1}" != 0 ]; then echo "Images in real-node-0's own store (crictl images):"; \
	  $(CLUSTER) real-node-images; fi
