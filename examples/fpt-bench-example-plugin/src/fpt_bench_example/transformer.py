"""``torch_transformer``: a small pre-norm ``torch.nn.TransformerEncoder`` with a learned position table.

Roles come from the module structure (each layer's ``self_attn`` is attention, ``linear1``/``linear2`` are the
feed-forward, ``norm1``/``norm2`` and the final norm are LayerNorms), never from parameter-name patterns.
Weights are random (PyTorch's default initialisation) or loaded from a ``torch.save``d state dict.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from fpt_bench import Backbone, BackboneModule, BackboneSpec, Role, UserError


class TransformerOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n_layers: int = Field(default=4, gt=0)
    d_model: int = Field(default=128, gt=0)
    n_head: int = Field(default=4, gt=0)
    ff_mult: int = Field(default=4, gt=0, description="feed-forward width = ff_mult * d_model")
    dropout: float = Field(default=0.1, ge=0, lt=1)
    causal: bool = Field(default=False, description="causal self-attention (each position sees only the past)")
    checkpoint: str | None = Field(default=None, description="a torch.save()d state dict of this module to load")


class TransformerModule(BackboneModule):
    def __init__(self, options: TransformerOptions, max_len: int) -> None:
        super().__init__()
        if options.d_model % options.n_head:
            raise UserError(f"torch_transformer: d_model={options.d_model} is not divisible by n_head={options.n_head}")
        self.hidden_size = options.d_model
        self.max_positions = max_len
        self.n_layers = options.n_layers
        self.causal = options.causal
        self.position = nn.Embedding(max_len, options.d_model)
        layer = nn.TransformerEncoderLayer(
            options.d_model, options.n_head, dim_feedforward=options.ff_mult * options.d_model,
            dropout=options.dropout, batch_first=True, norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, options.n_layers, norm=nn.LayerNorm(options.d_model),
                                             enable_nested_tensor=False)
        self._provenance: dict[str, Any] = {"weights": "random", "init": "torch.nn defaults"}

    def forward(self, embeds: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        length = embeds.shape[1]
        hidden = embeds + self.position(torch.arange(length, device=embeds.device))
        padding = None if mask is None else mask == 0  # True where a position is padding
        causal = nn.Transformer.generate_square_subsequent_mask(length, device=embeds.device) if self.causal else None
        return self.encoder(hidden, mask=causal, src_key_padding_mask=padding, is_causal=self.causal)

    def parameter_roles(self) -> dict[str, Role]:
        groups: list[tuple[str, nn.Module, Role]] = [
            ("position", self.position, Role.POSITION),
            ("encoder.norm", self.encoder.norm, Role.NORM),
        ]
        for i, layer in enumerate(self.encoder.layers):
            prefix = f"encoder.layers.{i}"
            groups += [
                (f"{prefix}.self_attn", layer.self_attn, Role.ATTENTION),
                (f"{prefix}.linear1", layer.linear1, Role.FEEDFORWARD),
                (f"{prefix}.linear2", layer.linear2, Role.FEEDFORWARD),
                (f"{prefix}.norm1", layer.norm1, Role.NORM),
                (f"{prefix}.norm2", layer.norm2, Role.NORM),
            ]
        return {f"{prefix}.{name}": role for prefix, module, role in groups for name, _ in module.named_parameters()}

    def parameter_layers(self) -> dict[str, int]:
        return {f"encoder.layers.{i}.{name}": i for i, layer in enumerate(self.encoder.layers)
                for name, _ in layer.named_parameters()}

    def used_numel(self, seq_len: int) -> dict[str, int]:
        return {"position.weight": min(seq_len, self.max_positions) * self.hidden_size}

    def provenance(self) -> dict[str, Any]:
        return self._provenance

    def load_checkpoint(self, path: str) -> None:
        file = Path(path).expanduser()
        if not file.is_file():
            raise UserError(f"torch_transformer: checkpoint {file} does not exist (pass checkpoint=/path/to/state.pt)")
        state = torch.load(file, map_location="cpu", weights_only=True)
        missing, unexpected = self.load_state_dict(state, strict=False)
        if unexpected or [k for k in missing if not k.startswith("position.")]:
            raise UserError(f"torch_transformer: {file} does not match these options "
                            f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
        self._provenance = {"weights": "checkpoint", "source": str(file)}


class TorchTransformer(Backbone):
    spec = BackboneSpec(
        name="torch_transformer",
        description="a small pre-norm torch.nn.TransformerEncoder (random init or a saved state dict)",
        citation="Vaswani et al. Attention Is All You Need. 2017.",
    )
    Options = TransformerOptions
    smoke_args = {"n_layers": 2, "d_model": 32, "n_head": 2}  # a tiny instance, for check-plugin and tests

    def build(self, options: TransformerOptions, max_len: int) -> TransformerModule:  # type: ignore[override]
        module = TransformerModule(options, max_len)
        if options.checkpoint:
            module.load_checkpoint(options.checkpoint)
        return module
