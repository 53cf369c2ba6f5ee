"""Feature caching: when nothing below the output layer trains (``output_only``, ``out``; the paper's Table 10),
the backbone's readout features of every example never change, so they are computed once and the output layer
trains on them.

A cell is eligible when every trainable parameter has role ``output``, the training data is a stored split
(not generated), the task does not augment, the read position does not depend on a batch's padding (readout
``last`` on variable-length data does), and the run is one process. ``feature_cache=auto`` (the default) also
requires the frozen part to compute the same features in training mode as in evaluation mode, whatever the
random seed (no active dropout): then the cached run equals the uncached one up to floating-point rounding.
``feature_cache=on`` caches eligible cells even with dropout in the frozen part (the features are computed in
evaluation mode, without it: a different experiment, recorded as such); ``off`` never caches.

Training batches index the cache with the same indices the uncached run would use (``TrainingData.indices``),
so the batch of step ``s`` is still a pure function of (seed, s) and exact resume keeps working.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from fpt_bench.api.model import FPTModel
from fpt_bench.api.roles import Role
from fpt_bench.api.specs import Readout
from fpt_bench.api.task import Batch, SplitData
from fpt_bench.training import distributed
from fpt_bench.training.inference import run_split
from fpt_bench.training.precision import autocast


class HeadOnly(nn.Module):
    """Calls the model's output layer on cached features: stands in for the model in training and evaluation."""

    def __init__(self, model: FPTModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.head(features)


class CachedTrainingData:
    """Training batches drawn from cached features with the indices ``base`` would draw."""

    def __init__(self, base: Any, features: torch.Tensor, labels: torch.Tensor) -> None:
        self.base, self.features, self.labels = base, features, labels

    def batch(self, step: int) -> Batch:
        index = self.base.indices(step).to(self.features.device)
        return Batch(self.features[index], self.labels[index])


def ineligible_reason(model: FPTModel, train: Any, splits: list[SplitData]) -> str | None:
    """Why features cannot be cached for this cell (None when they can, dropout aside)."""
    roles = model.parameter_roles()
    below = sorted({roles[n].value for n, p in model.named_parameters() if p.requires_grad} - {Role.OUTPUT.value})
    if below:
        return f"parameters below the output layer train (roles {', '.join(below)})"
    if train.split is None:
        return "the training data is generated (every batch is new)"
    if train.task.augments(train.options):
        return "the task augments training batches"
    if model.task.output.readout == Readout.LAST and any(s.lengths is not None for s in splits):
        return "readout 'last' on variable-length data reads a position that depends on the batch's padding"
    if distributed.world() > 1:
        return "a data-parallel run"
    return None


@torch.no_grad()
def frozen_part_is_deterministic(model: FPTModel, split: SplitData, device: torch.device, precision: str) -> bool:
    """Do training-mode features (two random seeds) equal evaluation-mode ones on a few training examples?"""
    batch = split.batch(torch.arange(min(len(split), 4), device=split.x.device)).to(device)
    was_training = model.training
    outputs = []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        for seed, training in ((1, True), (2, True), (3, False)):
            torch.manual_seed(seed)
            model.train(training)
            with autocast(device, precision):
                outputs.append(model.features(batch.x, batch.lengths).float())
    model.train(was_training)
    return all(torch.allclose(outputs[0], other, rtol=1e-4, atol=1e-5) for other in outputs[1:])


def compute_features(model: FPTModel, split: SplitData, batch_size: int, device: torch.device,
                     precision: str) -> SplitData:
    """``split`` as readout features (N, k, hidden) in evaluation mode, in batches of similar length."""
    features: torch.Tensor | None = None
    for index, _, picked in run_split(model, lambda m, b: m.features(b.x, b.lengths), split, batch_size, device,
                                      precision, keep=True):
        if features is None:
            features = torch.empty((len(split), *picked.shape[1:]), dtype=picked.dtype, device=device)
        features[index.to(device)] = picked
    assert features is not None, "an empty split"
    return SplitData(features, split.y.to(device), info=split.info)


def build_cache(setting: str, model: FPTModel, train: Any, val: SplitData, tests: dict[str, SplitData],
                batch_size: int, device: torch.device, precision: str
                ) -> tuple[dict[str, Any], tuple[CachedTrainingData, SplitData, dict[str, SplitData]] | None]:
    """Decide and, when the cell is eligible, compute the cache. Returns what the result records and the cached
    (train, val, tests), or None when the cell trains without a cache."""
    t0 = time.perf_counter()
    record: dict[str, Any] = {"feature_cache": False, "feature_cache_reason": "feature_cache=off"}
    if setting == "off":
        return record, None
    reason = ineligible_reason(model, train, [s for s in (train.split, val, *tests.values()) if s is not None])
    if reason is None and setting == "auto" and not frozen_part_is_deterministic(model, train.split, device,
                                                                                   precision):
        reason = ("the frozen part is random in training mode (dropout): a cache would drop that randomness; "
                  "feature_cache=on caches anyway")
    if reason is not None:
        record["feature_cache_reason"] = reason
        return record, None
    train_features = compute_features(model, train.split, batch_size, device, precision)
    cached_val = compute_features(model, val, batch_size, device, precision)
    cached_tests = {name: compute_features(model, split, batch_size, device, precision)
                    for name, split in tests.items()}
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    record.update(
        feature_cache=True, feature_cache_seconds=time.perf_counter() - t0,
        feature_cache_reason="only the output layer trains" + (
            "; the frozen part runs without its dropout (feature_cache=on)" if setting == "on" else ""),
        feature_cache_mb=sum(s.x.numel() * s.x.element_size() for s in (train_features, cached_val,
                                                                          *cached_tests.values())) / 2**20,
    )
    data = CachedTrainingData(train, train_features.x, train_features.y)
    return record, (data, cached_val, cached_tests)
