"""What the container tests share: the engine they talk to, free ports, waiting for /ready.

Where no engine can start, the tests skip with the reason in the summary; CI sets
CATDOG_REQUIRE_DOCKER=1, which turns that skip into a failure.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENGINE_SH = ROOT / "deploy" / "docker" / "engine.sh"
DOCKER = os.environ.get("CATDOG_DOCKER", "/usr/bin/docker")
PIP_CA = Path("/etc/ssl/certs/ca-certificates.crt")
TEST_IMAGE = "catdog:test"


def free_port() -> int:
    """A port nobody listens on now (host networking: the container binds it on this host)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def no_engine(reason: str) -> None:
    """Skip loudly, or fail where CI requires the container tests to run."""
    message = f"NO CONTAINER ENGINE, tests/deploy did not run: {reason}"
    if os.environ.get("CATDOG_REQUIRE_DOCKER") == "1":
        pytest.fail(message + " (CATDOG_REQUIRE_DOCKER=1)", pytrace=False)
    pytest.skip(message)


@dataclass(frozen=True)
class Engine:
    """A Docker engine the tests talk to through `DOCKER_HOST`."""

    env: dict[str, str]

    def run(
        self, *args: str, check: bool = True, timeout: float = 600, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`docker ARGS`, its output captured; a failure shows docker's own message."""
        done = subprocess.run(
            [DOCKER, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=cwd,
        )
        if check and done.returncode != 0:
            pytest.fail(f"docker {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
        return done

    def build(self, tag: str, *extra: str) -> None:
        """Build deploy/docker/Dockerfile (layers cached by the engine) as `tag`."""
        secret = ["--secret", f"id=pip_ca,src={PIP_CA}"] if PIP_CA.is_file() else []
        self.run(
            "build", "--network=host", *secret, *extra, "-f", "deploy/docker/Dockerfile",
            "-t", tag, ".", cwd=ROOT, timeout=1200,
        )  # fmt: skip


def wait_ready(url: str, timeout_s: float = 30.0) -> None:
    """Poll /ready until it answers 200."""
    import httpx  # noqa: PLC0415

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"{url}/ready did not answer 200 within {timeout_s:g} s")
