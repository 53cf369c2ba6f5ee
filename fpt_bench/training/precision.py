"""The compute precision of a step: fp32, or bf16 autocast (``precision_auto`` decides which for ``precision=auto``)."""

from __future__ import annotations

import contextlib
from typing import Any

import torch


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
