"""The LoRA adapters themselves (``nn.Module``s, so they import torch): attached by the ``lora`` policy
(``fpt_bench_plugins.lora``), which imports this module when it is applied, not when it is registered."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

from fpt_bench import Role, UserError

if TYPE_CHECKING:
    from fpt_bench import FPTModel
    from fpt_bench_plugins.lora import LoRAOptions

TARGETS = {"attention": {Role.ATTENTION}, "feedforward": {Role.FEEDFORWARD},
           "attention+feedforward": {Role.ATTENTION, Role.FEEDFORWARD}}

class LoRAAdapter(nn.Module):
    """``scale * B (A x)`` for one adapted module; ``target`` is the adapted weight's name in the backbone."""

    def __init__(self, target: str, in_features: int, out_features: int, rank: int, scale: float,
                 dropout: float, transposed: bool, layer: int | None) -> None:
        super().__init__()
        self.lora_a = nn.Parameter(torch.empty(rank, in_features))
        self.lora_b = nn.Parameter(torch.zeros(out_features, rank))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))  # as nn.Linear initialises a weight
        self.scale, self.target, self.transposed, self.layer = scale, target, transposed, layer
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.linear(self.dropout(x), self.lora_a), self.lora_b) * self.scale

    def merged_delta(self) -> tuple[str, torch.Tensor]:
        """What to add to the adapted weight to fold this adapter in (used by ``--save-backbone``)."""
        delta = (self.lora_b @ self.lora_a).detach() * self.scale
        return self.target, delta.t() if self.transposed else delta


def _linear_shape(module: nn.Module) -> tuple[int, int, bool] | None:
    """(in, out, weight stored as (in, out)) for nn.Linear and transformers' Conv1D; None otherwise."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features, False
    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # pragma: no cover
        return None
    if isinstance(module, Conv1D):
        return module.weight.shape[0], module.weight.shape[1], True
    return None


def add_lora(model: FPTModel, options: LoRAOptions) -> int:
    """Attach adapters to every Linear/Conv1D of the backbone whose weight has a target role; returns how many."""
    roles = model.backbone.parameter_roles()
    layers = model.backbone.parameter_layers()
    targets = TARGETS[options.targets]
    scale = (options.alpha or options.rank) / options.rank
    count = 0
    for name, module in model.backbone.named_modules():
        shape = _linear_shape(module)
        weight = f"{name}.weight"
        # a module its model may use without calling it (fused kernels read the weight) cannot be hooked
        if shape is None or roles.get(weight) not in targets or getattr(module, "fpt_hookable", True) is False:
            continue
        adapter = LoRAAdapter(weight, shape[0], shape[1], options.rank, scale, options.dropout, shape[2],
                              layers.get(weight)).to(module.weight.device)
        model.adapters[name.replace(".", "__")] = adapter
        module.register_forward_hook(lambda _mod, args, out, adapter=adapter: out + adapter(args[0]))
        count += 1
    if not count:
        raise UserError(f"lora: the backbone has no Linear or Conv1D module with role {options.targets}; "
                        f"LoRA needs attention or feed-forward projections")
    return count
