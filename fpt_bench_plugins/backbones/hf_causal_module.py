"""The torch side of ``hf_causal``: the module ``hf_decoder`` and ``hf_ssm`` build (a Hugging Face causal model fed
``inputs_embeds``) and the compute-dtype rule (``hf_causal``'s docstring). The backbones import it when they build a
module, so listing the plugins does not import torch.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch
from torch import nn

from fpt_bench import Role
from fpt_bench.api.families import ModelFamily
from fpt_bench.api.structure import layer_list, submodule
from fpt_bench.api.transformer import TransformerModule
from fpt_bench.api.weights import truncate_layers

FLOAT32_ROLES = frozenset({Role.NORM, Role.POSITION})  # kept in float32 in a bfloat16 backbone: fpt trains them
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def stored_dtype(config: Any) -> torch.dtype | None:
    """The weights' dtype a config records (``dtype``; ``torch_dtype`` before transformers 4.56), if any."""
    value = getattr(config, "dtype", None) if hasattr(config, "dtype") else getattr(config, "torch_dtype", None)
    if isinstance(value, str):
        value = getattr(torch, value, None)
    return value if isinstance(value, torch.dtype) else None


def choose_dtype(option: str, config: Any) -> tuple[torch.dtype, str]:
    """The compute dtype and the reason (recorded in the result)."""
    if option != "auto":
        return DTYPES[option], f"dtype={option}"
    stored = stored_dtype(config)
    if stored is None:
        return torch.float32, "auto: the config names no dtype"
    if stored != torch.bfloat16:
        return torch.float32, f"auto: the checkpoint stores {str(stored).removeprefix('torch.')}"
    if not (torch.cuda.is_available() and torch.cuda.is_bf16_supported()):
        return torch.float32, "auto: bfloat16 checkpoint, no bf16-capable CUDA device here"
    return torch.bfloat16, "auto: bfloat16 checkpoint on a bf16-capable CUDA device"


class CausalLMModule(TransformerModule):
    """A transformers causal model (no LM head) of a known family, fed embeddings, reading every position."""

    causal = True

    def __init__(self, model: nn.Module, family: ModelFamily, provenance: dict[str, Any], kind: str,
                 learned_rows: int | None = None) -> None:
        super().__init__(provenance)
        self.model = model
        self.family = family
        self.role_map, self.role_prefix = family.roles, "model."
        self.kind = kind  # the backbone name (hf_decoder / hf_ssm), stored in checkpoints
        width = getattr(model.config, family.input_width_key)
        self.position = nn.Parameter(torch.zeros(learned_rows, width)) if learned_rows else None
        self.compute_dtype = torch.float32
        self.attention = None if family.kind == "ssm" else model.config._attn_implementation
        self._sync()
        self._mark_direct_weights()

    def _mark_direct_weights(self) -> None:
        """Tell forward-hook adapters (LoRA) which modules the model may bypass (``ModelFamily.direct_weights``)."""
        for layer in layer_list(self.model, self.family.roles):
            for path in self.family.direct_weights:
                module = submodule(layer, path)
                if module is not None:
                    module.fpt_hookable = False

    def _sync(self) -> None:
        config = self.model.config
        self.hidden_size = int(getattr(config, self.family.input_width_key))
        self.n_layers = len(layer_list(self.model, self.family.roles))
        limits = []
        if self.family.position:
            table = submodule(self.model, self.family.position)
            limits.append(table.num_embeddings - self.family.position_offset)  # type: ignore[union-attr]
        if self.position is not None:
            limits.append(self.position.shape[0])
        self.max_positions = min(limits) if limits else None  # rotary and state-space models: no table

    # ------------------------------------------------------------------------------------ forward
    def forward(self, embeds: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.position is not None:
            embeds = embeds + self.position[: embeds.shape[1]]
        low = self.compute_dtype != torch.float32
        if low and self.training:
            self._widen_trainable()
        with torch.autocast(embeds.device.type, self.compute_dtype) if low else nullcontext():
            hidden = self.model(inputs_embeds=embeds, attention_mask=mask, use_cache=False).last_hidden_state
        return hidden.to(embeds.dtype)

    def _apply(self, fn: Any, recurse: bool = True) -> CausalLMModule:
        """``model.to(device)`` (the runner's, after the policy and before the optimiser and any resume) also
        widens what the policy trains to float32."""
        out = super()._apply(fn, recurse)
        if self.compute_dtype != torch.float32:
            self._widen_trainable()
        return out

    def _widen_trainable(self) -> None:
        """Parameters a policy trains are held in float32 (before the optimiser's first step sees them)."""
        for param in self.parameters():
            if param.requires_grad and param.dtype != torch.float32:
                param.data = param.data.float()

    def set_compute_dtype(self, dtype: torch.dtype) -> None:
        """Hold the weights in ``dtype``, the norms and positions (what fpt trains) in float32."""
        roles = self.parameter_roles()
        for name, param in self.named_parameters():
            param.data = param.data.to(torch.float32 if roles[name] in FLOAT32_ROLES else dtype)
        self.compute_dtype = dtype

    # -------------------------------------------------------------------------------------- roles
    def used_numel(self, seq_len: int) -> dict[str, int]:
        used = {f"model.{self.family.token_embedding}.weight": 0}
        if self.family.position:
            table = submodule(self.model, self.family.position)
            rows = table.num_embeddings - self.family.position_offset  # type: ignore[union-attr]
            used[f"model.{self.family.position}.weight"] = min(seq_len, rows) * table.embedding_dim  # type: ignore[union-attr]
        if self.position is not None:
            used["position"] = min(seq_len, self.position.shape[0]) * self.position.shape[1]
        return used

    def attention_flops(self, seq_len: int) -> int:
        if self.family.kind == "ssm":
            return 0
        config = self.model.config
        heads = getattr(config, "num_attention_heads", None)
        head_dim = getattr(config, "head_dim", None)
        width = heads * head_dim if heads and head_dim else config.hidden_size
        return 4 * self.n_layers * seq_len * seq_len * width

    def architecture(self) -> dict[str, Any]:
        rows = None if self.position is None else int(self.position.shape[0])
        return {"kind": self.kind, "family": self.family.model_type, "config": self.model.config.to_dict(),
                "learned_positions": rows}

    def truncate(self, n_layers: int | None, what: str) -> None:
        parent_path, _, attribute = self.family.roles.layers.rpartition(".")
        parent = submodule(self.model, parent_path)
        assert parent is not None
        depth = truncate_layers(parent, attribute, n_layers, what)
        set_depth(self.model.config, depth)
        self._sync()

    def extend_positions(self, max_len: int) -> dict[str, int] | None:
        """Grow a learned absolute position table (OPT) for tasks longer than it: new rows drawn like the model's
        init (normal, std ``init_std`` or ``initializer_range``); None when nothing had to change."""
        if not self.family.position:
            return None
        table = submodule(self.model, self.family.position)
        assert isinstance(table, nn.Embedding)
        before = table.num_embeddings - self.family.position_offset
        if max_len <= before:
            return None
        config = self.model.config
        std = getattr(config, "init_std", None) or getattr(config, "initializer_range", 0.02)
        old = table.weight.detach()
        new = torch.empty(max_len + self.family.position_offset, old.shape[1], dtype=old.dtype, device=old.device)
        with torch.no_grad():
            new.normal_(0.0, std)
            new[: old.shape[0]] = old
        table.weight = nn.Parameter(new, requires_grad=table.weight.requires_grad)
        table.num_embeddings = new.shape[0]
        config.max_position_embeddings = max_len
        self._sync()
        return {"from": before, "to": max_len}


def set_depth(config: Any, depth: int) -> None:
    config.num_hidden_layers = depth
    layer_types = getattr(config, "layer_types", None)  # per-layer attention kinds (Gemma 2/3, Qwen3, ...)
    if isinstance(layer_types, list) and len(layer_types) > depth:
        config.layer_types = layer_types[:depth]
