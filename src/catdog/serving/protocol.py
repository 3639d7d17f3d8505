"""What the service and a runner's child process say to each other over their pipes.

The service's side (catdog.serving.runner, catdog.serving.batching) imports only this, never the
child's module: NumPy, Pillow and ONNX Runtime stay in the runner processes, and scores come back
as plain floats.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from catdog.errors import CatdogError
from catdog.monitoring.stats import Look

# One photo's scores as a runner returns them: the class probabilities, then the pet score
# when the model has one.
Scores = tuple[float, ...]


@dataclass(frozen=True)
class Load:
    """Load, warm and check the ONNX model at `path`; later messages name it by `key`."""

    key: str
    path: str
    threads: int
    spinning: bool


@dataclass(frozen=True)
class Run:
    """Decode `uploads` and run them as one batch through model `key`. The service sends a
    list; a runner reads them one at a time as they arrive (`child._arriving`)."""

    key: str
    uploads: Sequence[bytes] | Iterable[bytes]
    max_pixels: int


@dataclass(frozen=True)
class RunHeader:
    """On the wire, a Run is this header and then each upload as raw bytes: pickling the whole
    batch would copy every upload once more on each side (a 16-file batch of 10 MiB photos)."""

    key: str
    count: int
    max_pixels: int


@dataclass(frozen=True)
class Drop:
    """Forget model `key`: no job will name it again."""

    key: str


@dataclass(frozen=True)
class Ping:
    """Answer at once: the supervisor's check that an idle runner is alive."""


@dataclass(frozen=True)
class Ran:
    """A batch's outcomes in order, how long the model run itself took, and each decoded
    photo's `Look` for the prediction log (None where it was refused): the log then never
    decodes a photo again, which cost the event loop's process a tenth of the throughput."""

    outcomes: list[Scores | CatdogError]
    seconds: float
    looks: list[Look | None]


Message = Load | Run | Drop | Ping
