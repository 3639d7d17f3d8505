"""GET /: a one-file web page to try the model by hand (works offline: no CDN, no fonts)."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)

PAGE = files("catdog.serving").joinpath("assets/index.html").read_text(encoding="utf-8")


@router.get("/", response_class=HTMLResponse)
async def page() -> HTMLResponse:
    """Pick or drop a photo; see it, its label and the probabilities."""
    return HTMLResponse(PAGE)
