"""A small stored-split task for the performance tests: variable-length continuous sequences (or fixed-length ones
with ``fixed=true``), labels from the data, optional augmentation."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict

from fpt_bench import Continuous, OutputSpec, PaperHParams, Readout, SplitData, Task, TaskSpec, hookimpl
from fpt_bench.api.seeding import generator
from fpt_bench.host.manager import get_host

SIZES = {"train": 48, "val": 16, "test": 16}


class SeqOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fixed: bool = False
    augment: bool = False
    readout: str = "last_nonpad"


class PerfSeq(Task):
    Options = SeqOptions
    spec = TaskSpec(name="perf_seq", description="sum-sign of a random sequence (tests)", input=Continuous(dim=4),
                    max_len=12, output=OutputSpec(n_classes=2, readout=Readout.LAST_NONPAD),
                    bucket_by_length=True, paper=PaperHParams(steps=12, batch_size=4))

    def resolve_spec(self, options: SeqOptions) -> TaskSpec:  # type: ignore[override]
        return self.spec.model_copy(update={"output": OutputSpec(n_classes=2, readout=Readout(options.readout))})

    def load(self, split: str, options: SeqOptions, data_dir) -> SplitData:  # type: ignore[override]
        g = generator({"train": 1, "val": 2, "test": 3}[split])
        n = SIZES[split]
        x = torch.randn(n, 12, 4, generator=g)
        lengths = None if options.fixed else torch.randint(3, 13, (n,), generator=g)
        if lengths is not None:
            x = x * (torch.arange(12)[None, :, None] < lengths[:, None, None])
        y = (x.sum((1, 2)) > 0).long()
        return SplitData(x, y, lengths, info={"examples": n})

    def augments(self, options: SeqOptions) -> bool:  # type: ignore[override]
        return options.augment

    def augment(self, x, generator, options):
        return x + 0.1 * torch.randn(x.shape, generator=generator, device=x.device) if options.augment else x


class _Plugin:
    @hookimpl
    def fpt_bench_register_tasks(self, registry) -> None:
        registry.add(PerfSeq())


def register() -> None:
    host = get_host()
    if "perf_seq" not in host.tasks:
        host.register(_Plugin(), "perf-test-tasks")
