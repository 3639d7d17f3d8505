"""What routes depend on: the worker's service and the admin check. No globals: everything
hangs off `app.state`, so every app built by `create_app` is independent. Dependencies are
`async def` on purpose: FastAPI runs plain `def` ones in its thread pool, a hop per request."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from catdog.errors import AccessDeniedError
from catdog.serving.service import InferenceService

_bearer = HTTPBearer(auto_error=False, description="CATDOG_API_TOKEN")


async def get_service(request: Request) -> InferenceService:
    """The inference service of the app handling this request."""
    service: InferenceService = request.app.state.service
    return service


ServiceDep = Annotated[InferenceService, Depends(get_service)]


async def require_admin(
    service: ServiceDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Let through only `Authorization: Bearer $CATDOG_API_TOKEN`; no token set = no admin."""
    token = service.settings.api_token
    if token is None or not token.get_secret_value():
        raise AccessDeniedError(
            "admin endpoints are disabled: set CATDOG_API_TOKEN to enable them",
            reason="admin_disabled",
        )
    if credentials is None:
        raise AccessDeniedError(
            "send Authorization: Bearer <CATDOG_API_TOKEN>", reason="no_token", http_status=401
        )
    # As bytes: compare_digest refuses str with non-ASCII characters (a 500, not a 403). The
    # header arrives decoded as Latin-1: encoding it back gives the bytes sent, so a UTF-8
    # token configured in CATDOG_API_TOKEN matches the same token sent.
    given = credentials.credentials.encode("latin-1", "replace")
    if not secrets.compare_digest(given, token.get_secret_value().encode()):
        raise AccessDeniedError("the bearer token is not CATDOG_API_TOKEN", reason="bad_token")


AdminDep = Depends(require_admin)
