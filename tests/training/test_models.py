"""Architectures: shapes, sizes, options."""

from __future__ import annotations

import pytest
import torch

from catdog.errors import ConfigError
from catdog.training.efficientnet import EfficientNetLite0
from catdog.training.models import ARCHITECTURES, build_model, count_gflops, count_parameters


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("size", [32, 64, 100])
def test_every_architecture_maps_images_to_two_logits(arch: str, size: int) -> None:
    model = build_model(arch).eval()
    with torch.no_grad():
        out = model(torch.randn(3, 3, size, size))
    assert out.shape == (3, 2)
    assert out.dtype == torch.float32


def test_efficient_architecture_is_cheap_and_width_scales_it() -> None:
    base = count_gflops(build_model("mobilenet_se"), 128)
    wide = count_gflops(build_model("mobilenet_se", width=1.5), 128)
    assert base < 0.5
    assert wide < 0.5
    assert wide > 1.5 * base
    assert base < count_gflops(build_model("resnet18"), 128) / 5


def test_unknown_architecture_and_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown architecture"):
        build_model("vgg99")
    with pytest.raises(ConfigError, match="bad options"):
        build_model("simple_cnn", depth=7)
    with pytest.raises(ConfigError, match="only for efficientnet_lite0"):
        build_model("resnet18", pretrained=True)
    with pytest.raises(ConfigError, match="frozen_blocks"):
        build_model("efficientnet_lite0", frozen_blocks=99)


def test_efficientnet_lite0_has_its_published_size_and_cost() -> None:
    """4.65 M parameters with ImageNet's head (the paper's 4.7 M), about 0.8 GFLOPs at 224 px."""
    model = EfficientNetLite0(num_classes=1000)
    assert 4_600_000 < count_parameters(model) < 4_700_000
    assert 0.7 < count_gflops(model, 224) < 0.85


def test_frozen_layers_do_not_train_and_keep_their_statistics() -> None:
    model = EfficientNetLite0(frozen_blocks=11, imagenet_head=True).train()
    frozen = [model.stem, *model.blocks[:11], model.imagenet_classifier]
    assert all(not p.requires_grad for m in frozen for p in m.parameters())
    assert all(not m.training for m in frozen)
    assert all(p.requires_grad for p in model.blocks[11].parameters())
    assert model.blocks[11].training
    before = model.stem[1].running_mean.clone()
    model(torch.randn(4, 3, 64, 64))
    assert torch.equal(model.stem[1].running_mean, before)


def test_temperature_divides_the_logits() -> None:
    torch.manual_seed(0)
    plain = EfficientNetLite0().eval()
    warm = EfficientNetLite0(temperature=2.0).eval()
    warm.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(warm(x), plain(x) / 2)
