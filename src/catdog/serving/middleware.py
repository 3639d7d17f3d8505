"""Plain ASGI middleware (no BaseHTTPMiddleware: it would copy every body through a stream).

- `RequestContextMiddleware`: a request id (`X-Request-ID`), the request metrics and the one
  JSON log line per request, with what the route put in `request.state.log` (label, ...).
- `UploadGuardMiddleware`: on the upload routes, refuses overload (503) and oversized bodies
  (413) before the body is read, counting bytes as they arrive when no Content-Length is sent.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from time import perf_counter
from typing import Any

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from catdog.errors import CatdogError, ServiceError, image_error
from catdog.serving.batching import Admission, overloaded
from catdog.serving.error_handlers import error_response
from catdog.serving.heap import TRIM_AFTER_BYTES, release_free_memory
from catdog.serving.metrics import ServiceMetrics

log = structlog.get_logger("catdog.serving")

# nginx's status for a request whose client left before the answer was sent.
CLIENT_CLOSED_REQUEST = 499
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
        answered = left = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append("X-Request-ID", request_id)
            elif not message.get("more_body", False):
                answered = True
            await send(message)

        async def receive_watching() -> Message:
            nonlocal left
            message = await receive()
            left = left or message["type"] == "http.disconnect"
            return message

        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive_watching, send_with_id)
        finally:
            elapsed = perf_counter() - started
            if left and not answered:
                status = CLIENT_CLOSED_REQUEST
            route = getattr(scope.get("route"), "path", None) or state.get("route", "unmatched")
            self.metrics.requests.labels(route=route, method=scope["method"], status=status).inc()
            self.metrics.latency.labels(route=route).observe(elapsed)
            log.info(
                "request",
                method=scope["method"],
                route=route,
                status=status,
                latency_ms=round(elapsed * 1000, 2),
                **state.get("log", {}),
            )
            structlog.contextvars.unbind_contextvars("request_id")


class BodyBudget:
    """Bytes of request bodies this worker holds at once, reserved before they are read.

    Lives on the event loop only, so a plain counter is race-free.
    """

    def __init__(self, capacity: int, metrics: ServiceMetrics) -> None:
        self.capacity = capacity
        self.held = 0
        self._metrics = metrics

    def take(self, size: int) -> None:
        """Reserve `size` more bytes, or raise a 503 at once."""
        if self.held + size > self.capacity:
            raise overloaded(
                f"{self.held:,} bytes of uploads in progress, limit {self.capacity:,} "
                "(CATDOG_BODY_BUDGET_MB)"
            )
        self.held += size
        self._metrics.body_bytes_in_flight.set(self.held)

    def give_back(self, size: int) -> None:
        """Release what `take` reserved."""
        self.held -= size
        self._metrics.body_bytes_in_flight.set(self.held)


def route_path(scope: Scope) -> str:
    """The path the router matches: without the `root_path` prefix, whether or not the server
    put it into `path` (uvicorn --root-path does, some proxies do not)."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root) :] or "/"
    return path


class UploadGuardMiddleware:
    """Cheap refusals for the upload routes, before a byte of the body is kept.

    The bytes a body may use are reserved from the worker's `BodyBudget` before it is read (its
    Content-Length, or chunk by chunk without one) and held until the answer is sent, so
    concurrent uploads cannot take more memory than the budget. The body must arrive within
    `body_timeout_s`; it is handed on in the chunks it came in, never joined into a copy.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: dict[str, int],
        admission: Admission,
        budget: BodyBudget,
        metrics: ServiceMetrics,
        retry_after_s: int,
        body_timeout_s: float,
    ) -> None:
        self.app = app
        self.limits = limits
        self.admission = admission
        self.budget = budget
        self.metrics = metrics
        self.retry_after_s = retry_after_s
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = route_path(scope) if scope["type"] == "http" else ""
        limit = self.limits.get(path)
        if limit is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["route"] = path  # one of the guarded routes, also when the router never sees it
        if self.admission.full:
            refusal = overloaded(
                f"{self.admission.capacity} images in progress (CATDOG_QUEUE_SIZE)"
            )
            await self._refuse(refusal, scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        reserved = [0]  # bytes taken from the budget so far, given back whatever happens
        try:
            if declared.isdigit():
                if int(declared) > limit:
                    raise _too_big(int(declared), limit)
                self.budget.take(int(declared))
                reserved[0] = int(declared)
            try:
                async with asyncio.timeout(self.body_timeout_s):
                    chunks = await self._read(receive, limit, reserved)
            except TimeoutError:
                raise ServiceError(
                    f"the request body did not arrive within {self.body_timeout_s:g} s "
                    "(CATDOG_BODY_TIMEOUT_S)",
                    reason="body_timeout",
                    http_status=408,
                ) from None
            if chunks is None:  # the client left
                return
            await self.app(scope, _replay(chunks, receive), send)
        except CatdogError as exc:
            await self._refuse(exc, scope, receive, send)
        finally:
            self.budget.give_back(reserved[0])
            if reserved[0] > TRIM_AFTER_BYTES:  # glibc keeps a large body's freed pages
                await asyncio.to_thread(release_free_memory)

    async def _read(self, receive: Receive, limit: int, reserved: list[int]) -> list[bytes] | None:
        """The body's chunks, or None if the client disconnected. Past what was declared, each
        chunk is reserved as it arrives (`reserved[0]` says how much is held)."""
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _too_big(size, limit)
            if size > reserved[0]:
                self.budget.take(size - reserved[0])
                reserved[0] = size
            if chunk:
                chunks.append(chunk)
            more = message.get("more_body", False)
        return chunks

    async def _refuse(self, exc: CatdogError, scope: Scope, receive: Receive, send: Send) -> None:
        scope.setdefault("state", {}).setdefault("log", {})["error"] = exc.reason
        response = error_response(exc, metrics=self.metrics, retry_after_s=self.retry_after_s)
        await response(scope, receive, send)


def _too_big(size: int, limit: int) -> CatdogError:
    return image_error(
        "too_many_bytes",
        f"the upload is over {limit:,} bytes (got at least {size:,}; CATDOG_MAX_UPLOAD_MB, "
        "CATDOG_BODY_BUDGET_MB)",
    )


def _replay(chunks: list[bytes], receive: Receive) -> Receive:
    """A `receive` that hands the app the body already read, chunk by chunk and letting go of
    each, then waits for the client."""
    chunks.reverse()
    done = False

    async def replay() -> Message:
        nonlocal done
        if done:
            return await receive()
        chunk = chunks.pop() if chunks else b""
        done = not chunks
        return {"type": "http.request", "body": chunk, "more_body": not done}

    return replay
