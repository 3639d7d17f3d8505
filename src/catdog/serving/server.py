"""Run the service under uvicorn: one process, or several workers sharing the port.

One worker gets the app object built here. Several workers are separate processes that each
build the app from the environment (uvicorn's import-string mode), so the settings are exported
to CATDOG_* first; a shared generation file lets a reload reach every worker, and a shared
metrics folder lets any worker's /metrics answer for all of them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from catdog.model_store import REGISTRY_SCHEMES, resolve_model
from catdog.serving.log import configure_logging
from catdog.serving.metrics import MULTIPROCESS_DIR_ENV
from catdog.serving.runner import runner_processes
from catdog.serving.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

APP_FACTORY = "catdog.serving.app:create_app"
# Past the request timeout, a graceful shutdown stops waiting for stragglers.
SHUTDOWN_GRACE_S = 5.0


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    """After uvicorn drained on SIGTERM it re-raises the signal: end with status 0, not 143."""
    raise SystemExit(0)


def export_settings(settings: Settings) -> None:
    """Write every setting to the CATDOG_* environment the worker processes will read."""
    for name, value in settings.model_dump().items():
        key = f"CATDOG_{name.upper()}"
        if value is None:
            os.environ.pop(key, None)
        else:
            secret = getattr(value, "get_secret_value", None)
            os.environ[key] = str(secret() if secret else value)


def run_server(settings: Settings) -> None:
    """Serve until SIGTERM/SIGINT; then stop accepting, finish what is in flight, exit 0."""
    configure_logging(settings.log_level)
    # A wrong local path, or no model at all, fails here with its exit code, not later in a
    # worker's log. Registry URIs are fetched by the workers, in the background.
    if not (settings.model or "").startswith(REGISTRY_SCHEMES):
        resolve_model(settings.model)
    runners = []
    if settings.workers == 1:
        count = settings.threads_per_worker()[1]
        runners = runner_processes(count, call_timeout_s=settings.runner_deadline_s)
    for runner in runners:  # their start-up runs beside the imports below (README, How it runs)
        runner.start()
    import uvicorn  # noqa: PLC0415 - FastAPI and uvicorn only when serving

    from catdog.serving.app import create_app  # noqa: PLC0415

    signal.signal(signal.SIGTERM, _exit_cleanly)
    with contextlib.ExitStack() as stack:
        target: FastAPI | str
        if settings.workers == 1:
            target = create_app(settings, runners=runners)
        else:
            shared = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="catdog-")))
            export_settings(settings.model_copy(update={"reload_file": shared / "model.json"}))
            (shared / "metrics").mkdir()
            os.environ.setdefault(MULTIPROCESS_DIR_ENV, str(shared / "metrics"))
            target = APP_FACTORY
        uvicorn.run(
            target,
            factory=isinstance(target, str),
            workers=settings.workers,
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            server_header=False,
            limit_concurrency=settings.max_connections,
            timeout_graceful_shutdown=int(settings.request_timeout_s + SHUTDOWN_GRACE_S),
        )
