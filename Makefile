# agentwire: `make run` starts everything, `make test` tests everything.
# Both do every set-up step first (virtualenv, pinned dependencies, the Kafka broker).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SERVICES := ingest edge runner processor gateway webui cli
STAMP := $(VENV)/.installed
PROJECTS := libs/pyproject.toml $(foreach s,$(SERVICES),services/$(s)/pyproject.toml)

.PHONY: setup run test unit lint bench chaos fuzz soak kafka helm engine images k8s-tools k8s k8s-test centrifugo system-deps clean

setup: $(STAMP) kafka helm

$(STAMP): requirements/runtime.txt requirements/dev.txt requirements/chart.txt constraints.txt $(PROJECTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==26.3
	$(BIN)/python -m pip install --quiet -c constraints.txt -r requirements/dev.txt -r requirements/chart.txt \
		-e libs $(foreach s,$(SERVICES),-e services/$(s))
	touch $@

kafka:
	$(PYTHON) deploy/kafka/broker.py fetch

helm:
	bash deploy/k8s/build.sh helm

# A real Kubernetes control plane on loopback (docs/kubernetes.md): etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler and kwok fake nodes, built once from deploy/k8s/go.mod.
k8s-tools:
	nice -n 10 bash deploy/k8s/build.sh

k8s: k8s-tools
	$(PYTHON) deploy/k8s/controlplane.py run

k8s-test: setup k8s-tools
	$(BIN)/python -m pytest tests/k8s

# the Centrifugo server `make bench` compares the edge with (built from its Go module, cached in .cache/bin)
centrifugo:
	bash deploy/centrifugo/fetch_centrifugo.sh

run: setup
	@echo ""
	@echo "  agentwire on http://127.0.0.1:8080  (Ctrl-C stops everything)"
	@echo "  try:  curl -s -X POST http://127.0.0.1:8080/api/v1/tasks -H 'Content-Type: application/json' \\"
	@echo "          -d '{\"query\": \"Research AI trends\"}'"
	@echo "        curl -N 'http://127.0.0.1:8080/api/v1/stream/sse?workflow_id=<workflow_id from above>'"
	@echo ""
	mkdir -p .data
	ENVIRONMENT=dev GATEWAY_SKIP_AUTH=1 $(BIN)/honcho -f deploy/local/Procfile -d . start

test: setup images k8s-tools
	$(BIN)/ruff check libs services tests deploy
	$(BIN)/python -m pytest

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

lint: $(STAMP)
	$(BIN)/ruff check libs services tests deploy

# The container engine: nothing where Docker answers; rootful podman and its Docker API socket otherwise.
engine:
	$(PYTHON) deploy/containers/engine.py up

# Every image (services, Kafka, Prometheus), rebuilt only when its inputs changed (docs/containers.md).
images: kafka
	$(PYTHON) deploy/containers/images.py

bench: setup centrifugo
	$(BIN)/python -m tests.bench.run

chaos: setup
	$(BIN)/python -m tests.chaos.run

fuzz: setup
	$(BIN)/python -m tests.fuzz.run

# 10 minutes at 100 tasks/s, ~1,000 streams reading at once; RSS of every service judged by its trend
soak: setup
	$(BIN)/python -m tests.soak.run

# System packages for Debian-like machines (CI calls this before `make test`).
system-deps:
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	$$SUDO apt-get update -qq && \
	$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		openjdk-17-jre-headless maven python3-venv curl openssl prometheus chromium postgresql \
		podman crun netavark aardvark-dns iptables debootstrap

clean:
	rm -rf $(VENV) .data
