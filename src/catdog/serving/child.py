"""A runner's child process: its loop, answering the messages of `catdog.serving.protocol`.

The service's runner processes (catdog.serving.runner) start this program and speak to it over a
private pair of pipes, one message at a time: load a model, run a batch of uploads, drop a model,
answer a ping. The child imports only what decoding and the model need: no structlog, no
asyncio, nothing of the web service (13 MB less resident memory in every runner).
"""

from __future__ import annotations

import contextlib
import io
import signal
import sys
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
from PIL import Image

from catdog.errors import CatdogError, ImageError, ModelError, image_error
from catdog.monitoring.appearance import look
from catdog.monitoring.stats import Look
from catdog.predictor import OnnxClassifier
from catdog.preprocess import decode
from catdog.serving.heap import TRIM_AFTER_BYTES, release_free_memory
from catdog.serving.protocol import Drop, Load, Ping, Ran, Run, RunHeader, Scores


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
    # ONNX Runtime frees the parsed model (about twice the weights) once the session is built;
    # glibc would keep those pages resident.
    release_free_memory()
    return model


def _prepare(
    model: OnnxClassifier, data: bytes, max_pixels: int
) -> tuple[np.ndarray, Look] | CatdogError:
    """One upload to a model input and its look, or the 4xx that says why not. Whatever a
    decoder raises here is the photo's fault, whatever its type: Pillow's plugins raise OSError,
    ValueError, struct.error, IndexError... for files they cannot read, and none of that is a
    model fault."""
    refusal: CatdogError
    preprocessing = model.preprocessing
    try:
        decoded = decode(data, max_pixels=max_pixels, draft_size=preprocessing.decode_size)
        return preprocessing.to_array(decoded.image), look(decoded)
    except CatdogError as exc:
        refusal = exc
    except MemoryError:
        refusal = image_error("too_many_pixels", "the image needs more memory than a runner has")
    except Exception as exc:  # any decoder failure refuses this photo alone
        refusal = decode_failure(exc)
    # Only the reason travels back: a traceback would keep the upload's frames (its bytes)
    # alive as long as the reply.
    refusal.__traceback__ = refusal.__cause__ = refusal.__context__ = None
    return refusal


def decode_failure(exc: BaseException) -> ImageError:
    """The refusal for a decoder's own exception: `truncated` when the file ends early."""
    text = str(exc) or type(exc).__name__
    reason = "truncated" if "truncat" in text.lower() else "undecodable"
    return image_error(reason, f"cannot decode the image: {text}")


def _run(model: OnnxClassifier, message: Run) -> Ran:
    """Decode each upload (a bad one fails alone), then one model run for the rest."""
    prepared: list[np.ndarray | CatdogError] = []
    looks: list[Look | None] = []
    for data in message.uploads:
        outcome = _prepare(model, data, message.max_pixels)
        del data  # before the next is read: a runner holds one upload at a time (`_arriving`)
        array, seen = (outcome, None) if isinstance(outcome, CatdogError) else outcome
        prepared.append(array)
        looks.append(seen)
    started = time.perf_counter()
    scored = model.score_each(prepared)
    seconds = time.perf_counter() - started
    # Plain floats on the wire: the service's event loop never imports NumPy.
    outcomes: list[Scores | CatdogError] = [
        row if isinstance(row, CatdogError) else tuple(row.tolist()) for row in scored
    ]
    return Ran(outcomes, seconds, looks)


def _answer(models: dict[str, OnnxClassifier], message: object) -> object:
    """One message's reply; an error is the reply, never the end of the runner."""
    try:
        if isinstance(message, Load):
            models[message.key] = _load(message)
            return True
        if isinstance(message, Drop):
            models.pop(message.key, None)
            return True
        if isinstance(message, Ping):
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


def _arriving(receive: Connection, count: int) -> Iterator[bytes]:
    """A batch's uploads one at a time as they come off the pipe, each decoded and let go of
    before the next is read: a runner holds one 10 MiB upload, not the whole batch, and hands a
    large one's pages back at once. Every one is read even when the model is missing, so the
    next message starts where it should."""
    for _ in range(count):
        data = receive.recv_bytes()
        large = len(data) > TRIM_AFTER_BYTES
        yield data
        del data
        if large:
            release_free_memory()


def serve(receive: Connection, send: Connection) -> None:
    """Answer messages until the service closes the pipe."""
    # Ctrl-C reaches the whole process group: the service drains, then closes the pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    models: dict[str, OnnxClassifier] = {}
    batch_freed = False  # a batch ran since the last hand-back
    while True:
        try:
            message = receive.recv()
            if isinstance(message, RunHeader):
                uploads = _arriving(receive, message.count)
                reply = _answer(models, Run(message.key, uploads, message.max_pixels))
                for _ in uploads:  # the rest of a batch whose model was missing
                    pass
            else:
                reply = _answer(models, message)
        except (EOFError, OSError):
            return
        with contextlib.suppress(OSError):  # the service is gone: nobody left to answer
            send.send(reply)
        # After a batch, once idle: hand back the heap pages decoding freed (glibc keeps them),
        # 9 MiB less per runner after a load run, no slower. A supervisor's ping that comes
        # first only puts it off.
        batch_freed |= isinstance(message, RunHeader)
        if batch_freed and not receive.poll():
            release_free_memory()
            batch_freed = False


def main() -> None:
    """The child's entry (CHILD_PROGRAM): the pipe ends to read from and write to."""
    # Imported before the first message, not on it: while the service is still starting, this
    # runs beside it, and the first load then only builds its session.
    import onnxruntime  # noqa: F401, PLC0415

    serve(
        Connection(int(sys.argv[1]), writable=False),
        Connection(int(sys.argv[2]), readable=False),
    )
