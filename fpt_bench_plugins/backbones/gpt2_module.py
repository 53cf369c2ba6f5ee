"""GPT-2's module (the ``gpt2`` backbone's nn.Module) and its torch helpers: the position table grown past 1024
rows and the MLP's tanh GELU. Imported by ``gpt2.py`` only when a backbone is built."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fpt_bench import Role
from fpt_bench.api.structure import RoleMap
from fpt_bench.api.transformer import TransformerModule
from fpt_bench.api.weights import truncate_layers

ROLES = RoleMap(
    layers="h",
    layer=(("ln_1", Role.NORM), ("ln_2", Role.NORM), ("attn", Role.ATTENTION), ("mlp", Role.FEEDFORWARD)),
    top=(("wte", Role.TOKEN_EMBEDDING), ("wpe", Role.POSITION), ("ln_f", Role.NORM)),
)


class GPT2Module(TransformerModule):
    causal = True
    role_map, role_prefix = ROLES, "model."

    def __init__(self, model: nn.Module, provenance: dict[str, Any]) -> None:
        super().__init__(provenance)
        self.model = model
        self._sync()

    def _sync(self) -> None:
        config = self.model.config
        self.hidden_size = config.n_embd
        self.max_positions = config.n_positions
        self.n_layers = len(self.model.h)

    def forward(self, embeds: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(inputs_embeds=embeds, attention_mask=mask, use_cache=False).last_hidden_state

    def used_numel(self, seq_len: int) -> dict[str, int]:
        return {
            "model.wte.weight": 0,
            "model.wpe.weight": min(seq_len, self.max_positions) * self.hidden_size,
        }

    def attention_flops(self, seq_len: int) -> int:
        return 4 * self.n_layers * seq_len * seq_len * self.hidden_size

    def architecture(self) -> dict[str, Any]:
        return {"kind": "gpt2", "config": self.model.config.to_dict()}

    def truncate(self, n_layers: int | None, what: str) -> None:
        self.model.config.n_layer = truncate_layers(self.model, "h", n_layers, what)
        self._sync()


# the two transformers spellings of GPT-2's activation, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
TANH_GELU = {"fused": "gelu_pytorch_tanh", "composite": "gelu_new"}


def set_tanh_gelu(model: nn.Module, kind: str) -> str:
    """Run every block's MLP activation with the ``kind`` implementation of the tanh GELU and return the
    activation's transformers name (recorded in the result). Both compute the same function (they differ by
    float rounding); the fused one is a single kernel that keeps only its input for the backward pass, where
    gelu_new's element-wise chain keeps three more tensors of the MLP's width. A model whose config names
    another activation keeps it."""
    from transformers.activations import ACT2FN

    config = model.config
    if config.activation_function not in TANH_GELU.values():
        return str(config.activation_function)
    config.activation_function = TANH_GELU[kind]
    for block in model.h:
        block.mlp.act = ACT2FN[config.activation_function]
    return str(config.activation_function)


def extend_positions(model: nn.Module, max_len: int) -> dict[str, int]:
    """Grow the position table to ``max_len`` rows for tasks longer than GPT-2's 1024 positions: the original
    rows are kept and the new ones drawn like GPT-2's initialisation (normal, std 0.02). Recorded in the result."""
    old = model.wpe
    new = nn.Embedding(max_len, old.embedding_dim, device=old.weight.device, dtype=old.weight.dtype)
    with torch.no_grad():
        new.weight.normal_(0.0, model.config.initializer_range)
        new.weight[: old.num_embeddings] = old.weight
    model.wpe = new
    before = model.config.n_positions
    model.config.n_positions = max_len
    return {"from": before, "to": max_len}

