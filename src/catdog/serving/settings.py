"""Every knob of the service, read once from the environment (CATDOG_*) by pydantic-settings.

`catdog serve` options override the same fields, so a flag, an env var and a container's
environment all mean one thing. Defaults suit a small CPU machine; the README lists them all.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from catdog.errors import DEFAULT_MAX_PIXELS, ConfigError

LogLevel = Literal["debug", "info", "warning", "error"]
# Each runner process holds its own copy of the model and of ONNX Runtime.
MAX_DEFAULT_RUNNERS = 4


def available_cores() -> int:
    """CPU cores this process may run on (respects taskset/cpusets, unlike os.cpu_count)."""
    return len(os.sched_getaffinity(0)) or 1


class Settings(BaseSettings):
    """The inference service's configuration (env prefix CATDOG_)."""

    model_config = SettingsConfigDict(env_prefix="CATDOG_", extra="ignore", frozen=True)

    model: str | None = Field(
        default=None,
        description="Path, directory or models:/ runs:/ URI; unset serves the reference model.",
    )
    host: str = Field(
        default="127.0.0.1", description="Interface to bind (0.0.0.0 in a container)."
    )
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, description="Processes, each with its own model copy.")
    max_batch: int = Field(
        default=4,
        ge=1,
        description="Most images run through the model at once. With no wait, a batch also "
        "takes at most its runner's share of the images in flight.",
    )
    max_wait_ms: float = Field(
        default=0.0,
        ge=0,
        description="How long a batch waits for company once it has one image. 0: none; under "
        "load, batches still form from what queued while the runners were busy.",
    )
    queue_size: int = Field(
        default=32, ge=1, description="Images admitted per worker; beyond it, an immediate 503."
    )
    request_timeout_s: float = Field(
        default=10.0, gt=0, description="An image not answered by then gets 503 `timeout`."
    )
    runner_timeout_s: float = Field(
        default=0.0,
        ge=0,
        description="A runner that has not answered a batch by then is killed and replaced, "
        "and the batch runs again; 0 = half of request_timeout_s.",
    )
    max_upload_mb: float = Field(default=10.0, gt=0, description="Largest file accepted, in MiB.")
    max_pixels: int = Field(
        default=DEFAULT_MAX_PIXELS, ge=1, description="Decompression-bomb limit."
    )
    max_batch_files: int = Field(default=16, ge=1, description="Most files per /predict/batch.")
    body_budget_mb: float = Field(
        default=96.0,
        gt=0,
        description="Upload bytes one worker holds at once, reserved before a body is read; "
        "a body that does not fit now gets 503, one larger than the budget 413.",
    )
    body_timeout_s: float = Field(
        default=60.0, gt=0, description="A request body not received by then gets 408."
    )
    max_connections: int = Field(
        default=256, ge=1, description="Open connections per worker; beyond it uvicorn sends 503."
    )
    api_token: SecretStr | None = Field(
        default=None,
        description="Bearer token for /admin/* and /feedback; unset disables both.",
    )
    api_token_file: Path | None = Field(
        default=None,
        description="A file holding the bearer token (a mounted Kubernetes or Docker secret); "
        "it wins over CATDOG_API_TOKEN, and one that cannot be read stops the service.",
    )
    model_root: Path = Field(
        default=Path(),
        description="/admin/reload loads only registry URIs and paths under this folder "
        "(default: the service's working directory).",
    )
    log_level: LogLevel = "info"
    ort_threads: int = Field(
        default=0,
        ge=0,
        description="ONNX Runtime intra-op threads of each run; 0 = cores // workers // runners.",
    )
    ort_spinning: bool = Field(
        default=False,
        description="Let idle ONNX Runtime threads busy-wait (faster alone, slower beside decode).",
    )
    runners: int = Field(
        default=0,
        ge=0,
        description="Runner processes per worker, each decoding and running one batch at a "
        f"time; 0 = cores // workers, at most {MAX_DEFAULT_RUNNERS}.",
    )
    retry_after_s: int = Field(default=1, ge=0, description="Retry-After sent with every 503.")
    pet_threshold: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="A photo whose pet_score is under this is answered is_pet=false; unset = "
        "the threshold the model card recommends.",
    )
    reload_file: Path | None = Field(
        default=None,
        description="Shared file through which a reload reaches every worker; "
        "`catdog serve --workers N` sets it, one worker needs none.",
    )

    # The monitoring loop: the prediction log and the feedback store (catdog.monitoring).
    data_dir: Path = Field(
        default=Path("data"),
        description="Folder of the embedded prediction store (predictions.db, SQLite in WAL).",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the prediction store, e.g. postgresql://host/catdog for "
        "several replicas; unset = SQLite in CATDOG_DATA_DIR.",
    )
    retention_days: float = Field(
        default=30.0, gt=0, description="Predictions and their feedback older than this go."
    )
    keep_photos: Path | None = Field(
        default=None,
        description="Opt-in: keep each answered photo's bytes here, named by sha256. Unset "
        "(default): photos are never stored, only their statistics.",
    )
    log_queue_size: int = Field(
        default=10_000,
        ge=1,
        description="Prediction-log rows waiting for the writer; beyond it rows are dropped "
        "(counted in catdog_prediction_log_dropped_total), answers are not.",
    )
    log_queue_mb: float = Field(
        default=256.0,
        gt=0,
        description="Photo bytes the queued log rows may hold (each row holds its photo until "
        "the writer has its statistics); beyond it rows are dropped, answers are not.",
    )
    accuracy_window: int = Field(
        default=200,
        ge=1,
        description="Labelled predictions behind catdog_live_accuracy_ratio, per model version.",
    )

    @model_validator(mode="before")
    @classmethod
    def _token_from_file(cls, data: Any) -> Any:
        """A secret mounted as a file fills api_token, so the token never sits in the env."""
        if not isinstance(data, dict) or not data.get("api_token_file"):
            return data
        path = Path(data["api_token_file"])
        try:
            token = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"CATDOG_API_TOKEN_FILE: cannot read {path}: {exc}") from exc
        if not token:
            raise ValueError(f"CATDOG_API_TOKEN_FILE: {path} is empty")
        return {**data, "api_token": token}

    @model_validator(mode="after")
    def _batch_fits_in_queue(self) -> Settings:
        if self.max_batch_files > self.queue_size:
            raise ValueError(
                f"max_batch_files ({self.max_batch_files}) must not exceed queue_size "
                f"({self.queue_size}): such a /predict/batch could never be admitted"
            )
        if self.body_budget_mb < self.max_upload_mb:
            raise ValueError(
                f"body_budget_mb ({self.body_budget_mb:g}) must be at least max_upload_mb "
                f"({self.max_upload_mb:g}): a photo of the largest size could never be admitted"
            )
        return self

    @property
    def store_url(self) -> str:
        """The prediction store's URL: CATDOG_DATABASE_URL, else SQLite in the data folder."""
        return self.database_url or f"sqlite:///{self.data_dir / 'predictions.db'}"

    @property
    def runner_deadline_s(self) -> float:
        """How long one runner call may take: half the request's time by default, so that a
        batch whose runner hung still has time to run again."""
        return self.runner_timeout_s or self.request_timeout_s / 2

    @property
    def body_budget_bytes(self) -> int:
        """The in-flight body budget in bytes."""
        return int(self.body_budget_mb * 1024 * 1024)

    @property
    def max_upload_bytes(self) -> int:
        """The upload limit in bytes."""
        return int(self.max_upload_mb * 1024 * 1024)

    def threads_per_worker(self) -> tuple[int, int]:
        """(ONNX Runtime threads per run, runners) for one worker: the cores shared out.

        A runner per core, each run on one thread: a small model splits poorly across cores
        (two threads ran the shipped model 1.35x as fast as one, two runs side by side 1.95x).
        Past a few runners, each one's memory costs more than single-threaded runs gain.
        """
        share = max(1, available_cores() // self.workers)
        runners = self.runners or min(share, MAX_DEFAULT_RUNNERS)
        return (self.ort_threads or max(1, share // runners), runners)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, `overrides` (command-line options) winning; a bad value
    is a ConfigError naming its variable, not a pydantic traceback."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            (f"CATDOG_{'_'.join(map(str, err['loc'])).upper()}: " if err["loc"] else "")
            + err["msg"]
            for err in exc.errors()
        )
        raise ConfigError(f"bad service settings: {problems}") from exc
