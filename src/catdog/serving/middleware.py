"""Plain ASGI middleware (no BaseHTTPMiddleware: it would copy every body through a stream).

- `RequestContextMiddleware`: a request id (`X-Request-ID`), the request metrics and the one
  JSON log line per request, with what the route put in `request.state.log` (label, ...).
- `UploadGuardMiddleware`: on the upload routes, refuses overload (503) and oversized bodies
  (413) before the body is read, counting bytes as they arrive when no Content-Length is sent.
"""

from __future__ import annotations

import re
import uuid
from time import perf_counter
from typing import Any

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from catdog.errors import CatdogError, image_error
from catdog.serving.batching import Admission, overloaded
from catdog.serving.error_handlers import error_response
from catdog.serving.metrics import ServiceMetrics

log = structlog.get_logger("catdog.serving")

# A caller's own request id is kept if it is short and plain (it ends up in our logs).
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class RequestContextMiddleware:
    """Request id, request metrics and one structured log line for every HTTP request."""

    def __init__(self, app: ASGIApp, *, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        given = Headers(scope=scope).get("x-request-id", "")
        request_id = given if _SAFE_REQUEST_ID.match(given) else uuid.uuid4().hex
        state: dict[str, Any] = scope.setdefault("state", {})
        state.update(request_id=request_id, started=started, log={})
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append("X-Request-ID", request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or state.get("route", "unmatched")
            self.metrics.requests.labels(route=route, method=scope["method"], status=status).inc()
            self.metrics.latency.labels(route=route).observe(elapsed)
            log.info(
                "request",
                request_id=request_id,
                method=scope["method"],
                route=route,
                status=status,
                latency_ms=round(elapsed * 1000, 2),
                **state.get("log", {}),
            )


class UploadGuardMiddleware:
    """Cheap refusals for the upload routes, before a byte of the body is kept."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: dict[str, int],
        admission: Admission,
        metrics: ServiceMetrics,
        retry_after_s: int,
    ) -> None:
        self.app = app
        self.limits = limits
        self.admission = admission
        self.metrics = metrics
        self.retry_after_s = retry_after_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limits.get(scope.get("path", "")) if scope["type"] == "http" else None
        if limit is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        if self.admission.full:
            refusal = overloaded(
                f"{self.admission.capacity} images in progress (CATDOG_QUEUE_SIZE)"
            )
            await self._refuse(refusal, scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await self._refuse(_too_big(int(declared), limit), scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._refuse(_too_big(size, limit), scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    async def _refuse(self, exc: CatdogError, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.setdefault("state", {})
        state.setdefault("log", {})["error"] = exc.reason
        state["route"] = scope["path"]  # one of the guarded routes: the router never saw it
        response = error_response(exc, metrics=self.metrics, retry_after_s=self.retry_after_s)
        await response(scope, receive, send)


def _too_big(size: int, limit: int) -> CatdogError:
    return image_error(
        "too_many_bytes",
        f"the upload is over {limit:,} bytes (got at least {size:,}; CATDOG_MAX_UPLOAD_MB)",
    )


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app the body already read, then waits for the client."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
