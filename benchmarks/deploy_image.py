"""The service's container image: its size (with and without pruning), a rebuild after a
source-only change, and a cold start to /ready (beside the same service started on the host).

    python -m benchmarks.deploy_image            # writes benchmarks/results/deploy_image.json

It uses the engine that DOCKER_HOST names, or starts the private one (deploy/docker/engine.sh)
and stops it afterwards. The base image is whatever the Dockerfile's FROM resolves to on that
engine: here, the Debian bookworm stand-in that engine.sh makes for python:3.11-slim.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
ENGINE_SH = ROOT / "deploy" / "docker" / "engine.sh"
DOCKER = os.environ.get("CATDOG_DOCKER", "/usr/bin/docker")
PIP_CA = Path("/etc/ssl/certs/ca-certificates.crt")
# What .dockerignore lets into the build context.
CONTEXT = ["pyproject.toml", "constraints.txt", "README.md", "src", "dvc.yaml", "params.yaml",
           "params", ".dockerignore", "deploy/docker/Dockerfile"]  # fmt: skip
MB = 1_000_000  # docker reports sizes in decimal megabytes


def docker(env: dict[str, str], *args: str, cwd: Path | None = None) -> str:
    """Run docker, return its stdout; raise with its stderr on failure."""
    done = subprocess.run(
        [DOCKER, *args], env=env, cwd=cwd, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:3])}...: {done.stderr[-1500:]}")
    return done.stdout


def build(env: dict[str, str], context: Path, tag: str, *extra: str) -> float:
    """Build the runtime target; seconds it took."""
    secret = ["--secret", f"id=pip_ca,src={PIP_CA}"] if PIP_CA.is_file() else []
    began = time.monotonic()
    docker(env, "build", "--network=host", *secret, *extra, "-f", "deploy/docker/Dockerfile",
           "-t", tag, ".", cwd=context)  # fmt: skip
    return time.monotonic() - began


def size_mb(env: dict[str, str], image: str) -> float:
    return int(docker(env, "image", "inspect", "--format", "{{.Size}}", image)) / MB


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cold_start_s(env: dict[str, str], image: str) -> float:
    """From `docker run -d` to the first 200 from /ready (host networking)."""
    port = free_port()
    began = time.monotonic()
    name = docker(env, "run", "-d", "--network=host", f"--env=CATDOG_PORT={port}", image).strip()
    try:
        while time.monotonic() - began < 60:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                    return time.monotonic() - began
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"{image} was not ready within 60 s")
    finally:
        docker(env, "rm", "-f", name)


def host_start_s() -> float:
    """The same service started on this host, outside any container, to its first /ready 200:
    what the container adds to a cold start is the difference."""
    port = free_port()
    began = time.monotonic()
    server = subprocess.Popen(
        [sys.executable, "-m", "catdog", "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while time.monotonic() - began < 60 and server.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                    return time.monotonic() - began
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        raise RuntimeError("catdog serve was not ready within 60 s")
    finally:
        server.terminate()
        server.wait(timeout=30)


def measure(env: dict[str, str], starts: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="catdog-image-bench-") as tmp:
        context = Path(tmp)
        for name in CONTEXT:
            source, target = ROOT / name, context / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, target)
        build(env, context, "catdog:bench-unpruned", "--build-arg", "PRUNE=0")
        first = build(env, context, "catdog:bench")
        with (context / "src" / "catdog" / "__init__.py").open("a") as module:
            module.write(f"\n# a source-only change, {time.time()}\n")
        rebuild = build(env, context, "catdog:bench")
    starts_s = [cold_start_s(env, "catdog:bench") for _ in range(starts)]
    host_s = [host_start_s() for _ in range(starts)]
    return {
        "image_mb": round(size_mb(env, "catdog:bench"), 1),
        "image_unpruned_mb": round(size_mb(env, "catdog:bench-unpruned"), 1),
        "base_mb": round(size_mb(env, "python:3.11-slim"), 1),
        "build_s_cached_deps": round(first, 1),
        "rebuild_after_source_change_s": round(rebuild, 1),
        "cold_start_to_ready_s": {
            "median": round(statistics.median(starts_s), 2),
            "max": round(max(starts_s), 2),
            "runs": len(starts_s),
        },
        "host_start_to_ready_s": {
            "median": round(statistics.median(host_s), 2),
            "max": round(max(host_s), 2),
            "runs": len(host_s),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=5, help="Cold starts to time.")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/deploy_image.json")
    args = parser.parse_args()
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    private = "DOCKER_HOST" not in os.environ
    if private:
        env["DOCKER_HOST"] = (
            subprocess.run([ENGINE_SH, "env"], capture_output=True, text=True, check=True)
            .stdout.split("=", 1)[1]
            .strip()
        )
        subprocess.run([ENGINE_SH, "start"], check=True)
    try:
        subprocess.run([ENGINE_SH, "base"], env=env, check=True)
        figures = measure(env, args.starts)
    finally:
        if private:
            subprocess.run([ENGINE_SH, "stop"], check=False)
    figures["host_cores"] = os.cpu_count()
    figures["command"] = "python -m benchmarks.deploy_image"
    print(json.dumps(figures, indent=2))
    args.out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
