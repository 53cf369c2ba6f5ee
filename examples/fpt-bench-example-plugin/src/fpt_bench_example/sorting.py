"""Sort digits: ``length`` random digits, then ``length`` query tokens; the hidden state at query position
``i`` predicts the ``i``-th smallest digit. Generated on the device from the cell's seed (no data files)."""

from __future__ import annotations

from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field

from fpt_bench import (
    Batch,
    HParamOverrides,
    OutputSpec,
    PaperHParams,
    Readout,
    SplitData,
    Task,
    TaskSpec,
    Tokens,
)

QUERY = 10  # token id of the query positions (digits are 0..9)
VAL_SEED, TEST_SEED = 31_337, 271_828  # fixed evaluation sets, the same for every cell


class SortOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    length: int = Field(default=8, ge=2, le=256, description="digits to sort")
    n_val: int = Field(default=500, gt=0, description="examples in the fixed validation set")
    n_test: int = Field(default=1000, gt=0, description="examples in the fixed test set")


def _spec(length: int) -> TaskSpec:
    return TaskSpec(
        name="sort_digits",
        version="1",
        description=f"Sort {length} random digits; the last {length} positions read out the sorted digits.",
        citation="fpt-bench-example (a synthetic task in the spirit of Lu et al. 2021, section 3)",
        input=Tokens(vocab_size=QUERY + 1),
        max_len=2 * length,
        output=OutputSpec(n_classes=10, n_predictions=length, readout=Readout.LAST_K, k=length),
        generated=True,
        paper=PaperHParams(lr=1e-3, batch_size=32, steps=5_000),
        profiles={"quick": HParamOverrides(steps=300, batch_size=32, eval_every=100)},
    )


class SortDigits(Task):
    spec = _spec(SortOptions().length)
    Options = SortOptions

    def resolve_spec(self, options: SortOptions) -> TaskSpec:  # type: ignore[override]
        return _spec(options.length)

    def sample(self, batch_size: int, generator: torch.Generator, options: SortOptions) -> Batch:  # type: ignore[override]
        digits = torch.randint(0, 10, (batch_size, options.length), generator=generator, device=generator.device)
        queries = torch.full_like(digits, QUERY)
        return Batch(x=torch.cat([digits, queries], dim=1), y=digits.sort(dim=1).values)

    def load(self, split: str, options: SortOptions, data_dir: Path) -> SplitData:  # type: ignore[override]
        if split not in ("val", "test"):
            raise ValueError(f"sort_digits has no stored {split!r} split (training batches are generated)")
        seed, n = (VAL_SEED, options.n_val) if split == "val" else (TEST_SEED, options.n_test)
        generator = torch.Generator().manual_seed(seed)
        batch = self.sample(n, generator, options)
        return SplitData(batch.x, batch.y, info={"generator_seed": seed, "examples": n, "length": options.length})
