"""Batch-wise augmentation with plain torch ops, so it runs wherever the batch already is.

A whole batch is cropped, flipped and resized by one `grid_sample` call (one affine matrix per
photo), then colour-jittered, all on the training device; no per-photo Python, no JPEG decode per
epoch. Photos stay in 0-255 float until `normalise`, the same arithmetic as serving.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the torch convention

from catdog.training.params import AugmentParams


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    device = generator.device
    return torch.rand(n, device=device, generator=generator) * (high - low) + low


def crop_side(params: AugmentParams, image_size: int, progress_done: float) -> int:
    """Training crop side at this point of training: `crop_size`, or with progressive resizing
    a side growing linearly to `crop_size_end` (in steps of 16 px: few distinct shapes)."""
    start = params.crop_size or image_size
    if params.crop_size_end is None:
        return start
    grown = start + (params.crop_size_end - start) * min(1.0, max(0.0, progress_done))
    return max(start, int(grown) // 16 * 16)


def random_resized_crop_flip(
    images: torch.Tensor, params: AugmentParams, generator: torch.Generator, out_size: int
) -> torch.Tensor:
    """Crop a random area and aspect ratio of each photo, maybe mirror it, resize to out_size."""
    n, channels = images.shape[0], images.shape[1]
    area = _uniform(n, *params.crop_scale, generator)
    log_ratio = _uniform(
        n, math.log(params.crop_ratio[0]), math.log(params.crop_ratio[1]), generator
    )
    ratio = torch.exp(log_ratio)
    # Crop sides as fractions of the photo's sides (affine_grid's [-1, 1] frame spans 2 units).
    width = torch.sqrt(area * ratio).clamp(max=1.0)
    height = torch.sqrt(area / ratio).clamp(max=1.0)
    centre_x = (torch.rand(n, device=images.device, generator=generator) * 2 - 1) * (1 - width)
    centre_y = (torch.rand(n, device=images.device, generator=generator) * 2 - 1) * (1 - height)
    flip = torch.ones(n, device=images.device)
    if params.hflip:
        coin = torch.rand(n, device=images.device, generator=generator) < 0.5
        flip = torch.where(coin, -flip, flip)
    theta = torch.zeros(n, 2, 3, device=images.device)
    theta[:, 0, 0] = width * flip
    theta[:, 0, 2] = centre_x
    theta[:, 1, 1] = height
    theta[:, 1, 2] = centre_y
    grid = F.affine_grid(theta, [n, channels, out_size, out_size], align_corners=False)
    return F.grid_sample(
        images, grid, mode="bilinear", padding_mode="reflection", align_corners=False
    )


def colour_jitter(
    images: torch.Tensor, params: AugmentParams, generator: torch.Generator
) -> torch.Tensor:
    """Per-photo brightness, contrast and saturation factors, as torchvision's ColorJitter."""
    n = images.shape[0]
    out = images
    if params.brightness:
        factor = _uniform(n, 1 - params.brightness, 1 + params.brightness, generator)
        out = out * factor.view(n, 1, 1, 1)
    grey_weights = torch.tensor([0.299, 0.587, 0.114], device=images.device).view(1, 3, 1, 1)
    if params.contrast:
        factor = _uniform(n, 1 - params.contrast, 1 + params.contrast, generator).view(n, 1, 1, 1)
        mean_grey = (out * grey_weights).sum(1, keepdim=True).mean((2, 3), keepdim=True)
        out = (out - mean_grey) * factor + mean_grey
    if params.saturation:
        factor = _uniform(n, 1 - params.saturation, 1 + params.saturation, generator).view(
            n, 1, 1, 1
        )
        grey = (out * grey_weights).sum(1, keepdim=True)
        out = (out - grey) * factor + grey
    return out.clamp(0.0, 255.0)


def augment(
    images: torch.Tensor,
    params: AugmentParams,
    generator: torch.Generator,
    *,
    progress_done: float = 0.0,
) -> torch.Tensor:
    """uint8 [N, 3, S, S] to augmented 0-255 float [N, 3, C, C]; the generator fixes the draw."""
    side = crop_side(params, images.shape[-1], progress_done)
    out = random_resized_crop_flip(images.float(), params, generator, side)
    return colour_jitter(out, params, generator)


def soft_targets(labels: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    """One-hot labels with label smoothing: (1 - e) on the class, e / classes spread on all."""
    one_hot = F.one_hot(labels, num_classes).float()
    return one_hot * (1 - smoothing) + smoothing / num_classes


def mix(
    images: torch.Tensor,
    targets: torch.Tensor,
    params: AugmentParams,
    rng: np.random.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup or CutMix a normalised batch with a shuffled copy of itself; targets mix alike."""
    modes = [
        m for m, alpha in (("mixup", params.mixup_alpha), ("cutmix", params.cutmix_alpha)) if alpha
    ]
    if not modes or images.shape[0] < 2:
        return images, targets
    mode = modes[int(rng.integers(len(modes)))]
    alpha = params.mixup_alpha if mode == "mixup" else params.cutmix_alpha
    lam = float(rng.beta(alpha, alpha))
    # Pairing by rolling the batch by one: the batch is already in shuffled order.
    partner = images.roll(1, dims=0)
    if mode == "mixup":
        mixed = images * lam + partner * (1 - lam)
    else:
        size = images.shape[-1]
        side = round(size * math.sqrt(1 - lam))
        top, left = int(rng.integers(size - side + 1)), int(rng.integers(size - side + 1))
        mixed = images.clone()
        mixed[..., top : top + side, left : left + side] = partner[
            ..., top : top + side, left : left + side
        ]
        lam = 1 - side * side / (size * size)
    return mixed, targets * lam + targets.roll(1, dims=0) * (1 - lam)
