"""GPT-2 (Radford et al. 2019) as a frozen backbone, called with ``inputs_embeds`` (its token embedding ``wte`` is
never used). Sizes base/medium/large/xl; weights pretrained (hub id or local directory), random (from the
config alone: nothing is downloaded), stats (Gaussian per tensor with the pretrained mean/std) or a harness
checkpoint (``checkpoint:PATH`` / ``result:RESULT_JSON``)."""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn

from fpt_bench import Backbone, BackboneModule, BackboneSpec, Role, hookimpl
from fpt_bench_plugins.backbones.availability import unavailable_reason
from fpt_bench_plugins.backbones.structure import RoleMap, TransformerOptions, layers_of, roles_from_structure
from fpt_bench_plugins.backbones.weights import (
    checkpoint_provenance,
    load_pretrained,
    model_from_config,
    open_checkpoint,
    stats_init_,
    truncate_layers,
)

RANDOM_NEEDS_NOTHING = "weights=random builds GPT-2 from its config alone (no files)"
# size -> (hub id, layers, width, heads)
SIZES: dict[str, tuple[str, int, int, int]] = {
    "base": ("gpt2", 12, 768, 12),
    "medium": ("gpt2-medium", 24, 1024, 16),
    "large": ("gpt2-large", 36, 1280, 20),
    "xl": ("gpt2-xl", 48, 1600, 25),
}

ROLES = RoleMap(
    layers="h",
    layer=(("ln_1", Role.NORM), ("ln_2", Role.NORM), ("attn", Role.ATTENTION), ("mlp", Role.FEEDFORWARD)),
    top=(("wte", Role.TOKEN_EMBEDDING), ("wpe", Role.POSITION), ("ln_f", Role.NORM)),
)


class GPT2Options(TransformerOptions):
    size: Literal["base", "medium", "large", "xl"] = "base"
    source: str | None = Field(default=None, description="hub id or local directory (default: the size's hub id)")
    dropout: float = Field(default=0.1, ge=0, lt=1)
    attention: Literal["sdpa", "eager"] = Field(
        default="sdpa", description="attention kernel: sdpa (PyTorch's fused scaled_dot_product_attention) or "
                                    "eager (the explicit softmax(QK^T)V of older transformers releases)")
    gelu: Literal["fused", "composite"] = Field(
        default="fused", description="the MLP's tanh-approximated GELU: fused (PyTorch's one-kernel "
                                     "F.gelu(approximate='tanh')) or composite (transformers' gelu_new: the same "
                                     "formula as separate element-wise ops, which keep three more activation "
                                     "tensors per block for the backward pass)")


class GPT2Module(BackboneModule):
    causal = True

    def __init__(self, model: nn.Module, provenance: dict[str, Any]) -> None:
        super().__init__()
        self.model = model
        self._provenance = provenance
        self._sync()

    def _sync(self) -> None:
        config = self.model.config
        self.hidden_size = config.n_embd
        self.max_positions = config.n_positions
        self.n_layers = len(self.model.h)

    def forward(self, embeds: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(inputs_embeds=embeds, attention_mask=mask, use_cache=False).last_hidden_state

    def parameter_roles(self) -> dict[str, Role]:
        return roles_from_structure(self, ROLES, prefix="model.")

    def parameter_layers(self) -> dict[str, int]:
        return layers_of(self, ROLES, prefix="model.")

    def used_numel(self, seq_len: int) -> dict[str, int]:
        return {
            "model.wte.weight": 0,
            "model.wpe.weight": min(seq_len, self.max_positions) * self.hidden_size,
        }

    def attention_flops(self, seq_len: int) -> int:
        return 4 * self.n_layers * seq_len * seq_len * self.hidden_size

    def provenance(self) -> dict[str, Any]:
        return self._provenance

    def architecture(self) -> dict[str, Any]:
        return {"kind": "gpt2", "config": self.model.config.to_dict()}

    def truncate(self, n_layers: int | None, what: str) -> None:
        self.model.config.n_layer = truncate_layers(self.model, "h", n_layers, what)
        self._sync()


class GPT2(Backbone):
    spec = BackboneSpec(
        name="gpt2",
        description="GPT-2 base/medium/large/xl: pretrained on WebText, random, stats-matched or a saved checkpoint",
        citation="Radford et al. Language Models are Unsupervised Multitask Learners. 2019.",
    )
    Options = GPT2Options
    smoke_args = {"weights": "random", "n_layers": 2, "n_embd": 32, "n_head": 2}

    def availability(self, options: GPT2Options) -> str | None:  # type: ignore[override]
        if not options.weight_source.needs_pretrained:
            return None
        return unavailable_reason(options.source or SIZES[options.size][0], alternative=RANDOM_NEEDS_NOTHING)

    def build(self, options: GPT2Options, max_len: int) -> GPT2Module:  # type: ignore[override]
        from transformers import GPT2Config, GPT2Model

        hub_id, n_layer, n_embd, n_head = SIZES[options.size]
        source = options.source or hub_id
        drop = {"resid_pdrop": options.dropout, "embd_pdrop": options.dropout, "attn_pdrop": options.dropout}
        weights = options.weight_source
        what = source
        sdpa = options.attention == "sdpa"
        if weights.kind == "random":
            config = GPT2Config(
                n_layer=options.n_layers or n_layer, n_embd=options.n_embd or n_embd,
                n_head=options.n_head or n_head, **drop,
            )
            module = GPT2Module(model_from_config(GPT2Model, config, sdpa),
                                {"weights": "random", "init": "transformers default (normal, std 0.02)"})
        elif weights.from_checkpoint:
            checkpoint = open_checkpoint(weights, "gpt2")
            config = GPT2Config.from_dict({**checkpoint.architecture["config"], **drop})
            module = GPT2Module(model_from_config(GPT2Model, config, sdpa), checkpoint_provenance(checkpoint))
            checkpoint.load_into(module)
            what = str(checkpoint.path)
        else:
            model = load_pretrained(GPT2Model, source, drop, sdpa, alternative=RANDOM_NEEDS_NOTHING)
            provenance: dict[str, Any] = {"weights": weights.kind, "source": source}
            if weights.kind == "stats":
                provenance["tensors_redrawn"] = stats_init_(model)
                provenance["init"] = "per-tensor Gaussian with the pretrained tensor's mean and std"
            module = GPT2Module(model, provenance)
        if weights.kind != "random":
            module.truncate(options.n_layers, what)
        if max_len > module.model.config.n_positions:
            module._provenance["extended_positions"] = extend_positions(module.model, max_len)
            module._sync()
        module.attention = options.attention
        module.activation = set_tanh_gelu(module.model, options.gelu)
        return module


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


@hookimpl
def fpt_bench_register_backbones(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(GPT2())
