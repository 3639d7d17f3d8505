"""Every refusal becomes `{"error": reason, "detail": ...}` with the status its error names.

CatdogError carries its own `http_status`, so the mapping lives in one handler; FastAPI's own
validation and routing errors get the same JSON shape. A 503 always says when to retry.
"""

from __future__ import annotations

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from catdog.errors import CatdogError
from catdog.serving.metrics import ServiceMetrics

log = structlog.get_logger("catdog.serving")

_HTTP_REASONS = {
    404: "not_found",
    405: "method_not_allowed",
    413: "too_many_bytes",
    415: "unsupported_media_type",
}


def error_response(
    exc: CatdogError, *, metrics: ServiceMetrics, retry_after_s: int
) -> JSONResponse:
    """The JSON answer for a refused request; counts the refusal by reason."""
    metrics.refusals.labels(reason=exc.reason).inc()
    headers = None
    if exc.http_status == 503:
        headers = {"Retry-After": str(retry_after_s)}
    elif exc.http_status == 401:  # RFC 9110: a 401 names the scheme it wants
        headers = {"WWW-Authenticate": "Bearer"}
    return JSONResponse(
        {"error": exc.reason, "detail": exc.detail}, status_code=exc.http_status, headers=headers
    )


def _describe(exc: RequestValidationError) -> tuple[str, str]:
    """A reason and one readable sentence for FastAPI's list of validation errors."""
    errors = exc.errors()
    parts = []
    for err in errors:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    missing = all(err.get("type") == "missing" for err in errors)
    return ("missing_field" if missing else "invalid_request"), "; ".join(parts)


def install_error_handlers(app: FastAPI, *, metrics: ServiceMetrics, retry_after_s: int) -> None:
    """Register the handlers that give every error response the same JSON shape."""

    @app.exception_handler(CatdogError)
    async def catdog_error(request: Request, exc: CatdogError) -> JSONResponse:
        request.state.log["error"] = exc.reason
        return error_response(exc, metrics=metrics, retry_after_s=retry_after_s)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        reason, detail = _describe(exc)
        request.state.log["error"] = reason
        metrics.refusals.labels(reason=reason).inc()
        return JSONResponse({"error": reason, "detail": detail}, status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        status = exc.status_code
        reason = _HTTP_REASONS.get(status, "http_error")
        if status == 400:  # a body FastAPI cannot even decode: invalid, like any other
            status, reason = 422, "invalid_request"
        request.state.log["error"] = reason
        return JSONResponse(
            {"error": reason, "detail": str(exc.detail)}, status_code=status, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected_error", exc_info=exc, path=request.url.path)
        return JSONResponse(
            {"error": "internal_error", "detail": "unexpected server error; see the service log"},
            status_code=500,
        )
