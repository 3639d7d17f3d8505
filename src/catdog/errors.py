"""Typed errors, raised where a problem is found and mapped to exit codes or HTTP statuses once.

Each error carries a stable machine-readable `reason` (listed in manifests, JSON bodies and logs)
and a human `detail`. The CLI maps `CatdogError` to `exit_code`; the service to `http_status`.
"""

from __future__ import annotations

# A 12-megapixel phone photo passes; a decompression bomb does not (ImageError `too_many_pixels`).
DEFAULT_MAX_PIXELS = 40_000_000


class CatdogError(Exception):
    """Base of every error catdog reports to a user instead of a traceback."""

    reason: str = "error"
    exit_code: int = 1
    http_status: int = 500

    def __init__(
        self, detail: str, *, reason: str | None = None, http_status: int | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if reason is not None:
            self.reason = reason
        if http_status is not None:
            self.http_status = http_status


class ConfigError(CatdogError):
    """Bad parameters, settings or command-line options."""

    reason = "bad_config"
    exit_code = 2
    http_status = 400


class ImageError(CatdogError):
    """A file that cannot become a model input. `reason` says why, from IMAGE_REASONS."""

    exit_code = 3
    http_status = 422


# The reasons an image is refused, with the HTTP status the service answers for each.
IMAGE_REASONS: dict[str, int] = {
    "empty_file": 422,
    "not_an_image": 422,
    "unsupported_format": 415,
    "truncated": 422,
    "undecodable": 422,
    "too_many_pixels": 413,
    "too_many_bytes": 413,
}


def image_error(reason: str, detail: str) -> ImageError:
    """Build an ImageError whose HTTP status follows its reason."""
    if reason not in IMAGE_REASONS:
        raise ValueError(f"unknown image refusal reason: {reason}")
    return ImageError(detail, reason=reason, http_status=IMAGE_REASONS[reason])


class DataError(CatdogError):
    """The data stage cannot go on (no input, no class folders, bad split)."""

    reason = "bad_data"
    exit_code = 4


class DownloadError(CatdogError):
    """A download failed or its checksum did not match."""

    reason = "download_failed"
    exit_code = 5


class ModelError(CatdogError):
    """A model cannot be found, loaded or used."""

    reason = "bad_model"
    exit_code = 6
    http_status = 503


class PretrainedWeightsError(ModelError):
    """Pretrained weights were asked for but are neither cached nor downloadable (offline?)."""

    reason = "pretrained_weights_unavailable"


class TrainingError(CatdogError):
    """Training cannot start or go on (no usable data, a checkpoint that does not fit)."""

    reason = "training_failed"
    exit_code = 7


class ExportError(CatdogError):
    """An export cannot be trusted: ONNX disagrees with PyTorch, or the export itself failed."""

    reason = "export_failed"
    exit_code = 8


class ServiceError(CatdogError):
    """The inference service refuses a request, or a check against a running service fails."""

    reason = "service_error"
    exit_code = 9
    http_status = 400


class ServiceUnavailableError(ServiceError):
    """Not now: queue full, request timed out, model not ready. Answered 503 with Retry-After."""

    reason = "unavailable"
    http_status = 503


class RequestRefusedError(ServiceError):
    """A well-formed request the service will not do as asked (too many files, bad reload)."""

    reason = "bad_request"
    http_status = 422


class AccessDeniedError(ServiceError):
    """An admin request without the right bearer token, or admin disabled (no token set)."""

    reason = "forbidden"
    http_status = 403


class SmokeTestError(ServiceError):
    """`catdog smoke` found a deployed service that does not work end to end."""

    reason = "smoke_failed"


class StoreError(CatdogError):
    """The prediction store cannot be reached or written (database down, disk full)."""

    reason = "store_unavailable"
    exit_code = 10
    http_status = 503


class MonitorError(CatdogError):
    """`catdog monitor` or `catdog simulate` cannot do its job (no photos, bad URL, no baseline)."""

    reason = "monitor_failed"
    exit_code = 11
