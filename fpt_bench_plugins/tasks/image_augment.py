"""The paper's CIFAR-10 training augmentation, batched on the device: random crop with padding 4, horizontal
flip with probability 0.5, rotation by up to 20 degrees (nearest neighbour, black fill), as torchvision's
``RandomCrop(32, padding=4)``, ``RandomHorizontalFlip()``, ``RandomRotation(20)`` do one image at a time.

All three are one affine map per image, so a batch takes a single ``affine_grid`` + ``grid_sample``. The
random draws come from the given ``torch.Generator`` on the batch's device.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def augment_params(batch: int, generator: torch.Generator, pad: int = 4, degrees: float = 20.0,
                   flip: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per image: an integer shift (dx, dy) in [-pad, pad], a flip flag and an angle in [-degrees, degrees]."""
    device = generator.device
    shift = torch.randint(-pad, pad + 1, (batch, 2), generator=generator, device=device)
    flips = torch.rand(batch, generator=generator, device=device) < 0.5 if flip else torch.zeros(
        batch, dtype=torch.bool, device=device)
    angle = (torch.rand(batch, generator=generator, device=device) * 2 - 1) * degrees
    return shift, flips, angle


def apply_affine(images: torch.Tensor, shift: torch.Tensor, flip: torch.Tensor, angle: torch.Tensor,
                 fill: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Crop-shift, then flip, then rotate (degrees) each image of (B, C, H, W); uncovered pixels get ``fill``
    (a scalar or one value per channel). Output pixel (i, j) of a pure shift is input pixel (i + dy, j + dx)."""
    b, c, h, w = images.shape
    dtype, device = images.dtype, images.device
    theta = torch.deg2rad(angle.to(torch.float32))
    cos, sin = torch.cos(theta), torch.sin(theta)
    sign = 1.0 - 2.0 * flip.to(torch.float32)  # -1 flips x
    matrix = torch.zeros(b, 2, 3, device=device, dtype=torch.float32)
    matrix[:, 0, 0], matrix[:, 0, 1] = sign * cos, -sign * sin * (h / w)
    matrix[:, 1, 0], matrix[:, 1, 1] = sin * (w / h), cos
    matrix[:, 0, 2] = 2.0 * shift[:, 0].to(torch.float32) / w
    matrix[:, 1, 2] = 2.0 * shift[:, 1].to(torch.float32) / h
    grid = F.affine_grid(matrix, [b, c, h, w], align_corners=False)
    fill_t = torch.as_tensor(fill, dtype=torch.float32, device=device).reshape(1, -1, 1, 1)
    moved = F.grid_sample(images.to(torch.float32) - fill_t, grid, mode="nearest", padding_mode="zeros",
                          align_corners=False)
    return (moved + fill_t).to(dtype)


def crop_flip_rotate(images: torch.Tensor, generator: torch.Generator, pad: int = 4, degrees: float = 20.0,
                     fill: torch.Tensor | float = 0.0) -> torch.Tensor:
    shift, flips, angle = augment_params(images.shape[0], generator, pad, degrees)
    return apply_affine(images, shift, flips, angle, fill)


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, (H/p)(W/p), p*p*C): patches in row-major order, each flattened as (row, col, channel)
    (einops ``b c (h p1) (w p2) -> b (h w) (p1 p2 c)``, the reference code's layout)."""
    b, c, h, w = images.shape
    x = images.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // patch) * (w // patch), patch * patch * c)


def unpatchify(tokens: torch.Tensor, channels: int, size: int, patch: int) -> torch.Tensor:
    """The inverse of :func:`patchify`."""
    b = tokens.shape[0]
    n = size // patch
    x = tokens.reshape(b, n, n, patch, patch, channels)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(b, channels, size, size)

