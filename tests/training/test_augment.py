"""Batch augmentation: the identity when turned off, reproducible under a generator, in range."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from photo_sets import NO_AUGMENT

from catdog.training.augment import augment, colour_jitter, crop_side, mix, soft_targets
from catdog.training.params import AugmentParams


def _photos(n: int = 6, size: int = 40) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(1)).to(
        torch.uint8
    )


def test_everything_off_is_the_identity() -> None:
    photos = _photos()
    out = augment(photos, NO_AUGMENT, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, photos.float(), atol=1e-3, rtol=0)


def test_flip_alone_mirrors_about_half_the_photos() -> None:
    photos = _photos(n=64)
    params = NO_AUGMENT.model_copy(update={"hflip": True})
    out = augment(photos, params, torch.Generator().manual_seed(0))
    pairs = list(zip(out, photos, strict=True))
    mirrored = [torch.allclose(o, p.float().flip(-1), atol=1e-3) for o, p in pairs]
    same = [torch.allclose(o, p.float(), atol=1e-3) for o, p in pairs]
    assert all(m != s for m, s in zip(mirrored, same, strict=True))
    assert 16 < sum(mirrored) < 48


def test_same_generator_seed_same_batch_and_values_stay_in_range() -> None:
    photos = _photos()
    params = AugmentParams(crop_size=32)
    first = augment(photos, params, torch.Generator().manual_seed(5))
    second = augment(photos, params, torch.Generator().manual_seed(5))
    third = augment(photos, params, torch.Generator().manual_seed(6))
    assert first.shape == (6, 3, 32, 32)
    assert torch.equal(first, second)
    assert not torch.equal(first, third)
    assert first.min() >= 0 and first.max() <= 255


def test_saturation_zero_makes_grey() -> None:
    photos = _photos().float()
    params = NO_AUGMENT.model_copy(update={"saturation": 0.999})
    out = colour_jitter(photos, params, torch.Generator().manual_seed(0))
    assert out.shape == photos.shape
    assert not torch.equal(out, photos)


def test_mixup_and_cutmix_targets_are_distributions_weighted_like_the_pixels() -> None:
    labels = torch.tensor([0, 1, 1, 0])
    targets = soft_targets(labels, 2, 0.1)
    torch.testing.assert_close(targets.sum(1), torch.ones(4))
    assert targets[0, 0].item() == pytest.approx(0.95)
    images = torch.stack([torch.full((3, 8, 8), float(i)) for i in range(4)])
    for params in (AugmentParams(mixup_alpha=0.4), AugmentParams(cutmix_alpha=1.0)):
        mixed, mixed_targets = mix(
            images, soft_targets(labels, 2, 0.0), params, np.random.default_rng(3)
        )
        torch.testing.assert_close(mixed_targets.sum(1), torch.ones(4))
        # Photo 1 (a dog, all pixels 1) mixed with photo 0 (a cat, all pixels 0): the share of
        # its pixels that stayed 1 is its dog target.
        own_share = mixed[1].mean().item()
        torch.testing.assert_close(mixed_targets[1, 1].item(), own_share, atol=1e-5, rtol=0)
    same, same_targets = mix(images, targets, AugmentParams(), np.random.default_rng(0))
    assert same is images and same_targets is targets


def test_progressive_crops_grow_in_16_px_steps_to_the_end_size() -> None:
    fixed = AugmentParams(crop_size=64)
    growing = AugmentParams(crop_size=64, crop_size_end=96)
    assert [crop_side(fixed, 112, p) for p in (0.0, 1.0)] == [64, 64]
    assert [crop_side(growing, 112, p) for p in (-0.2, 0.0, 0.49, 0.5, 0.99, 1.0, 1.5)] == [
        64,
        64,
        64,
        80,
        80,
        96,
        96,
    ]
    assert crop_side(AugmentParams(), 112, 0.5) == 112
    out = augment(_photos(size=112), growing, torch.Generator().manual_seed(0), progress_done=1.0)
    assert out.shape == (6, 3, 96, 96)
