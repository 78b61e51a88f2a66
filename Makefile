# The commands the README shows. Everything runs in .venv, created on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# --no-compile: Python compiles each module on its first import instead of pip compiling every
# installed file (half the install time; most are never imported).
PIP := $(PY) -m pip install --quiet --disable-pip-version-check --no-compile
MODEL_DIR ?= models
SOURCE ?= auto
TRAIN_ARGS ?=
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: run train serve test report panel container-test sbom lock format bench bench-hostile bench-train bench-startup soak fuzz precompress clean

# openapi-typescript and tsc for tests/test_clients.py, from npm; without npm those tests are skipped.
NODE_TOOLS := $(if $(shell command -v npm),tests/typescript/node_modules/.package-lock.json)

# TRAIN_ARGS: more train.py options, e.g. TRAIN_ARGS="--asset btc --repair" (python train.py --help)
TRAIN := $(PY) train.py --source $(SOURCE) --model-dir $(MODEL_DIR) $(TRAIN_ARGS)
SERVE := MODEL_DIR=$(MODEL_DIR) HOST=$(HOST) PORT=$(PORT) $(PY) api.py

## run: serve; SOURCE=alpaca|snapshot|auto on make's command line trains from it first, else the
## models there are served as they are (one line says their source and day), trained first if none
run: $(VENV)/.run-deps precompress
ifeq ($(origin SOURCE),command line)
	$(TRAIN)
else
	@$(PY) scripts/model_summary.py $(MODEL_DIR) || $(TRAIN)
endif
	$(SERVE)

## train: (re)train every asset now; SOURCE=alpaca|snapshot|auto
train: $(VENV)/.run-deps
	$(TRAIN)

## serve: serve the existing models on http://$(HOST):$(PORT)
serve: $(VENV)/.run-deps precompress
	$(SERVE)

## test: lint, security checks (bandit), then the whole test suite, one worker per core (pytest-xdist)
test: $(VENV)/.dev-deps precompress $(NODE_TOOLS)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m bandit -q -r . -x ./.venv,./models,./tests,./bench,./scripts
	@# Tests, benchmarks and delivery scripts assert (B101, tests) and run programs by name with
	@# fixed arguments (B404, B603, B607): our own, git, wrk and the container engine.
	$(PY) -m bandit -q -r tests $(wildcard bench scripts) -s B101,B404,B603,B607
	$(PY) -m pytest -n auto --dist worksteal -m "not alone"
	$(PY) -m pytest -m alone

## report: backtest every candidate on the bundled snapshots; writes reports/backtest.md and its plots
report: $(VENV)/.run-deps
	$(PY) -m training.report

## panel: the served forecaster on every bundled asset and data/panel/ at rolling origins; writes reports/panel.md
panel: $(VENV)/.run-deps
	$(PY) -m training.selection.panel_report

## bench: /bitcoin against a Flask hello world, the naive per-request predict and a bare WSGI app (needs wrk)
bench: $(VENV)/.run-deps
	@command -v wrk >/dev/null || { echo "bench needs wrk: apt-get install wrk"; exit 1; }
	$(PY) bench/bench.py

## bench-hostile: 10,000 made-up methods (metrics series, RSS), then a normal client's latency
## while 500 idle + 500 slow-header connections are held (its own client: no wrk)
bench-hostile: $(VENV)/.run-deps
	$(PY) bench/hostile.py

## bench-train: N=10 and 50 synthetic assets from the fake Alpaca, trained on the local process pool
## and on a local Dask cluster (dask scheduler + dask worker on 127.0.0.1): wall time, s/asset, peak RSS
bench-train: $(VENV)/.run-deps
	$(PY) bench/train_bench.py

## bench-startup: api.py on a model folder of 50 assets: time to its first answer and peak RSS
bench-startup: $(VENV)/.run-deps
	$(PY) bench/startup_bench.py

## soak: 60 s at 64 connections on every kind of valid read: errors, RSS, recovery (needs wrk)
soak: $(VENV)/.run-deps
	@command -v wrk >/dev/null || { echo "soak needs wrk: apt-get install wrk"; exit 1; }
	$(PY) bench/soak.py

## fuzz: schemathesis against the server on $(HOST):$(PORT) (start it with make serve), random seed
fuzz: $(VENV)/.dev-deps
	$(PY) -m schemathesis.cli run http://$(HOST):$(PORT)/openapi.json --max-examples 1000

## container-test: build the image (snapshot data), run it read-only as non-root, check it, print sizes
## and timings. Docker or podman, whichever works; CONTAINER=podman to choose.
container-test:
	$(PYTHON) scripts/container_test.py $(if $(CONTAINER),--engine $(CONTAINER))

## sbom: the CycloneDX SBOM of the image's Python environment, made by its build -> sbom.cdx.json
## (builds the api-deps stage; IMAGE=... copies it from an image built before)
sbom:
	$(PYTHON) scripts/sbom.py $(if $(CONTAINER),--engine $(CONTAINER)) $(if $(IMAGE),--image $(IMAGE))

## lock: rewrite the wheel hashes of requirements-image.txt and requirements-sbom.txt after a pin changes
lock:
	$(PYTHON) scripts/lock_requirements.py requirements-image.txt requirements-sbom.txt

## precompress: a gzip copy beside each of the page's files (web/**/*.gz), remade when a file is newer
precompress:
	@$(PYTHON) scripts/precompress.py web

format: $(VENV)/.dev-deps
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

$(PY):
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.run-deps: requirements-train.txt requirements-api.txt | $(PY)
	$(PIP) -r requirements-train.txt -r requirements-api.txt
	touch $@

$(VENV)/.dev-deps: requirements-dev.txt requirements-notebook.txt $(VENV)/.run-deps
	$(PIP) -r requirements-dev.txt -r requirements-notebook.txt
	touch $@

tests/typescript/node_modules/.package-lock.json: tests/typescript/package.json tests/typescript/package-lock.json
	cd tests/typescript && npm ci --no-audit --no-fund --silent

clean:
	rm -rf $(VENV) models .pytest_cache .ruff_cache tests/typescript/node_modules
	find web -name '*.gz' -delete
