"""The CPU thread count is part of what a cell's numbers depend on.

PyTorch's CPU kernels split reductions (a matmul's inner products, a sum, a norm) between their intra-op threads,
and a different split adds the same numbers in a different order: the same cell on one thread and on two differs
in the last bits (``train_loss`` by ~1e-8 after a smoke run), and the difference grows with training. The local
executor gives each of N workers ``cores // N`` threads, so ``--workers 2`` and ``--workers 1`` give results that
differ in their last digits; both are deterministic *at their thread count*.

So the count is recorded, not pinned (pinning every cell to one thread would make CPU runs several times slower
on a machine with many cores, and pinning to ``cores // workers`` still depends on ``--workers``):

- each result records it (``provenance.threads``) and ``fpt-bench verify`` reruns a cell with it;
- each checkpoint records it, and a resumed cell computes the rest of its steps with the checkpoint's count
  (:func:`adopt_threads`), whatever ``--workers`` the rerun has: a cell resumed under another ``--workers`` is
  bit-identical to one never interrupted, instead of a mix of two thread counts. The count is set back when the
  cell ends.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from fpt_bench.results.schema import MAX_THREADS  # one bound for results and resumes


def adopt_threads(recorded: int | None, checkpoint: Path | None) -> int:
    """Compute with ``recorded`` threads (a resumed checkpoint's count) when it is known; returns the count in
    effect. The caller restores the count it had when the cell ends."""
    current = torch.get_num_threads()
    if recorded is None or recorded == current or not 1 <= recorded <= MAX_THREADS:
        return current
    torch.set_num_threads(recorded)
    print(f"fpt-bench: resuming {checkpoint} on {recorded} CPU thread(s), as it was started (this process has "
          f"{current}): the same thread count gives the same numbers", file=sys.stderr, flush=True)
    return recorded
