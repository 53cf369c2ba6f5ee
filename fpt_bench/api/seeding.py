"""Seeds: every random stream of a cell derives from the cell seed, so a cell is a pure function of it."""

from __future__ import annotations

import hashlib
import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a tensor is met: listing the plugins loads without it
    import torch


def derive_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed for the stream named by ``parts`` (stable across processes and platforms)."""
    text = ":".join([str(seed), *map(str, parts)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def seed_everything(seed: int) -> dict[str, int]:
    """Seed python, numpy and torch from the cell seed; return the seeds used (recorded in the result)."""
    import numpy as np
    import torch

    seeds = {
        "cell": seed,
        "python": derive_seed(seed, "python"),
        "numpy": derive_seed(seed, "numpy") % 2**32,
        "torch": derive_seed(seed, "torch"),
        "data": derive_seed(seed, "data"),
    }
    random.seed(seeds["python"])
    np.random.seed(seeds["numpy"])
    torch.manual_seed(seeds["torch"])
    return seeds


def generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    import torch

    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g
