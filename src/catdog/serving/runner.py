"""Runner processes: where uploads are decoded and run through the model, away from the event loop.

Each runner is a child process (`CHILD_PROGRAM`) that holds its own ONNX Runtime sessions and
answers one message at a time over a private pair of pipes: load a model, run a batch of uploads,
drop a model. The event loop's process keeps only HTTP: in one process, decoding and the model
contended with the loop for the GIL, and on 2 cores that cost a fifth of the throughput (README,
Benchmarks). A runner that dies is started again with the models it held.

Both ends of the protocol live here. Messages are pickled over pipes that only this process and
its own child hold.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import io
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from catdog.errors import CatdogError, ModelError
from catdog.predictor import OnnxClassifier

# How long closing a runner waits for it to exit before killing it.
EXIT_GRACE_S = 2.0
# Runners run at this nice value: under overload the event loop's process must win a core at
# once to accept connections and answer the 503s. CFS gives nice 10 about a tenth of the weight of
# nice 0, and the runners still get every core whenever the loop idles.
BACKGROUND_NICE = 10
# The child's program. Its priority is lowered first, before any import can start a thread, so
# that every thread it will have (ONNX Runtime's, NumPy's) inherits it.
CHILD_PROGRAM = (
    f"import os; os.nice({BACKGROUND_NICE}); from catdog.serving.runner import main; main()"
)

# One upload's outcome: its probabilities, or why it was refused.
Outcome = np.ndarray | CatdogError


@dataclass(frozen=True)
class Load:
    """Load, warm and check the ONNX model at `path`; later messages name it by `key`."""

    key: str
    path: str
    threads: int
    spinning: bool


@dataclass(frozen=True)
class Run:
    """Decode `uploads` and run them as one batch through model `key`."""

    key: str
    uploads: list[bytes]
    max_pixels: int


@dataclass(frozen=True)
class Drop:
    """Forget model `key`: no job will name it again."""

    key: str


@dataclass(frozen=True)
class Ran:
    """A batch's outcomes in order, and how long the model run itself took."""

    outcomes: list[Outcome]
    seconds: float


class RunnerStoppedError(ModelError):
    """The runner process ended while it held a batch (it is started again at once)."""

    reason = "runner_stopped"


class RunnerProcess:
    """The service's end of one runner: starts the child, talks to it, restarts it if it dies.

    Thread-safe: one call at a time (a runner thread's batches and a reload's loads take turns).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.RLock()
        self._models: dict[str, Load] = {}  # what a restarted child must load again
        self._process: subprocess.Popen[bytes] | None = None
        self._send: Connection | None = None
        self._receive: Connection | None = None

    @property
    def running(self) -> bool:
        """True from `start` until the pipes are closed."""
        return self._send is not None

    def start(self) -> None:
        """Start the child process, unless it runs already (`catdog serve` starts its runners
        early); it is ready for messages at once (they wait in the pipe)."""
        if self.running:
            return
        down_read, down_write = os.pipe()
        up_read, up_write = os.pipe()
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-c", CHILD_PROGRAM, str(down_read), str(up_write)],
                pass_fds=(down_read, up_write),
                stdin=subprocess.DEVNULL,
            )
        finally:
            os.close(down_read)
            os.close(up_write)
        self._send = Connection(down_write, readable=False)
        self._receive = Connection(up_read, writable=False)

    def load(self, message: Load) -> None:
        """Load a model into the child, or raise the ModelError that says why it cannot."""
        with self._lock:
            self._call(message)
            self._models[message.key] = message

    def drop(self, key: str) -> None:
        """Forget a model in the child."""
        with self._lock:
            self._models.pop(key, None)
            self._call(Drop(key))

    def run(self, message: Run) -> Ran:
        """Decode and run one batch in the child."""
        reply = self._call(message)
        if not isinstance(reply, Ran):
            raise ModelError(f"runner {self.name} answered {type(reply).__name__} to a batch")
        return reply

    def close(self) -> None:
        """Close the pipes (the child exits when it reads their end) and reap the child."""
        with self._lock:
            self._close()

    def _call(self, message: Load | Run | Drop) -> Any:
        with self._lock:
            if self._send is None or self._receive is None:
                raise RunnerStoppedError(f"runner {self.name} is not running")
            try:
                self._send.send(message)
                reply = self._receive.recv()
            except (EOFError, OSError) as exc:
                code = self._close()
                try:
                    self._restart()
                except OSError as start_failed:  # no new process: later calls say so at once
                    raise RunnerStoppedError(
                        f"runner {self.name} stopped (exit status {code}) and cannot be "
                        f"restarted: {start_failed}"
                    ) from exc
                raise RunnerStoppedError(
                    f"runner {self.name} stopped (exit status {code}) and was restarted"
                ) from exc
        if isinstance(reply, BaseException):
            raise reply
        return reply

    def _close(self) -> int | None:
        for end in (self._send, self._receive):
            if end is not None:
                end.close()
        self._send = self._receive = None
        if self._process is None:
            return None
        try:
            return self._process.wait(EXIT_GRACE_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            return self._process.wait()

    def _restart(self) -> None:
        """A new child with every model the old one held (one that fails to load stays out)."""
        self.start()
        send, receive = self._send, self._receive
        if send is None or receive is None:
            return
        for key, message in list(self._models.items()):
            try:
                send.send(message)
                reply = receive.recv()
            except (EOFError, OSError):
                return
            if isinstance(reply, BaseException):
                self._models.pop(key)


def runner_processes(count: int) -> list[RunnerProcess]:
    """One worker's runners, not started yet."""
    return [RunnerProcess(f"catdog-runner-{i}") for i in range(count)]


# ---- the child's end ----------------------------------------------------------------------------


def _load(message: Load) -> OnnxClassifier:
    """An OnnxClassifier, warmed by one photo, that answers in the contract's shape."""
    model = OnnxClassifier(Path(message.path), threads=message.threads, spinning=message.spinning)
    size = model.preprocessing.size
    photo = io.BytesIO()
    Image.new("RGB", (2 * size, 2 * size), (128, 96, 64)).save(photo, "JPEG")
    out = model.predict_batch(model.prepare(photo.getvalue())[np.newaxis])
    classes = len(model.classes)
    width = classes + int(model.has_pet_score)  # the pet score rides after the probabilities
    if out.shape != (1, width) or not np.allclose(out[:, :classes].sum(axis=1), 1, atol=1e-3):
        raise ModelError(
            f"{model.path} must output probabilities of shape [N, {classes}] "
            f"that sum to 1; got {out.tolist()}"
        )
    _release_free_memory()
    return model


def _release_free_memory() -> None:
    """Hand freed heap pages back to the OS. ONNX Runtime frees the parsed model (about twice
    the weights) once the session is built, but glibc keeps the pages: for ResNet-18 that is
    ~75 MB of resident memory that nothing uses."""
    libc_name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(libc_name) if libc_name else None
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def _prepare(model: OnnxClassifier, data: bytes, max_pixels: int) -> Outcome:
    try:
        return model.prepare(data, max_pixels=max_pixels)
    except CatdogError as exc:
        return exc


def _run(model: OnnxClassifier, message: Run) -> Ran:
    """Decode each upload (a bad one fails alone), then one model run for the rest."""
    prepared = [_prepare(model, data, message.max_pixels) for data in message.uploads]
    started = time.perf_counter()
    outcomes = model.score_each(prepared)
    return Ran(outcomes, time.perf_counter() - started)


def _answer(models: dict[str, OnnxClassifier], message: object) -> object:
    """One message's reply; an error is the reply, never the end of the runner."""
    try:
        if isinstance(message, Load):
            models[message.key] = _load(message)
            return True
        if isinstance(message, Drop):
            models.pop(message.key, None)
            return True
        if isinstance(message, Run):
            if message.key not in models:
                return ModelError(f"model {message.key} is not loaded in this runner")
            return _run(models[message.key], message)
        return ModelError(f"a runner cannot handle {type(message).__name__}")
    except CatdogError as exc:
        return exc
    except Exception as exc:  # ONNX Runtime's errors are untyped; fail this message only
        return ModelError(f"the model failed: {exc}")


def serve(receive: Connection, send: Connection) -> None:
    """Answer messages until the service closes the pipe."""
    # Ctrl-C reaches the whole process group: the service drains, then closes the pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    models: dict[str, OnnxClassifier] = {}
    while True:
        try:
            message = receive.recv()
        except (EOFError, OSError):
            return
        with contextlib.suppress(OSError):  # the service is gone: nobody left to answer
            send.send(_answer(models, message))


def main() -> None:
    """The child's entry (CHILD_PROGRAM): the pipe ends to read from and write to."""
    # Imported before the first message, not on it: while the service is still starting, this
    # runs beside it, and the first load then only builds its session.
    import onnxruntime  # noqa: F401, PLC0415

    serve(
        Connection(int(sys.argv[1]), writable=False),
        Connection(int(sys.argv[2]), readable=False),
    )
