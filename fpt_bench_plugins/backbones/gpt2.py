"""GPT-2 (Radford et al. 2019) as a frozen backbone, called with ``inputs_embeds`` (its token embedding ``wte`` is
never used). Sizes base/medium/large/xl; weights pretrained (hub id or local directory), random (from the
config alone: nothing is downloaded), stats (Gaussian per tensor with the pretrained mean/std) or a harness
checkpoint (``checkpoint:PATH`` / ``result:RESULT_JSON``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, Field

from fpt_bench import BackboneSpec, hookimpl
from fpt_bench.api.checkpoint_schema import Architecture
from fpt_bench.api.structure import TransformerOptions
from fpt_bench.api.transformer import TransformerBackbone
from fpt_bench.api.weights import load_pretrained, model_from_config

if TYPE_CHECKING:
    from fpt_bench_plugins.backbones.gpt2_module import GPT2Module

# size -> (hub id, layers, width, heads)
SIZES: dict[str, tuple[str, int, int, int]] = {
    "base": ("gpt2", 12, 768, 12),
    "medium": ("gpt2-medium", 24, 1024, 16),
    "large": ("gpt2-large", 36, 1280, 20),
    "xl": ("gpt2-xl", 48, 1600, 25),
}


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

        from fpt_bench_plugins.backbones.gpt2_module import GPT2Module

        _, n_layer, n_embd, n_head = SIZES[options.size]
        config = GPT2Config(n_layer=options.n_layers or n_layer, n_embd=options.n_embd or n_embd,
                            n_head=options.n_head or n_head, **_dropout(options))
        return GPT2Module(model_from_config(GPT2Model, config, options.attention == "sdpa"), provenance)

    def pretrained_module(self, source: str, options: GPT2Options, max_len: int,
                          provenance: dict[str, Any]) -> GPT2Module:
        from transformers import GPT2Model

        from fpt_bench_plugins.backbones.gpt2_module import GPT2Module

        return GPT2Module(load_pretrained(GPT2Model, source, _dropout(options), options.attention == "sdpa"),
                          provenance)

    def checkpoint_module(self, checkpoint: Any, options: GPT2Options, max_len: int,
                          provenance: dict[str, Any]) -> GPT2Module:
        from transformers import GPT2Config, GPT2Model

        from fpt_bench_plugins.backbones.gpt2_module import GPT2Module

        config = GPT2Config.from_dict({**checkpoint.architecture["config"], **_dropout(options)})
        return GPT2Module(model_from_config(GPT2Model, config, options.attention == "sdpa"), provenance)

    def finish(self, module: GPT2Module, options: GPT2Options, max_len: int) -> None:  # type: ignore[override]
        from fpt_bench_plugins.backbones.gpt2_module import extend_positions, set_tanh_gelu

        if max_len > module.model.config.n_positions:
            module._provenance["extended_positions"] = extend_positions(module.model, max_len)
            module._sync()
        module.attention = options.attention
        module.activation = set_tanh_gelu(module.model, options.gelu)


def _dropout(options: GPT2Options) -> dict[str, float]:
    return {"resid_pdrop": options.dropout, "embd_pdrop": options.dropout, "attn_pdrop": options.dropout}


@hookimpl
def fpt_bench_register_backbones(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(GPT2())
