"""The architectures `catdog train` can fit, all mapping normalised [N, 3, S, S] to logits [N, 2].

- `simple_cnn`: a plain from-scratch baseline (conv-BN-ReLU-pool stages), the number to beat.
- `resnet18`: torchvision's ResNet-18, from scratch (no ImageNet weights: those would be a
  download at run time).
- `mobilenet_se`: a compact MobileNetV2-style net (inverted residuals, depthwise convolutions,
  squeeze-excitation, width multiplier) sized for small photos: cheap to serve on a CPU core.
- `efficientnet_lite0`: EfficientNet-Lite0 (`catdog.training.efficientnet`), from ImageNet
  weights that an installed package ships (`pretrained=True`): the reference model's backbone.

Every model ends in global average pooling, so any input size S >= 32 works, and uses only
operators that export to ONNX with a dynamic batch.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from catdog.errors import ConfigError
from catdog.preprocess import IMAGENET_MEAN, IMAGENET_STD
from catdog.training.efficientnet import EfficientNetLite0
from catdog.training.pretrained import load_imagenet_weights

ARCHITECTURES: tuple[str, ...] = ("simple_cnn", "resnet18", "mobilenet_se", "efficientnet_lite0")
PRETRAINED: tuple[str, ...] = ("efficientnet_lite0",)
# Input normalisation (mean, std) per architecture: the TensorFlow-trained EfficientNet-Lite
# weights expect pixels scaled to [-1, 1]; the rest use ImageNet's statistics.
_HALF = (0.5, 0.5, 0.5)
NORMALISATION: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "efficientnet_lite0": (_HALF, _HALF),
}


def _make_divisible(channels: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of 8 (fast kernels), never below 90% of the request."""
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * channels else rounded


def _conv_bn_act(
    c_in: int, c_out: int, *, kernel: int = 3, stride: int = 1, groups: int = 1, act: bool = True
) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
    ]
    if act:
        layers.append(nn.SiLU(inplace=True))
    return nn.Sequential(*layers)


class SimpleCNN(nn.Module):
    """Four conv-BN-ReLU-maxpool stages, then global pooling: the from-scratch baseline."""

    def __init__(self, num_classes: int = 2, width: int = 32, dropout: float = 0.2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for stage in range(4):
            c_out = width * 2**stage
            layers += [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))  # type: ignore[no-any-return]


class SqueezeExcite(nn.Module):
    """Channel attention: reweight channels by a gate computed from their global average."""

    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, reduced, 1),
            nn.SiLU(inplace=True),
            nn.Conv2d(reduced, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)  # type: ignore[no-any-return]


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, depthwise 3x3, optional SE, 1x1 linear projection."""

    def __init__(self, c_in: int, c_out: int, stride: int, expand: int, se: bool) -> None:
        super().__init__()
        hidden = c_in * expand
        self.residual = stride == 1 and c_in == c_out
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_conv_bn_act(c_in, hidden, kernel=1))
        layers.append(_conv_bn_act(hidden, hidden, stride=stride, groups=hidden))
        if se:
            layers.append(SqueezeExcite(hidden, _make_divisible(c_in / 4)))
        project_bn = nn.BatchNorm2d(c_out)
        if self.residual:
            # Zero-init: every residual block starts as the identity, which makes
            # from-scratch training markedly more stable.
            nn.init.zeros_(project_bn.weight)
        layers += [nn.Conv2d(hidden, c_out, 1, bias=False), project_bn]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.residual else out  # type: ignore[no-any-return]


# (expansion, channels, repeats, stride of the first block, squeeze-excite) per stage.
# Five stride-2 steps in all: a 128 px photo ends as a 4x4 map, a 64 px one as 2x2.
_MOBILE_STAGES: tuple[tuple[int, int, int, int, bool], ...] = (
    (1, 16, 1, 1, False),
    (4, 24, 2, 2, False),
    (4, 40, 2, 2, True),
    (4, 80, 3, 2, True),
    (6, 112, 2, 1, True),
    (6, 160, 2, 2, True),
)


class MobileNetSE(nn.Module):
    """A compact inverted-residual net; `width` scales every layer's channels."""

    def __init__(
        self, num_classes: int = 2, width: float = 1.0, dropout: float = 0.2, se: bool = True
    ) -> None:
        super().__init__()
        c_in = _make_divisible(32 * width)
        layers: list[nn.Module] = [_conv_bn_act(3, c_in, stride=2)]
        for expand, channels, repeats, stride, stage_se in _MOBILE_STAGES:
            c_out = _make_divisible(channels * width)
            for i in range(repeats):
                block_stride = stride if i == 0 else 1
                layers.append(InvertedResidual(c_in, c_out, block_stride, expand, se and stage_se))
                c_in = c_out
        head = _make_divisible(max(640.0, 640 * width))
        layers.append(_conv_bn_act(c_in, head, kernel=1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(head, num_classes)
        )
        # He init by fan-in keeps every layer's output variance near 1, where BatchNorm's
        # running statistics start: by fan-out (torchvision's choice) a depthwise layer's output
        # variance is 2 / channels, and evaluation is off until many steps have corrected it.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))  # type: ignore[no-any-return]


def _resnet18(num_classes: int) -> nn.Module:
    from torchvision.models import resnet18  # noqa: PLC0415 - torchvision is slow to import

    model: nn.Module = resnet18(weights=None, num_classes=num_classes)
    return model


def input_normalisation(
    arch: str,
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """(mean, std) the architecture's inputs are normalised with; recorded in every card."""
    return NORMALISATION.get(arch, (IMAGENET_MEAN, IMAGENET_STD))


def build_model(
    arch: str, *, num_classes: int = 2, pretrained: bool = False, **arch_kwargs: Any
) -> nn.Module:
    """A fresh model of the named architecture; `arch_kwargs` are its own knobs (e.g. width)."""
    if pretrained and arch not in PRETRAINED:
        raise ConfigError(
            f"pretrained weights exist only for {', '.join(PRETRAINED)}, not {arch!r}"
        )
    try:
        if arch == "simple_cnn":
            return SimpleCNN(num_classes, **arch_kwargs)
        if arch == "mobilenet_se":
            return MobileNetSE(num_classes, **arch_kwargs)
        if arch == "resnet18":
            if arch_kwargs:
                raise TypeError(f"resnet18 takes no options, got {sorted(arch_kwargs)}")
            return _resnet18(num_classes)
        if arch == "efficientnet_lite0":
            model = EfficientNetLite0(num_classes, **arch_kwargs)
            return load_imagenet_weights(model) if pretrained else model
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad options for {arch}: {exc}") from exc
    raise ConfigError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")


def count_gflops(model: nn.Module, image_size: int) -> float:
    """Forward GFLOPs for one image (2 x multiply-adds of convolutions and linear layers)."""
    from torch.utils.flop_counter import FlopCounterMode  # noqa: PLC0415

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 3, image_size, image_size, device=device))
    model.train(was_training)
    return counter.get_total_flops() / 1e9


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters: the model's size on disk is about 4 bytes each."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
