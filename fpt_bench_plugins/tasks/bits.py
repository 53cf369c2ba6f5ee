"""Bit Memory and Bit XOR (Lu et al. 2021, section 3): generated on the device from the cell's seed.

Bit Memory: five random strings of 1000 bits in {-1, +1}, then a query, one of them with each bit zeroed with
probability 0.5; predict the queried string. The 6 x 1000 values are cut into patches of 50 (120 tokens of 50)
and the last 20 tokens each predict 50 bits. Bit XOR: two random 5-bit strings in {0, 1}, one bit per token
(10 tokens of 1); the last 5 tokens predict the elementwise XOR. Accuracy is per bit.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from fpt_bench import (
    Batch,
    Continuous,
    HParamOverrides,
    OutputSpec,
    PaperHParams,
    Readout,
    SplitData,
    Task,
    TaskSpec,
    hookimpl,
)
from fpt_bench.api.seeding import generator

if TYPE_CHECKING:  # torch is imported when examples are drawn: listing the plugins loads without it
    import torch

CITATION = "Lu, Grover, Abbeel, Mordatch. Pretrained Transformers as Universal Computation Engines. 2021."
VAL_SEED = 1_000_001  # fixed evaluation sets: comparable across cells, seeds and runs
TEST_SEED = 2_000_003


class BitOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n_val: int = Field(default=500, gt=0, description="examples in the fixed validation set")
    n_test: int = Field(default=1000, gt=0, description="examples in the fixed test set")


class _GeneratedTask(Task):
    Options = BitOptions

    def load(self, split: str, options: BitOptions, data_dir: Path) -> SplitData:  # type: ignore[override]
        if split not in ("val", "test"):
            raise ValueError(f"{self.spec.name} has no stored {split!r} split (training data is generated)")
        seed, n = (VAL_SEED, options.n_val) if split == "val" else (TEST_SEED, options.n_test)
        batch = self.sample(n, generator(seed), options)
        return SplitData(batch.x, batch.y, info={"generator_seed": seed, "examples": n})


class BitMemory(_GeneratedTask):
    n_bits, n_patterns, patch = 1000, 5, 50
    spec = TaskSpec(
        name="bit_memory",
        description="Recall one of 5 stored 1000-bit strings from a half-masked query (per-bit accuracy).",
        citation=CITATION,
        input=Continuous(dim=50),
        max_len=120,
        output=OutputSpec(n_classes=2, n_predictions=1000, readout=Readout.LAST_K, k=20),
        generated=True,
        paper=PaperHParams(lr=1e-3, batch_size=16, steps=40_000),
        # smoke: 120 tokens of 50 per example; 10 steps of one example and 8 to evaluate keep a GPT-2 base cell
        # in seconds on a CPU (the generic smoke sizes take minutes)
        profiles={"quick": HParamOverrides(steps=200, batch_size=8, eval_every=50),
                  "smoke": HParamOverrides(steps=10, batch_size=1, eval_every=5, val_examples=8, test_examples=8)},
        chance=0.75, chance_note="copy the query's unmasked half, guess the rest; a blind guess scores 50",
    )

    def sample(self, batch_size: int, generator: torch.Generator, options: BaseModel) -> Batch:
        import torch

        device = generator.device
        bits = torch.randint(0, 2, (batch_size, self.n_patterns, self.n_bits), generator=generator, device=device)
        strings = bits.float() * 2 - 1
        which = torch.randint(0, self.n_patterns, (batch_size,), generator=generator, device=device)
        target = strings[torch.arange(batch_size, device=device), which]
        keep = torch.rand((batch_size, self.n_bits), generator=generator, device=device) >= 0.5
        query = target * keep
        x = torch.cat([strings, query[:, None]], dim=1).reshape(batch_size, -1, self.patch)
        y = (target > 0).long()
        return Batch(x, y)


class BitXOR(_GeneratedTask):
    n_bits = 5
    spec = TaskSpec(
        name="bit_xor",
        description="Elementwise XOR of two random 5-bit strings, one bit per token (per-bit accuracy).",
        citation=CITATION,
        input=Continuous(dim=1),
        max_len=10,
        output=OutputSpec(n_classes=2, n_predictions=5, readout=Readout.LAST_K, k=5),
        generated=True,
        paper=PaperHParams(lr=1e-3, batch_size=16, steps=20_000),
        profiles={"quick": HParamOverrides(steps=500, batch_size=16, eval_every=100)},
        chance_note="a coin flip for each bit",
    )

    def sample(self, batch_size: int, generator: torch.Generator, options: BaseModel) -> Batch:
        import torch

        pair = torch.randint(0, 2, (batch_size, 2, self.n_bits), generator=generator, device=generator.device)
        y = pair[:, 0] ^ pair[:, 1]
        return Batch(pair.float().reshape(batch_size, 2 * self.n_bits, 1), y)


@hookimpl
def fpt_bench_register_tasks(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(BitMemory())
    registry.add(BitXOR())
