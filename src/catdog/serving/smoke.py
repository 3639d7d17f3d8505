"""`catdog smoke --url URL`: is a deployed service working, end to end?

Liveness, readiness (waiting a while for a fresh deployment), a real cat photo classified as a
cat, and a broken file refused with a 4xx JSON reason. The photo ships inside the package, so
the check runs from a plain `pip install catdog[serve]`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files

import httpx

SAMPLE_PHOTO = "assets/smoke-cat.jpg"
SAMPLE_LABEL = "cat"


@dataclass(frozen=True)
class Check:
    """One smoke check's outcome."""

    name: str
    ok: bool
    detail: str


def sample_photo() -> bytes:
    """The bundled cat photo."""
    return files("catdog.serving").joinpath(SAMPLE_PHOTO).read_bytes()


def _poll(client: httpx.Client, path: str, wait_s: float) -> httpx.Response:
    """GET `path` until it answers 200 or `wait_s` is over (a fresh deployment may be starting)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            response = client.get(path)
            if response.status_code == 200 or time.monotonic() >= deadline:
                return response
        except httpx.TransportError:
            if time.monotonic() >= deadline:
                raise
        time.sleep(0.5)


def _health(client: httpx.Client, wait_s: float) -> tuple[bool, str]:
    response = _poll(client, "/health", wait_s)
    return response.status_code == 200, f"HTTP {response.status_code}"


def _ready(client: httpx.Client, wait_s: float) -> tuple[bool, str]:
    response = _poll(client, "/ready", wait_s)
    if response.status_code != 200:
        return False, f"HTTP {response.status_code} after {wait_s:g} s: {response.text[:200]}"
    return True, f"model {response.json().get('model_version')}"


def _classifies_photo(client: httpx.Client) -> tuple[bool, str]:
    response = client.post("/predict", files={"file": ("cat.jpg", sample_photo(), "image/jpeg")})
    if response.status_code != 200:
        return False, f"HTTP {response.status_code}: {response.text[:200]}"
    body = response.json()
    label, confidence = body.get("label"), body.get("confidence", 0.0)
    return label == SAMPLE_LABEL, f"{label} ({confidence:.1%}), expected {SAMPLE_LABEL}"


def _refuses_broken_file(client: httpx.Client) -> tuple[bool, str]:
    photo = sample_photo()
    truncated = photo[: len(photo) // 3]
    response = client.post("/predict", files={"file": ("broken.jpg", truncated, "image/jpeg")})
    try:
        reason = response.json().get("error")
    except ValueError:
        reason = None
    ok = 400 <= response.status_code < 500 and bool(reason)
    return ok, f"HTTP {response.status_code}, reason {reason}"


def run_smoke(url: str, *, timeout_s: float = 10.0, wait_s: float = 30.0) -> list[Check]:
    """Run every check against `url`; a check that cannot connect fails, it does not crash."""
    steps: list[tuple[str, Callable[[httpx.Client], tuple[bool, str]]]] = [
        ("health", lambda c: _health(c, wait_s)),
        ("ready", lambda c: _ready(c, wait_s)),
        ("classifies a cat photo", _classifies_photo),
        ("refuses a broken file", _refuses_broken_file),
    ]
    checks = []
    with httpx.Client(base_url=url.rstrip("/"), timeout=timeout_s) as client:
        for name, step in steps:
            try:
                ok, detail = step(client)
            except httpx.HTTPError as exc:
                ok, detail = False, f"{type(exc).__name__}: {exc}"
            checks.append(Check(name, ok, detail))
    return checks
