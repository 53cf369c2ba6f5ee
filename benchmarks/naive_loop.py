"""The naive, reference-style training loop ``throughput.py`` compares the harness with.

What a researcher's first version (and the paper's reference code) does: a ``torch.utils.data.Dataset`` that
makes one example at a time (a PIL image through torchvision transforms, a token list padded to the task's
maximum length, a bit string drawn with numpy), a ``DataLoader`` that collates them, patches cut from the
batch, Hugging Face ``GPT2Model`` with the eager attention of its 2021 releases, fp32, the FPT parameters
unfrozen by the reference's substring rule (``ln`` and ``wpe`` train, plus the input and output layers), dropout
0.1 after the input layer, Adam
with PyTorch's default (for-loop on a CPU) implementation, gradient clipping, and evaluation with the training
batch size under ``no_grad``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)


def patchify(images: torch.Tensor, patch: int = 4) -> torch.Tensor:
    """b c (h p1) (w p2) -> b (h w) (p1 p2 c), as the reference code's einops rearrange."""
    b, c, h, w = images.shape
    x = images.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // patch) * (w // patch), patch * patch * c)


class ImageDataset(torch.utils.data.Dataset):
    """uint8 images (N, H, W) or (N, H, W, 3), one PIL image per example through torchvision transforms."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Any) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def image_transform(task: str, train: bool) -> Any:
    from torchvision import transforms as T

    if task == "mnist":
        return T.Compose([T.ToTensor(), T.Normalize(mean=0.0, std=1.0)])
    augment = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.RandomRotation(20)] if train else []
    if task == "cifar10":
        return T.Compose([*augment, T.ToTensor(), T.Normalize(CIFAR_MEAN, CIFAR_STD)])
    return T.Compose([T.Grayscale(), *augment, T.ToTensor(), T.Normalize(0.5, 0.5)])  # cifar10_lra


class TokenDataset(torch.utils.data.Dataset):
    """Token lists, each padded to the task's maximum length on its own."""

    def __init__(self, sequences: list[list[int]], labels: np.ndarray, max_len: int) -> None:
        self.sequences, self.labels, self.max_len = sequences, labels, max_len

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        seq = self.sequences[i][: self.max_len]
        return torch.tensor(seq + [0] * (self.max_len - len(seq)), dtype=torch.long), int(self.labels[i])


class BitDataset(torch.utils.data.Dataset):
    """Bit memory / bit XOR examples drawn one at a time with numpy."""

    def __init__(self, task: str, n: int, seed: int = 0) -> None:
        self.task, self.n, self.rng = task, n, np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = self.rng
        if self.task == "bit_xor":
            bits = rng.integers(0, 2, 10)
            return torch.tensor(bits, dtype=torch.float32)[:, None], torch.tensor(bits[:5] ^ bits[5:])
        strings = rng.integers(0, 2, (5, 1000)) * 2 - 1
        target = strings[rng.integers(0, 5)]
        query = target * (rng.random(1000) >= 0.5)
        x = np.concatenate([strings, query[None]]).reshape(120, 50)
        return torch.tensor(x, dtype=torch.float32), torch.tensor((target > 0).astype(np.int64))


def batches(dataset: torch.utils.data.Dataset, batch_size: int, shuffle: bool) -> Iterator[Any]:
    """Batches forever, as a training loop draws them."""
    while True:
        yield from torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=True)


class NaiveFPT(nn.Module):
    def __init__(self, spec: Any, n_layers: int, policy: str = "fpt") -> None:
        super().__init__()
        from transformers import GPT2Config, GPT2Model

        config = GPT2Config(n_layer=n_layers, n_positions=max(1024, spec.max_len))
        config._attn_implementation = "eager"
        self.gpt = GPT2Model(config)
        self.tokens = spec.input.kind == "tokens"
        self.inp = nn.Embedding(spec.input.vocab_size, 768) if self.tokens else nn.Linear(spec.input.dim, 768)
        out = spec.output
        self.k, self.n_predictions, self.n_classes = out.k, out.n_predictions, out.n_classes
        self.out = nn.Linear(768, out.per_position * out.n_classes)
        self.dropout = nn.Dropout(0.1)  # the reference's dropout after the input layer
        for name, p in self.gpt.named_parameters():
            p.requires_grad_(policy == "full" or (policy == "fpt" and ("ln" in name or "wpe" in name)))
        self.inp.requires_grad_(policy != "output_only")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.gpt(inputs_embeds=self.dropout(self.inp(x))).last_hidden_state[:, -self.k:]
        return self.out(hidden).reshape(x.shape[0], self.n_predictions, self.n_classes)


class NaiveLoop:
    """One training step / one evaluation pass of the reference-style loop."""

    def __init__(self, model: NaiveFPT, train: Iterator[Any], patches: bool) -> None:
        self.model, self.train, self.patches = model, train, patches
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(self.params, lr=1e-3)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        if self.patches:
            return patchify(x)
        return x.reshape(x.shape[0], -1, 1) if x.ndim == 4 else x  # cifar10_lra: one pixel per token

    def step(self) -> tuple[float, int]:
        """One step; returns the loss and the sequence length it computed."""
        self.model.train()
        x, y = next(self.train)
        x = self.prepare(x)
        self.optimizer.zero_grad()
        loss = F.cross_entropy(self.model(x).flatten(0, 1), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()
        return loss.item(), x.shape[1]

    @torch.no_grad()
    def evaluate(self, dataset: torch.utils.data.Dataset, batch_size: int) -> float:
        self.model.eval()
        correct = total = 0
        for x, y in torch.utils.data.DataLoader(dataset, batch_size=batch_size):
            logits = self.model(self.prepare(x))
            correct += int((logits.argmax(-1) == y.reshape(logits.shape[0], -1)).sum())
            total += y.numel()
        return correct / max(total, 1)
