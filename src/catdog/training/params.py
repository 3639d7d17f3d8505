"""The `train:` section of params.yaml: every knob of `catdog train`, validated in one place.

Light (pydantic only) so the CLI can import it without torch. Defaults train a quick model on the
bundled sample in about a minute on a laptop CPU (params.yaml adds 96 px photos and 64 px crops);
`params/cpu-recipe.yaml` is the 30-minute recipe for the full data set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Device = Literal["auto", "cpu", "cuda", "mps"]


class AugmentParams(BaseModel):
    """Batch-wise augmentation, applied on the training device to uint8 photos."""

    model_config = ConfigDict(extra="forbid")

    # Random resized crop: the fraction of the photo's area kept, and the aspect-ratio range.
    crop_scale: tuple[float, float] = (0.5, 1.0)
    crop_ratio: tuple[float, float] = (0.75, 1.333)
    # Side of the training crops; None = the image size. Smaller crops train faster, and a net
    # trained on random crops at lower resolution scores best when tested a little larger
    # (Touvron et al., "Fixing the train-test resolution discrepancy", 2019).
    crop_size: int | None = Field(None, ge=32)
    # Progressive resizing: crops grow from crop_size to this side as training progresses
    # (cheap small crops early, the test resolution at the end); None keeps crop_size.
    crop_size_end: int | None = Field(None, ge=32)
    hflip: bool = True
    # Colour jitter: each factor is drawn from [1 - x, 1 + x] per photo.
    brightness: float = Field(0.1, ge=0, lt=1)
    contrast: float = Field(0.1, ge=0, lt=1)
    saturation: float = Field(0.1, ge=0, lt=1)
    # Mixup / CutMix: Beta(alpha, alpha) mixing of photo pairs; 0 turns each off. When both
    # are on, each batch uses one of them, chosen at random.
    mixup_alpha: float = Field(0.0, ge=0)
    cutmix_alpha: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _ranges_are_ordered(self) -> AugmentParams:
        low, high = self.crop_scale
        if not 0 < low <= high <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, not {self.crop_scale}")
        if not 0 < self.crop_ratio[0] <= self.crop_ratio[1]:
            raise ValueError(f"crop_ratio must satisfy 0 < low <= high, not {self.crop_ratio}")
        return self


class TrainParams(BaseModel):
    """How `catdog train` fits a model; each field can be overridden from the command line."""

    model_config = ConfigDict(extra="forbid")

    data: Path = Path("data/prepared")
    # The original photos that data's manifest.csv lists (its `source_path` is relative to this):
    # training decodes them as serving does. None trains on the class folders under `data`.
    raw: Path | None = None
    arch: str = "simple_cnn"
    # The architecture's own options, e.g. {width: 48} for simple_cnn.
    arch_options: dict[str, Any] = Field(default_factory=dict)
    pretrained: bool = False
    # Side of the square training photos; None keeps the prepared data's size.
    image_size: int | None = Field(None, ge=32)
    epochs: int = Field(15, ge=1)
    # Stop early at the end of the epoch that passes this wall-clock budget. The learning-rate
    # schedule then follows the clock too, so it has annealed when the budget runs out.
    max_minutes: float | None = Field(None, gt=0)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(0.05, ge=0)
    warmup_epochs: float = Field(1.0, ge=0)
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    # Exponential moving average of the weights, evaluated and saved instead of the raw
    # weights; None turns it off.
    ema_decay: float | None = Field(None, gt=0, lt=1)
    # Early stopping: epochs without a better val score (see monitor) before stopping; 0 = off.
    patience: int = Field(0, ge=0)
    # What "better on val" means, for checkpoint.pt and early stopping. Log loss by default:
    # on a few hundred val photos accuracy moves in coarse, noisy steps, the loss smoothly.
    monitor: Literal["val_loss", "val_accuracy"] = "val_loss"
    seed: int = 42
    # Deterministic kernels and no cuDNN benchmarking on the GPU too (slower); always on CPU.
    deterministic: bool = False
    device: Device = "auto"
    # bf16 autocast on CUDA (ignored on CPU and MPS).
    amp: bool = True
    # torch.compile the model: pays off on GPUs for long runs, rarely on a CPU.
    compile: bool = False
    augment: AugmentParams = AugmentParams()
    # Outputs: best-on-val weights (for export), resumable state, DVC metrics and plots.
    checkpoint: Path = Path("models/checkpoint.pt")
    last_checkpoint: Path = Path("models/last.pt")
    metrics_file: Path = Path("models/train_metrics.json")
    history_file: Path = Path("models/train_history.csv")
    # MLflow experiment; tracking off skips MLflow entirely. `catdog export` registers models.
    tracking: bool = True
    experiment: str = "catdog"
    # How many of the worst test mistakes the MLflow grid shows.
    mistakes_shown: int = Field(16, ge=0)
