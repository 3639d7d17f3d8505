"""Preprocessing's centre crop: the shapes keep their proportions, and the card says so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from catdog.preprocess import Preprocessing, load_rgb

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "petimages"


def thirds(width: int, height: int) -> Image.Image:
    """Red, green and blue vertical thirds."""
    arr = np.zeros((height, width, 3), dtype=np.uint8)
    third = width // 3
    arr[:, :third, 0] = arr[:, third : 2 * third, 1] = arr[:, 2 * third :, 2] = 255
    return Image.fromarray(arr)


def test_centre_crop_keeps_the_middle_and_squash_keeps_the_whole() -> None:
    wide = thirds(300, 100)
    cropped = np.asarray(Preprocessing(size=32, center_crop=1.0).resize(wide), dtype=int)
    squashed = np.asarray(Preprocessing(size=32).resize(wide), dtype=int)
    assert cropped.shape == squashed.shape == (32, 32, 3)
    inside = cropped[:, 1:-1]  # the edge pixels' filter reaches just past the kept box
    assert (inside[:, :, 1] > 250).all() and (inside[:, :, [0, 2]] < 5).all()
    assert (cropped[:, :, 1] > 200).all()
    assert squashed[:, 0, 0].min() > 250 and squashed[:, -1, 2].min() > 250


def test_centre_crop_matches_resizing_the_whole_photo_then_cropping() -> None:
    photo = load_rgb(next(SAMPLE.glob("Dog/*.jpg")))
    pre = Preprocessing(size=224, resample="bilinear", center_crop=0.875)
    width, height = photo.size
    scale = 256 / min(width, height)
    whole = photo.resize((round(width * scale), round(height * scale)), Image.Resampling.BILINEAR)
    left, top = (whole.width - 224) // 2, (whole.height - 224) // 2
    expected = np.asarray(whole.crop((left, top, left + 224, top + 224)), dtype=float)
    got = np.asarray(pre.resize(photo), dtype=float)
    assert got.shape == (224, 224, 3)
    assert np.abs(got - expected).mean() < 2.0  # the same view; only resampling edges differ


def test_the_card_round_trips_the_crop_and_old_cards_squash() -> None:
    pre = Preprocessing(size=224, center_crop=0.875)
    assert Preprocessing.from_dict(pre.to_dict()) == pre
    old = {k: v for k, v in pre.to_dict().items() if k != "center_crop"}
    assert Preprocessing.from_dict(old).center_crop is None
    assert pre.decode_size == 256 and Preprocessing(size=224).decode_size == 224
    with pytest.raises(ValueError, match="center_crop"):
        Preprocessing(size=224, center_crop=1.5)


@pytest.mark.parametrize(
    ("mean", "std"),
    [((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)), ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))],
)
def test_to_array_is_the_plain_normalisation_bit_for_bit(
    mean: tuple[float, float, float], std: tuple[float, float, float]
) -> None:
    """The in-place arithmetic gives the very floats that training's models were fitted on."""
    pre = Preprocessing(size=64, mean=mean, std=std, center_crop=0.875)
    for path in sorted(SAMPLE.glob("*/*.jpg"))[:6]:
        photo = load_rgb(path)
        pixels = np.asarray(pre.resize(photo), dtype=np.float32)
        shift = np.asarray(mean, dtype=np.float32) * 255.0
        scale = np.asarray(std, dtype=np.float32) * 255.0
        plain = ((pixels - shift) / scale).transpose(2, 0, 1)
        fast = pre.to_array(photo)
        assert fast.dtype == np.float32 and fast.shape == (3, 64, 64)
        assert fast.flags.c_contiguous
        np.testing.assert_array_equal(fast, plain)
