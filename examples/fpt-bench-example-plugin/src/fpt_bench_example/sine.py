"""Sine extrapolation, a regression task: ``length`` samples of a sine wave with a random amplitude, frequency
and phase, one per token; predict the next sample (a float). Scored by mean squared error (lower is better), with
the mean absolute error beside it; the output layer trains on standardised targets (``normalize=True``: the
mean and standard deviation of the training targets) and is scored on the targets' own scale."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field

from fpt_bench import (
    Batch,
    Continuous,
    HParamOverrides,
    OutputSpec,
    PaperHParams,
    Regression,
    SplitData,
    Task,
    TaskSpec,
)

VAL_SEED, TEST_SEED = 4_242, 8_484  # fixed evaluation sets, the same for every cell


class SineOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    length: int = Field(default=16, ge=2, le=256, description="samples given (the next one is predicted)")
    noise: float = Field(default=0.0, ge=0, description="standard deviation of Gaussian noise on the inputs")
    n_val: int = Field(default=500, gt=0, description="examples in the fixed validation set")
    n_test: int = Field(default=1000, gt=0, description="examples in the fixed test set")


def _spec(length: int) -> TaskSpec:
    return TaskSpec(
        name="sine_next",
        version="1",
        description=f"Predict the next sample of a random sine wave from its last {length} (regression, MSE).",
        citation="fpt-bench-example (a synthetic regression task)",
        input=Continuous(dim=1),
        max_len=length,
        output=OutputSpec(objective=Regression(criterion="mse", primary="mse", normalize=True)),
        generated=True,
        paper=PaperHParams(lr=1e-3, batch_size=32, steps=2_000),
        profiles={"quick": HParamOverrides(steps=300, batch_size=32, eval_every=100)},
    )


class SineNext(Task):
    spec = _spec(SineOptions().length)
    Options = SineOptions

    def resolve_spec(self, options: SineOptions) -> TaskSpec:  # type: ignore[override]
        return _spec(options.length)

    def sample(self, batch_size: int, generator: torch.Generator, options: SineOptions) -> Batch:  # type: ignore[override]
        device = generator.device

        def uniform(low: float, high: float) -> torch.Tensor:
            return low + (high - low) * torch.rand(batch_size, 1, generator=generator, device=device)

        amplitude, frequency, phase = uniform(0.5, 2.0), uniform(0.1, 0.6), uniform(0.0, 2 * math.pi)
        t = torch.arange(options.length + 1, device=device, dtype=torch.float32)[None, :]
        wave = amplitude * torch.sin(frequency * t + phase)  # (B, length + 1)
        x = wave[:, :-1]
        if options.noise > 0:
            x = x + options.noise * torch.randn(x.shape, generator=generator, device=device)
        return Batch(x=x.unsqueeze(-1), y=wave[:, -1])

    def load(self, split: str, options: SineOptions, data_dir: Path) -> SplitData:  # type: ignore[override]
        if split not in ("val", "test"):
            raise ValueError(f"sine_next has no stored {split!r} split (training batches are generated)")
        seed, n = (VAL_SEED, options.n_val) if split == "val" else (TEST_SEED, options.n_test)
        batch = self.sample(n, torch.Generator().manual_seed(seed), options)
        return SplitData(batch.x, batch.y, info={"generator_seed": seed, "examples": n, "length": options.length})
