"""GPT-2 (Radford et al. 2019) as a frozen backbone, called with ``inputs_embeds`` (its token embedding ``wte`` is
never used). Sizes base/medium/large/xl; weights pretrained (hub id or local directory) or random (from the
config alone: nothing is downloaded)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from fpt_bench import Backbone, BackboneModule, BackboneSpec, Role, UserError, hookimpl

# size -> (hub id, layers, width, heads)
SIZES: dict[str, tuple[str, int, int, int]] = {
    "base": ("gpt2", 12, 768, 12),
    "medium": ("gpt2-medium", 24, 1024, 16),
    "large": ("gpt2-large", 36, 1280, 20),
    "xl": ("gpt2-xl", 48, 1600, 25),
}


class GPT2Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: Literal["base", "medium", "large", "xl"] = "base"
    weights: Literal["pretrained", "random"] = "pretrained"
    source: str | None = Field(default=None, description="hub id or local directory (default: the size's hub id)")
    n_layers: int | None = Field(default=None, gt=0, description="keep only the first n blocks")
    n_embd: int | None = Field(default=None, gt=0, description="width (weights=random only)")
    n_head: int | None = Field(default=None, gt=0, description="attention heads (weights=random only)")
    dropout: float = Field(default=0.1, ge=0, lt=1)
    attention: Literal["sdpa", "eager"] = Field(
        default="sdpa", description="attention kernel: sdpa (PyTorch's fused scaled_dot_product_attention) or "
                                    "eager (the explicit softmax(QK^T)V of older transformers releases)")

    @model_validator(mode="after")
    def _check(self) -> GPT2Options:
        if self.weights == "pretrained" and (self.n_embd or self.n_head):
            raise ValueError("n_embd and n_head only apply to weights=random (pretrained weights fix them)")
        return self


class GPT2Module(BackboneModule):
    causal = True

    def __init__(self, model: nn.Module, provenance: dict[str, Any]) -> None:
        super().__init__()
        self.model = model
        config = model.config
        self.hidden_size = config.n_embd
        self.max_positions = config.n_positions
        self.n_layers = len(model.h)
        self._provenance = provenance

    def forward(self, embeds: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(inputs_embeds=embeds, attention_mask=mask, use_cache=False).last_hidden_state

    def parameter_roles(self) -> dict[str, Role]:
        m = self.model
        groups: list[tuple[str, nn.Module, Role]] = [
            ("model.wte", m.wte, Role.TOKEN_EMBEDDING),
            ("model.wpe", m.wpe, Role.POSITION),
            ("model.ln_f", m.ln_f, Role.NORM),
        ]
        for i, block in enumerate(m.h):
            prefix = f"model.h.{i}"
            groups += [
                (f"{prefix}.ln_1", block.ln_1, Role.NORM),
                (f"{prefix}.ln_2", block.ln_2, Role.NORM),
                (f"{prefix}.attn", block.attn, Role.ATTENTION),
                (f"{prefix}.mlp", block.mlp, Role.FEEDFORWARD),
            ]
        return {f"{prefix}.{name}": role for prefix, module, role in groups
                for name, _ in module.named_parameters()}

    def parameter_layers(self) -> dict[str, int]:
        return {f"model.h.{i}.{name}": i for i, block in enumerate(self.model.h)
                for name, _ in block.named_parameters()}

    def used_numel(self, seq_len: int) -> dict[str, int]:
        return {
            "model.wte.weight": 0,
            "model.wpe.weight": min(seq_len, self.max_positions) * self.hidden_size,
        }

    def attention_flops(self, seq_len: int) -> int:
        return 4 * self.n_layers * seq_len * seq_len * self.hidden_size

    def provenance(self) -> dict[str, Any]:
        return self._provenance


class GPT2(Backbone):
    spec = BackboneSpec(
        name="gpt2",
        description="GPT-2 base/medium/large/xl, pretrained on WebText or randomly initialised",
        citation="Radford et al. Language Models are Unsupervised Multitask Learners. 2019.",
    )
    Options = GPT2Options
    smoke_args = {"weights": "random", "n_layers": 2, "n_embd": 32, "n_head": 2}

    def build(self, options: GPT2Options, max_len: int) -> GPT2Module:  # type: ignore[override]
        from transformers import GPT2Config, GPT2Model

        hub_id, n_layer, n_embd, n_head = SIZES[options.size]
        source = options.source or hub_id
        drop = {"resid_pdrop": options.dropout, "embd_pdrop": options.dropout, "attn_pdrop": options.dropout}
        if options.weights == "random":
            config = GPT2Config(
                n_layer=options.n_layers or n_layer, n_embd=options.n_embd or n_embd,
                n_head=options.n_head or n_head, **drop,
            )
            config._attn_implementation = options.attention
            model = GPT2Model(config)
            provenance: dict[str, Any] = {"weights": "random", "init": "transformers default (normal, std 0.02)"}
        else:
            model = load_pretrained(GPT2Model, source, drop, options.attention)
            if options.n_layers is not None:
                if options.n_layers > len(model.h):
                    raise UserError(f"n_layers={options.n_layers}, but {source} has only {len(model.h)} layers")
                model.h = nn.ModuleList(list(model.h)[: options.n_layers])
                model.config.n_layer = options.n_layers
            provenance = {"weights": "pretrained", "source": source}
        if max_len > model.config.n_positions:
            provenance["extended_positions"] = extend_positions(model, max_len)
        module = GPT2Module(model, provenance)
        module.attention = options.attention
        return module


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


def load_pretrained(model_class: Any, source: str, config_overrides: dict[str, Any],
                    attention: str = "sdpa") -> nn.Module:
    """``from_pretrained`` for a hub id or a local directory, with one clear error when weights are missing."""
    is_dir = Path(source).expanduser().is_dir()
    try:
        return model_class.from_pretrained(
            str(Path(source).expanduser()) if is_dir else source, attn_implementation=attention,
            trust_remote_code=False, **config_overrides,
        )
    except (OSError, ValueError) as exc:
        cache = os.environ.get("HF_HUB_CACHE") or os.environ.get("HF_HOME") or "~/.cache/huggingface"
        where = f"the local directory {source}" if is_dir else (
            f"the Hugging Face cache ({cache}) and the hub (id {source!r})")
        raise UserError(
            f"could not load pretrained weights from {where}: {str(exc).splitlines()[0]}. "
            f"Offline, download them elsewhere (`huggingface-cli download {source}`) and copy the directory "
            f"here, then pass --backbone-args source=/path/to/that/dir; or use weights=random"
        ) from None


@hookimpl
def fpt_bench_register_backbones(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(GPT2())
