"""The model being served, and how it is replaced without failing a request.

A reload resolves the new model, loads and warms it in every runner process while the old one
keeps serving, then swaps one reference. Requests take the reference once, at their start, so
those in flight finish on the model they were admitted for; the runners drop the old model after
its last job. With several worker processes, a reload writes the new model to a shared
"generation" file that every worker polls, so all of them follow.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import structlog

from catdog.errors import CatdogError, ServiceUnavailableError
from catdog.model_store import REGISTRY_SCHEMES, resolve_model
from catdog.prediction import ServedModel
from catdog.serving.batching import MicroBatcher
from catdog.serving.metrics import ServiceMetrics

log = structlog.get_logger("catdog.serving")

FOLLOW_INTERVAL_S = 1.0
# A follower that cannot load what another worker reloaded tries again, waiting twice as long
# each time up to this, so that every worker converges on one model without hammering a store.
FOLLOW_BACKOFF_MAX_S = 30.0


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
        batcher: MicroBatcher,
        metrics: ServiceMetrics,
        reload_file: Path | None = None,
    ) -> None:
        self.spec = spec
        self._batcher = batcher
        self._metrics = metrics
        self._reload_file = reload_file
        self._model: ServedModel | None = None
        self._generation: str | None = None
        self._lock = asyncio.Lock()
        self.load_error: CatdogError | None = None
        # Registry downloads: one folder per worker, each model in a subfolder, removed once
        # it is neither served nor draining.
        self.cache = Path(tempfile.mkdtemp(prefix="catdog-models-"))
        self._downloads: dict[str, Path] = {}  # model key -> its download folder
        self._failed: tuple[str, str | None] | None = None  # a generation that failed to load

    @property
    def ready(self) -> bool:
        """True once a warmed model is serving."""
        return self._model is not None

    @property
    def current(self) -> ServedModel:
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
                spec = shared[1]
            try:
                await self._load(spec)
                if shared is not None:  # followed only once loaded: else `follow` retries
                    self._generation = shared[0]
            except CatdogError as exc:
                self.load_error = exc
                log.error("model_load_failed", model=spec, reason=exc.reason, detail=exc.detail)

    async def reload(self, spec: str | None) -> tuple[ServedModel, ServedModel | None]:
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

    def _forget_download(self, key: str) -> None:
        """A replaced model left the runners: its download is not needed any more."""
        folder = self._downloads.pop(key, None)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    async def follow(self, interval_s: float = FOLLOW_INTERVAL_S) -> None:
        """Poll the shared generation file; load what another worker reloaded. Runs forever.
        A generation counts as followed only once it is loaded: one that fails is tried again
        with backoff until it loads or another replaces it."""
        if self._reload_file is None:
            return
        backoff = interval_s
        retry_at = 0.0
        while True:
            await asyncio.sleep(interval_s)
            shared = await asyncio.to_thread(_read_generation, self._reload_file)
            if shared is None or shared[0] == self._generation:
                continue
            loop_time = asyncio.get_running_loop().time()
            if loop_time < retry_at and shared == self._failed:
                continue
            async with self._lock:
                generation, spec = shared
                try:
                    await self._load(spec)
                except CatdogError as exc:
                    self._failed = shared
                    retry_at = loop_time + backoff
                    log.error(
                        "model_follow_failed",
                        model=spec,
                        reason=exc.reason,
                        detail=exc.detail,
                        retry_in_s=backoff,
                    )
                    backoff = min(backoff * 2, FOLLOW_BACKOFF_MAX_S)
                    continue
                self._generation = generation
                self._failed = None
                backoff = interval_s

    def close(self) -> None:
        """Remove the registry downloads (the runners have stopped)."""
        shutil.rmtree(self.cache, ignore_errors=True)

    async def _load(self, spec: str | None) -> ServedModel:
        download: Path | None = None
        if spec is not None and spec.startswith(REGISTRY_SCHEMES):
            download = Path(tempfile.mkdtemp(dir=self.cache))
        try:
            path = await asyncio.to_thread(resolve_model, spec, cache_dir=download)
            model = await asyncio.to_thread(ServedModel.read, path, uuid.uuid4().hex)
            await self._batcher.load(model, serving=self._model is not None)
        except BaseException:
            if download is not None:
                shutil.rmtree(download, ignore_errors=True)
            raise
        if download is not None:
            self._downloads[model.key] = download
        previous, self._model = self._model, model
        if previous is not None:
            self._batcher.retire(previous, on_dropped=self._forget_download)
        self.spec = spec
        self.load_error = None
        self._metrics.set_model(str(model.card.get("name", "catdog")), model.version)
        log.info("model_loaded", model=spec, path=str(model.path), model_version=model.version)
        return model
