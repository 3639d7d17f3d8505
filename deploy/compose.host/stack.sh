#!/usr/bin/env bash
# `make stack` / `make stack-down`: deploy/compose.yaml on a machine with no registry and
# loopback-only networking (compose.host.yaml), on the private engine of deploy/docker/engine.sh.
#
#   stack.sh up     build the images, start PostgreSQL and MLflow, register the reference model as
#                   models:/catdog@champion unless an alias exists, start the service and Prometheus
#   stack.sh down   stop everything, remove its volumes, stop the private engine
#
# Ports come from STACK_{PG,MLFLOW,API,PROMETHEUS}_PORT (defaults in compose.host.yaml); the
# project name from STACK_PROJECT; STACK_MODEL_DIR (model.onnx + card) replaces the reference model. Needs the repo's .venv (MLflow) for the registration.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
ENGINE=deploy/docker/engine.sh
DOCKER=${CATDOG_DOCKER:-/usr/bin/docker}
PIP_CA=${PIP_CA:-/etc/ssl/certs/ca-certificates.crt}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
export STACK_PG_PORT=${STACK_PG_PORT:-15432} STACK_MLFLOW_PORT=${STACK_MLFLOW_PORT:-15000}
export STACK_API_PORT=${STACK_API_PORT:-18000} STACK_PROMETHEUS_PORT=${STACK_PROMETHEUS_PORT:-19090}
export STACK_PROMETHEUS_CONFIG=${STACK_PROMETHEUS_CONFIG:-$ROOT/.deploy-cache/stack/prometheus.yml}
export DOCKER_BUILDKIT=1 COMPOSE_DOCKER_CLI_BUILD=1
# The engine that answers (a developer's, a CI runner's), else the private one of engine.sh.
PRIVATE=""
if [ -n "${CATDOG_PRIVATE_ENGINE:-}" ] || ! "$DOCKER" version >/dev/null 2>&1; then
    PRIVATE=1
    eval "$($ENGINE env)"
fi
# docker-compose 1.x (Debian's package) or the compose plugin.
if command -v docker-compose >/dev/null; then COMPOSE=(docker-compose); else COMPOSE=(docker compose); fi
RENDERED=$(dirname "$STACK_PROMETHEUS_CONFIG")/compose.rendered.yaml
# compose.yaml merged with compose.host.yaml, less the published ports, which host networking
# cannot have and which an override cannot remove in docker-compose 1.x.
render() {
    "${COMPOSE[@]}" -f deploy/compose.yaml -f deploy/compose.host.yaml config | "$PYTHON" -c '
import sys, yaml
config = yaml.safe_load(sys.stdin)
for service in config["services"].values():
    if service.get("network_mode") == "host":
        service.pop("ports", None)
yaml.safe_dump(config, sys.stdout, sort_keys=False)' >"$RENDERED"
}
compose() {
    "${COMPOSE[@]}" -p "${STACK_PROJECT:-catdog}" -f "$RENDERED" "$@"
}

build() {  # compose 1.29 cannot pass BuildKit secrets: docker build does, under compose's names
    local secret=()
    [ -f "$PIP_CA" ] && secret=(--secret "id=pip_ca,src=$PIP_CA")
    "$DOCKER" build -q --network=host "${secret[@]}" "$@" >/dev/null
}

up() {
    if [ -n "$PRIVATE" ]; then $ENGINE start; fi
    $ENGINE base
    build -f deploy/docker/Dockerfile --build-arg EXTRA_PACKAGES=mlflow-skinny -t catdog-api:latest .
    build -f deploy/mlflow/Dockerfile -t catdog-mlflow:latest .
    build -t catdog-postgres:host deploy/compose.host/postgres
    build -t catdog-prometheus:host deploy/compose.host/prometheus
    mkdir -p "$(dirname "$STACK_PROMETHEUS_CONFIG")"
    sed -E "s/(api|catdog):8000/127.0.0.1:$STACK_API_PORT/" deploy/prometheus/prometheus.yml \
        >"$STACK_PROMETHEUS_CONFIG"
    render
    compose up -d --no-build postgres mlflow
    MLFLOW_TRACKING_URI=http://127.0.0.1:$STACK_MLFLOW_PORT "$PYTHON" \
        deploy/mlflow/register_reference.py ${STACK_MODEL_DIR:+--model-dir "$STACK_MODEL_DIR"}
    compose up -d --no-build catdog prometheus
    echo "api        http://127.0.0.1:$STACK_API_PORT (serving models:/catdog@champion)"
    echo "mlflow     http://127.0.0.1:$STACK_MLFLOW_PORT"
    echo "prometheus http://127.0.0.1:$STACK_PROMETHEUS_PORT"
    echo "grafana    not run here (no package, no registry): its provisioning is validated in tests/deploy"
}

down() {
    if "$DOCKER" version >/dev/null 2>&1 && [ -f "$RENDERED" ]; then
        compose down -v --remove-orphans
    fi
    if [ -n "$PRIVATE" ] && [ -z "${CATDOG_KEEP_ENGINE:-}" ]; then $ENGINE stop; fi
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
