"""Inference over a whole split: the one loop evaluation and feature caching share.

Examples are taken in order of length when lengths vary, so each batch pads little; the result does not depend on
the order (outputs are written back to each example's index)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from fpt_bench.api.objectives import Classification, Objective
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
    """Accuracy over the whole split (every prediction of every example): single-label classification."""
    return evaluate_metrics(model, data, batch_size, device, precision, Classification())["accuracy"]


def evaluate_metrics(model: torch.nn.Module, data: SplitData, batch_size: int, device: torch.device, precision: str,
                     objective: Objective) -> dict[str, float]:
    """Every metric of ``objective`` over the whole split: its per-batch predictions, put back in example order,
    then ``objective.metrics`` once."""
    predictions: torch.Tensor | None = None
    for index, _, outputs in run_split(model, lambda m, b: m(b.x, b.lengths), data, batch_size, device, precision):
        picked = objective.predict(outputs)
        if predictions is None:
            predictions = torch.empty((len(data), *picked.shape[1:]), dtype=picked.dtype, device=picked.device)
        predictions[index.to(picked.device)] = picked
    if predictions is None:
        raise ValueError("evaluation of an empty split")
    return objective.metrics(predictions, data.y.to(predictions.device))
