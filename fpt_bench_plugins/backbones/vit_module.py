"""ViT's module (the ``vit`` backbone's nn.Module: the encoder blocks, final norm and new position table) and its
torch helpers. Imported by ``vit.py`` only when a backbone is built."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fpt_bench import Role
from fpt_bench.api.structure import RoleMap
from fpt_bench.api.transformer import TransformerModule
from fpt_bench.api.weights import truncate_layers

ROLES = RoleMap(
    layers="layers",
    layer=(("attention", Role.ATTENTION), ("mlp", Role.FEEDFORWARD), ("intermediate", Role.FEEDFORWARD),
           ("output", Role.FEEDFORWARD), ("layernorm_before", Role.NORM), ("layernorm_after", Role.NORM)),
    top=(("norm", Role.NORM), ("position", Role.POSITION)),
)


def _parts(vit: nn.Module) -> tuple[nn.ModuleList, nn.Module]:
    """The encoder blocks and the final norm of a ViTModel (transformers 5 layout, or 4's ``encoder.layer``)."""
    layers = getattr(vit, "layers", None)
    if layers is None:
        layers = vit.encoder.layer
    return layers, vit.layernorm


class ViTModule(TransformerModule):
    role_map = ROLES
    def __init__(self, vit: nn.Module, n_positions: int, provenance: dict[str, Any]) -> None:
        super().__init__(provenance)
        self.config = vit.config
        self.layers, self.norm = _parts(vit)
        self.hidden_size = self.config.hidden_size
        self.position = nn.Parameter(torch.zeros(n_positions, self.hidden_size))
        self.dropout = nn.Dropout(self.config.hidden_dropout_prob)
        self.max_positions = n_positions
        self.n_layers = len(self.layers)

    def forward(self, embeds: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self.dropout(embeds + self.position[: embeds.shape[1]])
        attention_mask = None if mask is None else _bidirectional_mask(self.config, hidden, mask)
        for layer in self.layers:
            hidden = layer(hidden, attention_mask)
            if isinstance(hidden, tuple):  # transformers 4 returns (hidden,)
                hidden = hidden[0]
        return self.norm(hidden)

    def used_numel(self, seq_len: int) -> dict[str, int]:
        return {"position": min(seq_len, self.max_positions) * self.hidden_size}

    def stats_target(self) -> nn.Module:
        return nn.ModuleList([self.layers, self.norm])  # not the new position table

    def architecture(self) -> dict[str, Any]:
        return {"kind": "vit", "config": self.config.to_dict(), "n_positions": self.max_positions}

    def truncate(self, n_layers: int | None, what: str) -> None:
        self.n_layers = self.config.num_hidden_layers = truncate_layers(self, "layers", n_layers, what)


def _bidirectional_mask(config: Any, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | None:
    try:
        from transformers.masking_utils import create_bidirectional_mask
    except ImportError:  # older transformers: an additive float mask (B, 1, 1, T)
        return (1.0 - mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
    return create_bidirectional_mask(config=config, inputs_embeds=hidden, attention_mask=mask)


def grow_positions(module: ViTModule, rows: int) -> None:
    old = module.position.detach()
    new = torch.zeros(rows, old.shape[1], dtype=old.dtype, device=old.device)
    new[: old.shape[0]] = old
    module.position = nn.Parameter(new)
    module.max_positions = rows
