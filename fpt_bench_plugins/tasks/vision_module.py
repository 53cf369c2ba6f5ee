"""The tensor side of the vision tasks (``fpt_bench_plugins.tasks.vision``): how stored images become the tokens a
model sees, and the training augmentation. Imported when a split is loaded, so that registering and listing the tasks
does not import torch."""

from __future__ import annotations

import numpy as np
import torch

from fpt_bench_plugins.tasks.image_augment import crop_flip_rotate, patchify, unpatchify

PATCH = 4
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)
GRAY = (0.2989, 0.5870, 0.1140)  # torchvision's and TensorFlow's luma weights


def decode_mnist(x: torch.Tensor) -> torch.Tensor:
    """(B, 28, 28) uint8 -> (B, 49, 16) in [0, 1]."""
    return patchify(x[:, None].float() / 255.0, PATCH)


def _channel(values: tuple[float, ...], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(values, device=like.device, dtype=torch.float32).reshape(1, -1, 1, 1)


def decode_cifar(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, 32, 32) uint8 -> (B, 64, 48) normalised patches."""
    images = (x.float() / 255.0 - _channel(CIFAR_MEAN, x)) / _channel(CIFAR_STD, x)
    return patchify(images, PATCH)


def decode_gray(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, 32, 32) uint8 -> (B, 1024, 1) grayscale in [-1, 1] (normalised with mean 0.5, std 0.5)."""
    gray = (x.float() / 255.0 * _channel(GRAY, x)).sum(1)
    return ((gray - 0.5) / 0.5).reshape(x.shape[0], -1, 1)


def decode_tokens(x: torch.Tensor) -> torch.Tensor:
    return x.long()


def lra_grayscale(x: np.ndarray) -> np.ndarray:
    """LRA's 8-bit grayscale of (N, 3, H, W) uint8: TensorFlow's ``rgb_to_grayscale`` on [0, 1] floats, then
    ``convert_image_dtype`` back to uint8: ``trunc((0.2989 R + 0.5870 G + 0.1140 B) / 255 * 255.5)``."""
    rgb = x.astype(np.float32) / np.float32(255.0)
    weights = np.array(GRAY, dtype=np.float32).reshape(1, 3, 1, 1)
    gray = (rgb * weights).sum(axis=1, dtype=np.float32)
    return (gray * np.float32(255.5)).astype(np.uint8)


def augment_cifar(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The paper's augmentation of normalised CIFAR-10 patches (black stays black after normalisation)."""
    images = unpatchify(x, 3, 32, PATCH)
    black = (-torch.tensor(CIFAR_MEAN) / torch.tensor(CIFAR_STD)).to(x.device)
    return patchify(crop_flip_rotate(images, generator, fill=black), PATCH)


def augment_gray(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The same augmentation of (B, 1024, 1) grayscale pixels in [-1, 1] (black is -1)."""
    images = x.reshape(x.shape[0], 1, 32, 32)
    return crop_flip_rotate(images, generator, fill=-1.0).reshape(x.shape)
