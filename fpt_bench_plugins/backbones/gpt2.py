"""GPT-2 (Radford et al. 2019) as a frozen backbone, called with ``inputs_embeds`` (its token embedding ``wte`` is
never used). Sizes base/medium/large/xl; weights pretrained (hub id or local directory), random (from the
config alone: nothing is downloaded), stats (Gaussian per tensor with the pretrained mean/std) or a harness
checkpoint (``checkpoint:PATH`` / ``result:RESULT_JSON``)."""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import ConfigDict, Field
from torch import nn

from fpt_bench import BackboneSpec, Role, hookimpl
from fpt_bench.api.checkpoint_schema import Architecture
from fpt_bench.api.structure import RoleMap, TransformerOptions
from fpt_bench.api.transformer import TransformerBackbone, TransformerModule
from fpt_bench.api.weights import load_pretrained, model_from_config, truncate_layers

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


class GPT2Architecture(Architecture):
    """What a saved GPT-2 backbone's ``architecture`` holds (``GPT2Module.architecture``)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    kind: Literal["gpt2"]
    config: dict[str, Any]


class GPT2(TransformerBackbone):
    spec = BackboneSpec(
        name="gpt2",
        description="GPT-2 base/medium/large/xl: pretrained on WebText, random, stats-matched or a saved checkpoint",
        citation="Radford et al. Language Models are Unsupervised Multitask Learners. 2019.",
    )
    Options = GPT2Options
    smoke_args = {"weights": "random", "n_layers": 2, "n_embd": 32, "n_head": 2}
    kind = "gpt2"
    random_alternative = "weights=random builds GPT-2 from its config alone (no files)"
    architecture_schema = GPT2Architecture

    def source(self, options: GPT2Options) -> str:  # type: ignore[override]
        return options.source or SIZES[options.size][0]

    def random_module(self, options: GPT2Options, max_len: int, provenance: dict[str, Any]) -> GPT2Module:
        from transformers import GPT2Config, GPT2Model

        _, n_layer, n_embd, n_head = SIZES[options.size]
        config = GPT2Config(n_layer=options.n_layers or n_layer, n_embd=options.n_embd or n_embd,
                            n_head=options.n_head or n_head, **_dropout(options))
        return GPT2Module(model_from_config(GPT2Model, config, options.attention == "sdpa"), provenance)

    def pretrained_module(self, source: str, options: GPT2Options, max_len: int,
                          provenance: dict[str, Any]) -> GPT2Module:
        from transformers import GPT2Model

        return GPT2Module(load_pretrained(GPT2Model, source, _dropout(options), options.attention == "sdpa"),
                          provenance)

    def checkpoint_module(self, checkpoint: Any, options: GPT2Options, max_len: int,
                          provenance: dict[str, Any]) -> GPT2Module:
        from transformers import GPT2Config, GPT2Model

        config = GPT2Config.from_dict({**checkpoint.architecture["config"], **_dropout(options)})
        return GPT2Module(model_from_config(GPT2Model, config, options.attention == "sdpa"), provenance)

    def finish(self, module: GPT2Module, options: GPT2Options, max_len: int) -> None:  # type: ignore[override]
        if max_len > module.model.config.n_positions:
            module._provenance["extended_positions"] = extend_positions(module.model, max_len)
            module._sync()
        module.attention = options.attention
        module.activation = set_tanh_gelu(module.model, options.gelu)


def _dropout(options: GPT2Options) -> dict[str, float]:
    return {"resid_pdrop": options.dropout, "embd_pdrop": options.dropout, "attn_pdrop": options.dropout}


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
