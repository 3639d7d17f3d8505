"""An exported model ready to classify: ONNX Runtime plus the preprocessing its card names.

`evaluate`, `predict` and the service all classify through this class, so what is measured
offline is exactly what is served. No torch: ONNX Runtime, Pillow and NumPy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from catdog.errors import CatdogError, ModelError
from catdog.model_store import read_card
from catdog.prediction import Prediction, card_pet_threshold, to_prediction
from catdog.preprocess import DEFAULT_MAX_PIXELS, Preprocessing

INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
# Models that keep ImageNet's classifier also output the softmax mass on its cat and dog classes.
PET_OUTPUT_NAME = "pet_score"


def card_preprocessing(onnx_path: Path, card: dict[str, Any]) -> Preprocessing:
    """The preprocessing a model card names, or a ModelError that says what is wrong with it."""
    try:
        return Preprocessing.from_dict(card["preprocessing"])
    except (KeyError, TypeError, ValueError) as exc:
        detail = f"model card of {onnx_path} has no usable preprocessing: {exc}"
        raise ModelError(detail) from exc


class OnnxClassifier:
    """Load an ONNX export and its card once; classify arrays, bytes or files many times."""

    def __init__(
        self,
        onnx_path: Path,
        *,
        threads: int | None = None,
        card: dict[str, Any] | None = None,
        spinning: bool = True,
    ) -> None:
        """`card` stands in for the card file: export tests a model before writing its card.
        `spinning=False` stops idle ONNX Runtime threads from busy-waiting, which leaves the CPU
        to the service's decoding threads between batches."""
        import onnxruntime as ort  # noqa: PLC0415 - keeps `catdog --help` fast

        self.path = onnx_path
        self.card: dict[str, Any] = card if card is not None else read_card(onnx_path)
        self.preprocessing = card_preprocessing(onnx_path, self.card)
        self.version = str(self.card.get("version", "unknown"))
        # Under this pet score a photo is "not a pet"; CATDOG_PET_THRESHOLD may override it.
        self.pet_threshold = card_pet_threshold(self.card)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        # No memory pattern: ONNX Runtime plans a block for each input shape it meets, and a
        # service's batches come in every size up to CATDOG_MAX_BATCH; its arena keeps what they
        # took (without: 9 MiB less RSS per int8 runner after a load run, no slower, measured
        # alternately with catdog simulate).
        options.enable_mem_pattern = False
        if not spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(
                str(onnx_path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ONNX Runtime raises its own untyped errors for bad files
            raise ModelError(f"ONNX Runtime cannot load {onnx_path}: {exc}") from exc
        names = [i.name for i in self.session.get_inputs()]
        if names != [INPUT_NAME]:
            raise ModelError(f"{onnx_path} must have one input named {INPUT_NAME!r}, has {names}")
        outputs = [o.name for o in self.session.get_outputs()]
        if OUTPUT_NAME not in outputs:
            raise ModelError(f"{onnx_path} has no output named {OUTPUT_NAME!r}, has {outputs}")
        self._outputs = [OUTPUT_NAME] + [n for n in outputs if n == PET_OUTPUT_NAME]

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names in the order of the model's output columns."""
        return self.preprocessing.classes

    @property
    def has_pet_score(self) -> bool:
        """Whether the model also says if a photo shows a pet at all."""
        return PET_OUTPUT_NAME in self._outputs

    def predict_batch(self, batch: np.ndarray) -> np.ndarray:
        """Normalised float32 [N, 3, S, S] to scores [N, classes (+1)]: the class
        probabilities, then the pet score when the model has one."""
        outputs = self.session.run(self._outputs, {INPUT_NAME: batch})
        columns = [np.asarray(outputs[0], dtype=np.float32)]
        if len(outputs) > 1:
            columns.append(np.asarray(outputs[1], dtype=np.float32).reshape(-1, 1))
        return np.concatenate(columns, axis=1) if len(columns) > 1 else columns[0]

    def score_each(
        self, prepared: Sequence[np.ndarray | CatdogError]
    ) -> list[np.ndarray | CatdogError]:
        """One model run for the arrays among `prepared`; each refusal stays in its place, so
        one bad photo never fails the others."""
        arrays = [item for item in prepared if isinstance(item, np.ndarray)]
        rows = iter(self.predict_batch(np.stack(arrays)) if arrays else [])
        return [item if isinstance(item, CatdogError) else next(rows) for item in prepared]

    def prepare(self, source: bytes | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
        """One photo to a model input; raises ImageError for what is not a usable photo."""
        return self.preprocessing(source, max_pixels=max_pixels)

    def to_prediction(self, scores: np.ndarray) -> Prediction:
        """One row of `predict_batch` to a labelled answer."""
        return to_prediction(self.classes, scores.tolist(), self.pet_threshold)

    def classify(self, sources: Sequence[bytes | Path]) -> list[Prediction]:
        """Classify several photos in one batch (raises on the first unusable one)."""
        if not sources:
            return []
        batch = np.stack([self.prepare(s) for s in sources])
        return [self.to_prediction(row) for row in self.predict_batch(batch)]
