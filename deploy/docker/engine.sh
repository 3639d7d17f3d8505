#!/usr/bin/env bash
# A private Docker engine for `make image`, `make stack` and tests/deploy, on a machine that has
# the docker.io package but no running engine and no registry (nothing can be pulled).
#
#   engine.sh start   start dockerd (host networking only: no bridge, no iptables) unless running
#   engine.sh stop    stop it, unmount its network namespace, remove its run folder
#   engine.sh base    make the base image that the Dockerfile's FROM names, from Debian packages
#   engine.sh env     print `export DOCKER_HOST=...` for this engine
#   engine.sh run -- CMD...   start, make the base, run CMD against the engine, stop (always)
#
# Images and the debootstrap base persist under .deploy-cache/ (git-ignored), so repeat runs
# rebuild only what changed. Where a Docker engine already answers (DOCKER_HOST or the default
# socket) and CATDOG_PRIVATE_ENGINE is unset, `run` uses that engine and pulls nothing itself.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${CATDOG_DEPLOY_CACHE:-$ROOT/.deploy-cache}
# Sockets need short paths (108 bytes), so the run folder lives in /tmp, one per checkout.
RUN_DIR=${CATDOG_ENGINE_RUN:-/tmp/catdog-engine-$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)}
SOCK=$RUN_DIR/docker.sock
# The 20.10 client from the docker.io package: it drives BuildKit (`--secret`, cache mounts).
DOCKER=${CATDOG_DOCKER:-/usr/bin/docker}
BASE_IMAGE=${BASE_IMAGE:-python:3.11-slim}
MIRROR=${DEBIAN_MIRROR:-$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null \
    | head -1)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

log() { echo "engine.sh: $*" >&2; }

engine_answers() { DOCKER_HOST=unix://$SOCK "$DOCKER" version >/dev/null 2>&1; }

start() {
    command -v dockerd >/dev/null || { log "dockerd is missing (make docker-tools installs it)"; exit 1; }
    if engine_answers; then return; fi
    mkdir -p "$RUN_DIR" "$CACHE/docker"
    dockerd --iptables=false --ip6tables=false --bridge=none --ip-masq=false \
        --data-root "$CACHE/docker" --exec-root "$RUN_DIR/exec" -H "unix://$SOCK" \
        --pidfile "$RUN_DIR/dockerd.pid" >"$RUN_DIR/dockerd.log" 2>&1 &
    for _ in $(seq 100); do
        if engine_answers; then return; fi
        kill -0 $! 2>/dev/null || break
        sleep 0.2
    done
    log "dockerd did not start; its log:"
    tail -20 "$RUN_DIR/dockerd.log" >&2
    exit 1
}

stop() {
    local pid
    if [ -f "$RUN_DIR/dockerd.pid" ]; then
        pid=$(cat "$RUN_DIR/dockerd.pid")
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    fi
    # dockerd leaves its default network namespace mounted after it exits.
    if mountpoint -q "$RUN_DIR/exec/netns/default" 2>/dev/null; then
        umount "$RUN_DIR/exec/netns/default"
    fi
    rm -rf "$RUN_DIR"
}

# The real image where a registry answers; otherwise a stand-in from Debian bookworm (python3 is 3.11): minbase, python3,
# venv and CA certificates. Documentation, man pages and locales are never unpacked.
base() {
    export DOCKER_HOST=unix://$SOCK
    if "$DOCKER" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then return; fi
    if timeout 60 "$DOCKER" pull -q "$BASE_IMAGE" >/dev/null 2>&1; then return; fi
    local tarball=$CACHE/base-bookworm-python3.tar
    if [ ! -f "$tarball" ]; then
        command -v debootstrap >/dev/null || { log "debootstrap is missing"; exit 1; }
        local rootfs=$CACHE/rootfs.partial
        rm -rf "$rootfs" && mkdir -p "$rootfs/etc/dpkg/dpkg.cfg.d"
        printf '%s\n' 'path-exclude=/usr/share/doc/*' 'path-exclude=/usr/share/man/*' \
            'path-exclude=/usr/share/info/*' 'path-exclude=/usr/share/locale/*' \
            'path-include=/usr/share/locale/locale.alias' \
            >"$rootfs/etc/dpkg/dpkg.cfg.d/01-slim"
        log "debootstrap bookworm from $MIRROR (about a minute, once)"
        debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
            bookworm "$rootfs" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
            || { tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
        rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
            "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/* \
            "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
        tar -C "$rootfs" -cf "$tarball.partial" . && mv "$tarball.partial" "$tarball"
        rm -rf "$rootfs"
    fi
    "$DOCKER" import --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
        "$tarball" "$BASE_IMAGE" >/dev/null
    log "imported $BASE_IMAGE from $tarball"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    base) base ;;
    env) echo "export DOCKER_HOST=unix://$SOCK" ;;
    run)
        shift
        [ "${1:-}" = "--" ] && shift
        if [ -z "${CATDOG_PRIVATE_ENGINE:-}" ] && "$DOCKER" version >/dev/null 2>&1; then
            exec "$@"
        fi
        # An engine that already answers (a test session's) is left running.
        if ! engine_answers; then trap stop EXIT; fi
        start
        base
        DOCKER_HOST=unix://$SOCK "$@"
        ;;
    *) echo "usage: $0 start|stop|base|env|run -- CMD..." >&2; exit 2 ;;
esac
