"""A real Docker engine for the container tests: the host's (DOCKER_HOST), or a private one that
deploy/docker/engine.sh starts (host networking only) and always stops at the end of the session.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from containers import DOCKER, ENGINE_SH, TEST_IMAGE, Engine, no_engine


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    """The engine, with the base image the Dockerfile's FROM names; stopped after the session."""
    if not Path(DOCKER).is_file():
        no_engine(f"{DOCKER} is missing (`make docker-tools` installs docker.io)")
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    answers = subprocess.run([DOCKER, "version"], env=env, capture_output=True, check=False)
    private = answers.returncode != 0 or bool(os.environ.get("CATDOG_PRIVATE_ENGINE"))
    if private:
        env["DOCKER_HOST"] = (
            subprocess.run([ENGINE_SH, "env"], capture_output=True, text=True, check=True)
            .stdout.split("=", 1)[1]
            .strip()
        )
        started = subprocess.run([ENGINE_SH, "start"], capture_output=True, text=True, check=False)
        if started.returncode != 0:
            no_engine(started.stderr.strip().splitlines()[-1] if started.stderr else "dockerd")
    try:
        base = subprocess.run(
            [ENGINE_SH, "base"], env=env, capture_output=True, text=True, check=False
        )
        if base.returncode != 0:
            pytest.fail(f"could not make the base image: {base.stderr.strip()[-2000:]}")
        yield Engine(env)
    finally:
        if private:
            subprocess.run([ENGINE_SH, "stop"], check=False)


@pytest.fixture(scope="session")
def image(engine: Engine) -> str:
    """The service's image, built from this checkout."""
    engine.build(TEST_IMAGE)
    return TEST_IMAGE
