"""ViT (Dosovitskiy et al. 2021) as a frozen backbone, as in Lu et al. 2021 (Table 2): only the encoder blocks
and the final LayerNorm of a Hugging Face ViT (default ``google/vit-base-patch16-224``, ImageNet-21k pretrained
and ImageNet-1k fine-tuned, like the paper's ``vit_base_patch16_224``), with a new zero-initialised trainable
position table (1024 positions, grown for longer tasks). The patch embedding, class token and the ViT's own
position embeddings are dropped."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, Field

from fpt_bench import BackboneSpec, hookimpl
from fpt_bench.api.backbone_checkpoint import BackboneCheckpoint
from fpt_bench.api.checkpoint_schema import Architecture
from fpt_bench.api.structure import MAX_POSITIONS, TransformerOptions
from fpt_bench.api.transformer import TransformerBackbone
from fpt_bench.api.weights import load_pretrained, model_from_config

if TYPE_CHECKING:
    from fpt_bench_plugins.backbones.vit_module import ViTModule

DEFAULT_SOURCE = "google/vit-base-patch16-224"


class ViTOptions(TransformerOptions):
    source: str | None = Field(default=None, description=f"hub id or local directory (default {DEFAULT_SOURCE})")
    n_positions: int = Field(default=1024, gt=0, le=MAX_POSITIONS,
                             description="rows of the new position table (grown to max_len)")
    dropout: float | None = Field(default=None, ge=0, lt=1, description="dropout (default: the model's own, 0)")


class ViTArchitecture(Architecture):
    """What a saved ViT backbone's ``architecture`` holds (``ViTModule.architecture``)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    kind: Literal["vit"]
    config: dict[str, Any]
    n_positions: int = Field(gt=0)


class ViT(TransformerBackbone):
    spec = BackboneSpec(
        name="vit",
        description="ViT-B/16 encoder blocks + final norm (ImageNet-21k/1k) with a new zero-init position table",
        citation="Dosovitskiy et al. An Image is Worth 16x16 Words. ICLR 2021.",
    )
    Options = ViTOptions
    smoke_args = {"weights": "random", "n_layers": 2, "n_embd": 32, "n_head": 2}  # the config only, no weights
    kind = "vit"
    random_alternative = "weights=random builds a ViT from its default config alone (no files)"
    architecture_schema = ViTArchitecture
    random_init = "transformers default"

    def source(self, options: ViTOptions) -> str:  # type: ignore[override]
        return options.source or DEFAULT_SOURCE

    def random_module(self, options: ViTOptions, max_len: int, provenance: dict[str, Any]) -> ViTModule:
        from transformers import ViTConfig, ViTModel

        from fpt_bench_plugins.backbones.vit_module import ViTModule

        config = ViTConfig(**_dropout(options))
        if options.n_embd:
            config.hidden_size, config.intermediate_size = options.n_embd, 4 * options.n_embd
        if options.n_head:
            config.num_attention_heads = options.n_head
        if options.n_layers:
            config.num_hidden_layers = options.n_layers
        vit = model_from_config(ViTModel, config, add_pooling_layer=False)
        return ViTModule(vit, max(options.n_positions, max_len), provenance)

    def pretrained_module(self, source: str, options: ViTOptions, max_len: int,
                          provenance: dict[str, Any]) -> ViTModule:
        from transformers import ViTModel

        from fpt_bench_plugins.backbones.vit_module import ViTModule

        vit = load_pretrained(ViTModel, source, _dropout(options), add_pooling_layer=False)
        return ViTModule(vit, max(options.n_positions, max_len), provenance)

    def checkpoint_module(self, checkpoint: BackboneCheckpoint, options: ViTOptions, max_len: int,
                          provenance: dict[str, Any]) -> ViTModule:
        from transformers import ViTConfig, ViTModel

        from fpt_bench_plugins.backbones.vit_module import ViTModule

        config = ViTConfig.from_dict({**checkpoint.architecture["config"], **_dropout(options)})
        vit = model_from_config(ViTModel, config, add_pooling_layer=False)
        return ViTModule(vit, checkpoint.architecture["n_positions"], provenance)

    def finish(self, module: ViTModule, options: ViTOptions, max_len: int) -> None:  # type: ignore[override]
        from fpt_bench_plugins.backbones.vit_module import grow_positions

        rows = max(options.n_positions, max_len)
        if rows > module.max_positions:  # a checkpoint's table, shorter than this task needs
            grow_positions(module, rows)
        module._provenance["positions"] = {"rows": module.max_positions, "init": "zeros (new, trainable)"}


def _dropout(options: ViTOptions) -> dict[str, float]:
    if options.dropout is None:
        return {}
    return {"hidden_dropout_prob": options.dropout, "attention_probs_dropout_prob": options.dropout}


@hookimpl
def fpt_bench_register_backbones(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(ViT())
