"""Training batches as a pure function of the step: generated on the device, or drawn from a split held on the
device (shuffled per epoch with a seeded permutation, optionally bucketed by length)."""

from __future__ import annotations

import torch
from pydantic import BaseModel

from fpt_bench.api.seeding import derive_seed, generator
from fpt_bench.api.task import Batch, SplitData, Task

BUCKET_POOL = 50  # with bucketing, batches come from pools of this many batches sorted by length


class TrainingData:
    """Training batches as a pure function of the step: generated on the device, or drawn from a split held
    on the device, shuffled per epoch with a seeded permutation.

    When the task asks for ``bucket_by_length`` (and the split has lengths), each epoch's permutation is cut
    into pools of ``BUCKET_POOL`` batches, each pool sorted by length and cut into batches, and the batches
    shuffled: similar lengths share a batch (less padding), and the batch of step ``s`` is still a pure
    function of (seed, s). Such an epoch drops the ``n % batch_size`` examples its permutation puts last."""

    def __init__(self, task: Task, options: BaseModel, split: SplitData | None, seed: int,
                 batch_size: int, device: torch.device) -> None:
        self.task, self.options, self.split, self.seed = task, options, split, seed
        self.batch_size, self.device = batch_size, device
        self._perm: tuple[int, torch.Tensor] | None = None
        self.bucketed = (split is not None and split.lengths is not None and len(split) >= batch_size
                         and task.resolve_spec(options).bucket_by_length)

    def _buckets(self, epoch: int) -> torch.Tensor:
        """The epoch's batches, (n // batch_size, batch_size) indices, bucketed by length."""
        if self._perm is None or self._perm[0] != epoch:
            split, size = self.split, self.batch_size
            assert split is not None and split.lengths is not None
            n_batches = len(split) // size
            perm = torch.randperm(len(split), generator=generator(derive_seed(self.seed, "order", epoch)))
            perm = perm[: n_batches * size]
            lengths = split.lengths.cpu()[perm]
            pool = size * BUCKET_POOL
            pieces = [perm[i:i + pool][torch.argsort(lengths[i:i + pool], stable=True)]
                      for i in range(0, len(perm), pool)]
            batches = torch.cat(pieces).view(n_batches, size)
            order = torch.randperm(n_batches, generator=generator(derive_seed(self.seed, "buckets", epoch)))
            self._perm = (epoch, batches[order].to(self.device))
        return self._perm[1]

    def _permutation(self, epoch: int) -> torch.Tensor:
        if self._perm is None or self._perm[0] != epoch:
            n = len(self.split)  # type: ignore[arg-type]
            perm = torch.randperm(n, generator=generator(derive_seed(self.seed, "order", epoch)))
            self._perm = (epoch, perm.to(self.device))
        return self._perm[1]

    def indices(self, step: int) -> torch.Tensor:
        """The split's examples in the batch of ``step`` (stored splits only)."""
        assert self.split is not None, "generated training data has no indices"
        n = len(self.split)
        if self.bucketed:
            epoch, within = divmod(step, n // self.batch_size)
            return self._buckets(epoch)[within]
        start, taken = step * self.batch_size, 0
        pieces: list[torch.Tensor] = []
        while taken < self.batch_size:  # a batch may run over the end of one epoch's permutation into the next
            epoch, within = divmod(start + taken, n)
            take = min(n - within, self.batch_size - taken)
            pieces.append(self._permutation(epoch)[within:within + take])
            taken += take
        return torch.cat(pieces)

    def batch(self, step: int) -> Batch:
        if self.split is None:
            g = generator(derive_seed(self.seed, "data", step), self.device)
            return self.task.sample(self.batch_size, g, self.options)
        batch = self.split.batch(self.indices(step))
        g = generator(derive_seed(self.seed, "augment", step), self.device)
        batch.x = self.task.augment(batch.x, g, self.options)
        return batch
