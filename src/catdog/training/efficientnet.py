"""EfficientNet-Lite0 (Tan & Le, 2019; the "Lite" variant for mobile CPUs), written out here.

Lite drops squeeze-excitation and swish (ReLU6 instead) and fixes the stem and head widths, so
every operator is a plain convolution, BatchNorm or ReLU6: fast and exact in ONNX Runtime. The
layout follows the TensorFlow original whose ImageNet weights `catdog.training.pretrained` loads:
"same" padding (asymmetric on stride-2 layers), BatchNorm epsilon 1e-3, inputs in [-1, 1].

Beside the cat/dog classifier the model may keep ImageNet's 1000-class classifier, frozen: its
softmax mass on ImageNet's cat and dog classes is the "is this a pet at all" score.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 - the torch convention
from torch import nn

BN_EPS = 1e-3
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
IMAGENET_CLASSES = 1000
# ImageNet-1k class indices of dog breeds (151-268) and domestic cats (281-285).
PET_CLASSES: tuple[int, ...] = (*range(151, 269), *range(281, 286))
# (expansion, kernel, stride of the first block, output channels, repeats) per stage.
STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
NUM_BLOCKS = sum(stage[-1] for stage in STAGES)


class SameConv(nn.Conv2d):
    """A bias-free convolution with TensorFlow's "same" padding for even input sides: stride 2
    pads one pixel more after than before, which the ImageNet weights were trained with."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(c_in, c_out, kernel, stride, padding=0, groups=groups, bias=False)
        total = max(kernel - stride, 0)
        before = total // 2
        self.pad = (before, total - before, before, total - before)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.pad))


def conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """Convolution, BatchNorm, ReLU6: index 0 the conv, 1 the norm (the weight mapping relies
    on these indices)."""
    return nn.Sequential(
        SameConv(c_in, c_out, kernel, stride, groups),
        nn.BatchNorm2d(c_out, eps=BN_EPS),
        nn.ReLU6(inplace=True),
    )


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand (absent at expansion 1), depthwise k x k, 1x1 linear
    projection, and the identity shortcut when shapes allow."""

    def __init__(self, c_in: int, c_out: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        hidden = c_in * expand
        self.expand = conv_bn(c_in, hidden, 1) if expand != 1 else None
        self.depthwise = conv_bn(hidden, hidden, kernel, stride, groups=hidden)
        self.project = nn.Sequential(SameConv(hidden, c_out, 1), nn.BatchNorm2d(c_out, eps=BN_EPS))
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.expand(x) if self.expand is not None else x
        out = self.project(self.depthwise(out))
        return x + out if self.residual else out  # type: ignore[no-any-return]


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0: 4.7 M parameters, 0.4 GFLOPs at 224 px.

    `frozen_blocks` keeps the stem and the first N blocks fixed (weights and BatchNorm
    statistics): the pretrained early layers stay as ImageNet trained them, and training only
    pays for the rest. `imagenet_head` keeps ImageNet's classifier (always frozen) for the
    not-a-pet score.
    """

    def __init__(
        self,
        num_classes: int = 2,
        *,
        dropout: float = 0.2,
        frozen_blocks: int = 0,
        imagenet_head: bool = False,
        temperature: float = 1.0,
        frozen_batchnorm: bool = False,
    ) -> None:
        super().__init__()
        if not 0 <= frozen_blocks <= NUM_BLOCKS:
            raise ValueError(f"frozen_blocks must be in 0..{NUM_BLOCKS}, not {frozen_blocks}")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, not {temperature}")
        self.frozen_blocks = frozen_blocks
        self.frozen_batchnorm = frozen_batchnorm
        # Calibration: the cat/dog logits are divided by a temperature fitted on val after
        # training, so that the served probabilities mean what they say.
        self.temperature = float(temperature)
        self.stem = conv_bn(3, STEM_CHANNELS, 3, 2)
        blocks: list[nn.Module] = []
        c_in = STEM_CHANNELS
        for expand, kernel, stride, c_out, repeats in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(c_in, c_out, expand, kernel, stride if i == 0 else 1))
                c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self.head = conv_bn(c_in, HEAD_CHANNELS, 1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(HEAD_CHANNELS, num_classes)
        self.imagenet_classifier = (
            nn.Linear(HEAD_CHANNELS, IMAGENET_CLASSES) if imagenet_head else None
        )
        for module in self.frozen_modules():
            module.requires_grad_(False)

    def frozen_modules(self) -> list[nn.Module]:
        """The parts that never train: the stem and first blocks, and ImageNet's classifier."""
        modules: list[nn.Module] = []
        if self.frozen_blocks:
            modules += [self.stem, *self.blocks[: self.frozen_blocks]]
        if self.imagenet_classifier is not None:
            modules.append(self.imagenet_classifier)
        return modules

    def train(self, mode: bool = True) -> EfficientNetLite0:
        """Frozen layers stay in eval mode: their BatchNorm statistics are ImageNet's."""
        super().train(mode)
        for module in self.frozen_modules():
            module.eval()
        if self.frozen_batchnorm:  # small batches: keep ImageNet's statistics everywhere
            for module in self.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.eval()
        return self

    def frozen_features(self, x: torch.Tensor) -> torch.Tensor:
        """The output of the frozen layers (the input itself when nothing is frozen)."""
        if not self.frozen_blocks:
            return x
        x = self.stem(x)
        for block in self.blocks[: self.frozen_blocks]:
            x = block(x)
        return x

    def pooled_from_frozen(self, x: torch.Tensor) -> torch.Tensor:
        """The 1280-d pooled features, from the frozen layers' output."""
        if not self.frozen_blocks:
            x = self.stem(x)
        for block in self.blocks[self.frozen_blocks :]:
            x = block(x)
        return self.head(x).mean(dim=(2, 3))  # type: ignore[no-any-return]

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised photos [N, 3, S, S] to pooled features [N, 1280]."""
        return self.pooled_from_frozen(self.frozen_features(x))

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        """Cat/dog logits from pooled features, calibrated by the temperature."""
        return self.classifier(self.dropout(pooled)) / self.temperature  # type: ignore[no-any-return]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.pooled(x))

    def imagenet_logits(self, pooled: torch.Tensor) -> torch.Tensor:
        """ImageNet's 1000 logits from pooled features (the model must keep that head)."""
        if self.imagenet_classifier is None:
            raise ValueError("this model has no ImageNet head (imagenet_head=False)")
        return self.imagenet_classifier(pooled)  # type: ignore[no-any-return]


def pet_score(imagenet_logits: torch.Tensor) -> torch.Tensor:
    """Softmax mass on ImageNet's cat and dog classes, [N, 1000] -> [N]: near 1 for a pet."""
    pets = torch.tensor(PET_CLASSES, device=imagenet_logits.device)
    log_all = torch.logsumexp(imagenet_logits, dim=1)
    log_pets = torch.logsumexp(imagenet_logits.index_select(1, pets), dim=1)
    return torch.exp(log_pets - log_all)
