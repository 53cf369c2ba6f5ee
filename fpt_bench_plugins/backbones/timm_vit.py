"""Any timm vision transformer (ViT, DeiT, DINOv2, BEiT, EVA, ...) by model name as a frozen backbone, used like
the paper's ViT (Lu et al. 2021, Table 2; ``vit``): only the transformer blocks and the final norm are kept, with a
new zero-initialised trainable position table (1024 rows, grown for longer tasks). The patch embedding, class and
register tokens, the model's own position embedding and the classifier head are dropped; so are 2-D image
position mechanisms inside the blocks (BEiT's relative position bias tables, EVA's rotary grid), which have no
meaning for a 1-D sequence of task tokens. Needs the optional extra ``timm`` (``pip install 'fpt-bench[timm]'``).

Roles: ``norm1``/``norm2`` and any norm inside the attention or MLP are norms; the attention module (with its
LayerScale ``ls1``/``gamma_1``) is attention; the MLP (with ``ls2``/``gamma_2``) is feed-forward.
"""

from __future__ import annotations

from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

from pydantic import Field

from fpt_bench import BackboneSpec, hookimpl
from fpt_bench.api import availability
from fpt_bench.api.backbone_checkpoint import BackboneCheckpoint
from fpt_bench.api.structure import MAX_POSITIONS, TransformerOptions
from fpt_bench.api.transformer import TransformerBackbone

if TYPE_CHECKING:
    from torch import nn

    from fpt_bench_plugins.backbones.timm_vit_module import TimmViTModule

DEFAULT_MODEL = "vit_base_patch16_224.augreg2_in21k_ft_in1k"


class TimmViTOptions(TransformerOptions):
    model: str = Field(default=DEFAULT_MODEL, description="timm model name, optionally with its pretrained tag "
                       "(e.g. vit_base_patch14_dinov2.lvd142m, deit_base_patch16_224, eva02_base_patch14_224)")
    source: str | None = Field(default=None, description="a local directory (model.safetensors) or .safetensors "
                               "file of timm weights for `model` (default: timm's download from the hub)")
    n_positions: int = Field(default=1024, gt=0, le=MAX_POSITIONS,
                             description="rows of the new position table (grown to max_len)")
    dropout: float | None = Field(default=None, ge=0, lt=1, description="dropout in the blocks (default: 0)")


class TimmViT(TransformerBackbone):
    spec = BackboneSpec(
        name="timm_vit",
        description="any timm vision transformer by name: blocks + final norm, new zero-init position table",
        citation="Wightman, PyTorch Image Models (timm), 2019; Dosovitskiy et al. 2021; Touvron et al. 2021; "
                 "Oquab et al. 2024; Bao et al. 2022; Fang et al. 2023.",
    )
    Options = TimmViTOptions
    kind = "timm_vit"
    random_init = "timm default"
    # a tiny instance from timm's config alone (where timm is not installed, availability says so and check-plugin
    # reports the backbone as not buildable here)
    smoke_args = {"weights": "random", "model": "vit_tiny_patch16_224", "n_layers": 2, "n_embd": 32, "n_head": 2}

    def availability(self, options: TimmViTOptions) -> str | None:  # type: ignore[override]
        """Why a cell cannot run here (no timm, or pretrained weights neither cached nor downloadable)."""
        if find_spec("timm") is None:
            return "needs the timm package: pip install 'fpt-bench[timm]'"
        if options.weight_source.kind not in ("pretrained", "stats") or options.source:
            return None
        from fpt_bench_plugins.backbones.timm_vit_module import hub_id

        repo = hub_id(options.model)
        if repo is None or availability.in_cache(repo, ("model.safetensors", "pytorch_model.bin")):
            return None  # weights from a URL outside the hub (nothing to look up), or cached
        why = availability.hub_unreachable()
        if why is None:
            return None
        cache = availability.hub_cache_dir()
        return (f"needs a download: {options.model} ({repo}) is not in the Hugging Face cache {cache} and "
                f"the hub cannot be reached ({why}); run `hf download {repo}` where there is internet and copy its "
                f"folder into that cache, or pass --backbone-args source=/path/to/model.safetensors")

    def source(self, options: TimmViTOptions) -> str:  # type: ignore[override]
        return options.source or f"timm:{options.model}"

    def random_module(self, options: TimmViTOptions, max_len: int, provenance: dict[str, Any]) -> TimmViTModule:
        from fpt_bench_plugins.backbones.timm_vit_module import create

        kwargs = _dropout(options)
        sizes = {"depth": options.n_layers, "embed_dim": options.n_embd, "num_heads": options.n_head}
        kwargs.update({k: v for k, v in sizes.items() if v})
        return self._module(create(options.model, False, kwargs), options, kwargs, max_len, provenance)

    def pretrained_module(self, source: str, options: TimmViTOptions, max_len: int,
                          provenance: dict[str, Any]) -> TimmViTModule:
        from fpt_bench_plugins.backbones.timm_vit_module import create, load_local

        kwargs = _dropout(options)
        vit = create(options.model, options.source is None, kwargs)
        if options.source:
            load_local(vit, options.source)
        return self._module(vit, options, kwargs, max_len, provenance)

    def checkpoint_module(self, checkpoint: BackboneCheckpoint, options: TimmViTOptions, max_len: int,
                          provenance: dict[str, Any]) -> TimmViTModule:
        from fpt_bench_plugins.backbones.timm_vit_module import TimmViTModule, create

        arch = checkpoint.architecture
        kwargs = {**arch["kwargs"], "depth": arch["n_layers"], **_dropout(options)}
        return TimmViTModule(create(arch["model"], False, kwargs), arch["model"], kwargs, arch["n_positions"],
                             provenance)

    def _module(self, vit: nn.Module, options: TimmViTOptions, kwargs: dict[str, Any], max_len: int,
                provenance: dict[str, Any]) -> TimmViTModule:
        from fpt_bench_plugins.backbones.timm_vit_module import TimmViTModule

        provenance.update(model=options.model, kwargs={k: v for k, v in kwargs.items() if k != "depth"})
        return TimmViTModule(vit, options.model, kwargs, max(options.n_positions, max_len), provenance)

    def finish(self, module: TimmViTModule, options: TimmViTOptions, max_len: int) -> None:  # type: ignore[override]
        module.grow_positions(max(options.n_positions, max_len))
        module._provenance["positions"] = {"rows": module.max_positions, "init": "zeros (new, trainable)"}


def _dropout(options: TimmViTOptions) -> dict[str, Any]:
    if options.dropout is None:
        return {}
    return {"proj_drop_rate": options.dropout, "attn_drop_rate": options.dropout}


@hookimpl
def fpt_bench_register_backbones(registry: Any) -> None:
    registry.add(TimmViT())
