"""``--deterministic``: deterministic algorithms for a cell (``torch.use_deterministic_algorithms``).

On a CPU the harness is already bit-reproducible for a given seed (every random stream derives from the cell
seed). On CUDA some kernels (atomic adds in backward passes, cuBLAS split-K reductions, cuDNN autotuning) sum in
an order that varies from run to run; this switch makes PyTorch pick deterministic kernels, or raise an error
naming the operation that has none. It sets ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (unless already set; cuBLAS reads
it when its first handle is made, so the CLI sets it before any cell runs), turns off cuDNN benchmarking, and is
recorded in the result (``provenance.deterministic``). It is not part of the cell config: the same cell run with
and without it is the same experiment, as on another device.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

CUBLAS_ENV = "CUBLAS_WORKSPACE_CONFIG"
CUBLAS_VALUE = ":4096:8"


def prepare_environment(enabled: bool) -> None:
    """Call before any CUDA work when ``enabled``: cuBLAS reads its workspace setting once."""
    if enabled:
        os.environ.setdefault(CUBLAS_ENV, CUBLAS_VALUE)


@contextlib.contextmanager
def deterministic_algorithms(enabled: bool) -> Iterator[None]:
    """Deterministic algorithms inside the block when ``enabled`` (the previous settings come back after)."""
    if not enabled:
        yield
        return
    prepare_environment(True)
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[2], before[3]
