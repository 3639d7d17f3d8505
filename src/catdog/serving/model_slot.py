"""The model being served, and how it is replaced without failing a request.

A reload resolves, loads and warms the new model in a thread while the old one keeps serving,
then swaps one reference. Requests take the reference once, at their start, so those in flight
finish on the model that preprocessed them. With several worker processes, a reload writes the
new model to a shared "generation" file that every worker polls, so all of them follow.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import io
import json
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import structlog
from PIL import Image

from catdog.errors import CatdogError, ModelError, ServiceUnavailableError
from catdog.model_store import resolve_model
from catdog.predictor import OnnxClassifier
from catdog.serving.metrics import ServiceMetrics
from catdog.serving.priority import lower_this_thread

log = structlog.get_logger("catdog.serving")

FOLLOW_INTERVAL_S = 1.0


def release_free_memory() -> None:
    """Hand freed heap pages back to the OS. ONNX Runtime frees the parsed model (about twice
    the weights) once the session is built, but glibc keeps the pages: for ResNet-18 that is
    ~75 MB of resident memory that nothing uses."""
    libc_name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(libc_name) if libc_name else None
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def load_warm_model(spec: str | None, *, threads: int, spinning: bool = False) -> OnnxClassifier:
    """Resolve, load, decode a photo and run the model once, so no request pays for a first
    time. The warm-up also proves the model answers in the contract's shape."""
    model = OnnxClassifier(resolve_model(spec), threads=threads, spinning=spinning)
    size = model.preprocessing.size
    photo = io.BytesIO()
    Image.new("RGB", (2 * size, 2 * size), (128, 96, 64)).save(photo, "JPEG")
    out = model.predict_batch(model.prepare(photo.getvalue())[np.newaxis])
    if out.shape != (1, len(model.classes)) or not np.allclose(out.sum(axis=1), 1, atol=1e-3):
        raise ModelError(
            f"{model.path} must output probabilities of shape [N, {len(model.classes)}] "
            f"that sum to 1; got {out.tolist()}"
        )
    release_free_memory()
    return model


def _read_generation(path: Path) -> tuple[str, str | None] | None:
    """(generation, model spec) from the shared file, or None if there is none (yet)."""
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        return str(state["generation"]), state["model"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_generation(path: Path, generation: str, spec: str | None) -> None:
    """Replace the shared file atomically: a worker never reads half of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"generation": generation, "model": spec}), encoding="utf-8")
    tmp.replace(path)


class ModelSlot:
    """Holds the served model; swaps it whole."""

    def __init__(
        self,
        spec: str | None,
        *,
        threads: int,
        metrics: ServiceMetrics,
        spinning: bool = False,
        reload_file: Path | None = None,
    ) -> None:
        self.spec = spec
        self._threads = threads
        self._spinning = spinning
        self._metrics = metrics
        self._reload_file = reload_file
        self._model: OnnxClassifier | None = None
        self._generation: str | None = None
        self._lock = asyncio.Lock()
        self.load_error: CatdogError | None = None

    @property
    def ready(self) -> bool:
        """True once a warmed model is serving."""
        return self._model is not None

    @property
    def current(self) -> OnnxClassifier:
        """The model to use for a request that starts now."""
        if self._model is None:
            detail = "the model is still loading"
            if self.load_error is not None:
                detail = f"the model failed to load: {self.load_error.detail}"
            raise ServiceUnavailableError(detail, reason="not_ready")
        return self._model

    async def load_initial(self) -> None:
        """Load the configured model (or, after a reload, the one the other workers serve)."""
        async with self._lock:  # a reload sent during start-up waits, then wins
            spec = self.spec
            shared = _read_generation(self._reload_file) if self._reload_file else None
            if shared is not None:
                self._generation, spec = shared
            try:
                await self._load(spec)
            except CatdogError as exc:
                self.load_error = exc
                log.error("model_load_failed", model=spec, reason=exc.reason, detail=exc.detail)

    async def reload(self, spec: str | None) -> tuple[OnnxClassifier, OnnxClassifier | None]:
        """Load and warm `spec`, swap it in, tell the other workers. Returns (new, old)."""
        async with self._lock:
            previous = self._model
            try:
                model = await self._load(spec)
            except CatdogError:
                self._metrics.reloads.labels(outcome="failed").inc()
                raise
            if self._reload_file is not None:
                self._generation = uuid.uuid4().hex
                await asyncio.to_thread(
                    _write_generation, self._reload_file, self._generation, spec
                )
        self._metrics.reloads.labels(outcome="ok").inc()
        return model, previous

    async def follow(self, interval_s: float = FOLLOW_INTERVAL_S) -> None:
        """Poll the shared generation file; load what another worker reloaded. Runs forever."""
        if self._reload_file is None:
            return
        while True:
            await asyncio.sleep(interval_s)
            shared = await asyncio.to_thread(_read_generation, self._reload_file)
            if shared is None or shared[0] == self._generation:
                continue
            async with self._lock:
                self._generation, spec = shared
                try:
                    await self._load(spec)
                except CatdogError as exc:
                    log.error("model_follow_failed", model=spec, reason=exc.reason)

    async def _load(self, spec: str | None) -> OnnxClassifier:
        # A fresh lowered thread per load: ONNX Runtime's own threads inherit its priority.
        with ThreadPoolExecutor(1, "catdog-load", initializer=lower_this_thread) as loader:
            model = await asyncio.get_running_loop().run_in_executor(
                loader,
                partial(load_warm_model, spec, threads=self._threads, spinning=self._spinning),
            )
        self._model = model
        self.spec = spec
        self.load_error = None
        self._metrics.set_model(str(model.card.get("name", "catdog")), model.version)
        log.info("model_loaded", model=spec, path=str(model.path), model_version=model.version)
        return model
