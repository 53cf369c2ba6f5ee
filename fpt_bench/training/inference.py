"""Inference over a whole split: the one loop evaluation and feature caching share.

Examples are taken in order of length when lengths vary, so each batch pads little; the result does not depend on
the order (outputs are written back to each example's index)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from fpt_bench.api.task import Batch, SplitData
from fpt_bench.training.precision import autocast


def batches(split: SplitData, batch_size: int, device: torch.device) -> Iterator[tuple[torch.Tensor, Batch]]:
    """(indices, batch on ``device``) over the whole split, shortest sequences first."""
    order = torch.arange(len(split), device=split.x.device)
    if split.lengths is not None:
        order = torch.argsort(split.lengths, stable=True).to(split.x.device)
    for start in range(0, len(split), batch_size):
        index = order[start:start + batch_size]
        yield index, split.batch(index).to(device)


def run_split(model: torch.nn.Module, call: Callable[[torch.nn.Module, Batch], torch.Tensor], split: SplitData,
              batch_size: int, device: torch.device, precision: str, keep: bool = False
              ) -> Iterator[tuple[torch.Tensor, Batch, torch.Tensor]]:
    """``call(model, batch)`` on every batch of ``split`` in evaluation mode, under the precision's autocast and
    without autograd; yields (indices, batch, output). ``keep``: outputs that later training will use as inputs
    (``no_grad``; otherwise ``inference_mode``, whose tensors autograd refuses). The training mode is restored."""
    was_training = model.training
    model.eval()
    try:
        for index, batch in batches(split, batch_size, device):
            with torch.no_grad() if keep else torch.inference_mode(), autocast(device, precision):
                output = call(model, batch)
            yield index, batch, output
    finally:
        model.train(was_training)


def evaluate(model: torch.nn.Module, data: SplitData, batch_size: int, device: torch.device, precision: str) -> float:
    """Accuracy over the whole split (every prediction of every example)."""
    correct = torch.zeros((), dtype=torch.long, device=device)
    total = 0
    for _, batch, logits in run_split(model, lambda m, b: m(b.x, b.lengths), data, batch_size, device, precision):
        y = batch.y.reshape(logits.shape[0], -1)
        correct += (logits.argmax(-1) == y).sum()
        total += y.numel()
    return correct.item() / max(total, 1)
