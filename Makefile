# Two commands set everything up on a fresh machine:
#   make demo   runs the exporter on the simulated dense-h100 node
#   make test   installs every tool the tests need and runs lint, types and tests
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_ADDRESS ?= 127.0.0.1:9842
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint typecheck unit tools kube-apiserver bench generate clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/.installed
	@echo "gpuwork exporter on the simulated node dense-h100 (8x H100, 56 MIG instances)"
	@echo "  metrics: http://$(DEMO_ADDRESS)/metrics   health: /healthz   ready: /readyz"
	@echo "  try: curl -s http://$(DEMO_ADDRESS)/metrics | grep ^gpuwork_device_sm_active_ratio"
	@echo "  Ctrl-C stops it."
	$(BIN)/gpuwork-exporter --simulate dense-h100 --web.listen-address $(DEMO_ADDRESS)

# The real programs of the end-to-end tests, from Debian: prometheus (and promtool),
# prometheus-alertmanager (and amtool), victoria-metrics.
tools:
	@command -v promtool >/dev/null && command -v amtool >/dev/null && \
	  command -v victoria-metrics >/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
	    prometheus prometheus-alertmanager victoria-metrics >/dev/null; }
	@promtool --version | head -1; amtool --version | head -1
	@bash scripts/helm.sh >/dev/null  # helm 3 for tests/charts/, cached under ~/.cache/gpuwork

# alerts/ and dashboards/ are generated from mixin/; the tests fail when they differ.
generate: $(BIN)/.installed
	$(BIN)/python -m mixin.generate

# The Kubernetes watch tests run a real kube-apiserver v1.20 (built once from Debian's
# source package, cached under ~/.cache/gpuwork) with Debian's etcd on loopback.
kube-apiserver:
	@bash scripts/kube-apiserver.sh

lint: $(BIN)/.installed
	$(BIN)/ruff check exporter simulator harness mixin tests bench
	$(BIN)/ruff format --check exporter simulator harness mixin tests bench
	$(BIN)/hadolint Dockerfile

typecheck: $(BIN)/.installed
	$(BIN)/mypy

unit: $(BIN)/.installed tools kube-apiserver
	GPUWORK_KUBE_APISERVER=$$(bash scripts/kube-apiserver.sh) $(BIN)/pytest

test: lint typecheck unit

# bench/scrape.py scrapes Debian's prometheus-node-exporter beside the exporter;
# bench/kube_clients.py needs the Kubernetes client libraries of the `bench` extra.
bench: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@command -v prometheus-node-exporter >/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends prometheus-node-exporter >/dev/null; }
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
