"""`catdog predict`: classify local files with the service's own classifier, no server.

Same OnnxClassifier, same preprocessing, same batching of arrays as the service, so a file gets
the answer here that it would get over HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catdog.errors import CatdogError
from catdog.prediction import Prediction
from catdog.predictor import OnnxClassifier
from catdog.preprocess import DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class FileAnswer:
    """A file's prediction, or why it was refused."""

    path: Path
    prediction: Prediction | None = None
    error: CatdogError | None = None


def expand(paths: Sequence[Path]) -> list[Path]:
    """Files as given; directories become the files under them (sorted, hidden ones skipped)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        else:
            found.append(path)
    return found


def _prepare(model: OnnxClassifier, path: Path, max_pixels: int) -> np.ndarray | CatdogError:
    try:
        return model.prepare(path.read_bytes(), max_pixels=max_pixels)
    except CatdogError as exc:
        return exc
    except OSError as exc:
        return CatdogError(f"cannot read {path}: {exc.strerror}", reason="unreadable")


def classify_files(
    model: OnnxClassifier,
    paths: Sequence[Path],
    *,
    batch_size: int = 32,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    on_file: Callable[[], None] | None = None,
) -> Iterator[FileAnswer]:
    """Classify files in batches, yielding one answer per file in order; never stops early."""
    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        prepared = [_prepare(model, path, max_pixels) for path in chunk]
        for path, item in zip(chunk, model.score_each(prepared), strict=True):
            if isinstance(item, CatdogError):
                yield FileAnswer(path, error=item)
            else:
                yield FileAnswer(path, prediction=model.to_prediction(item))
            if on_file is not None:
                on_file()
