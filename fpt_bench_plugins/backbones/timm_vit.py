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

import inspect
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import torch
from pydantic import Field
from torch import nn

from fpt_bench import BackboneSpec, Role, UserError, hookimpl
from fpt_bench.api import availability
from fpt_bench.api.backbone_checkpoint import BackboneCheckpoint
from fpt_bench.api.errors import did_you_mean
from fpt_bench.api.structure import MAX_POSITIONS, RoleMap, TransformerOptions
from fpt_bench.api.transformer import TransformerBackbone, TransformerModule
from fpt_bench.api.weights import pretrained_error, truncate_layers

DEFAULT_MODEL = "vit_base_patch16_224.augreg2_in21k_ft_in1k"
R = Role
ROLES = RoleMap(
    layers="layers",
    layer=(("norm1", R.NORM), ("norm2", R.NORM), ("attn", R.ATTENTION), ("attn.q_norm", R.NORM),
           ("attn.k_norm", R.NORM), ("attn.norm", R.NORM), ("ls1", R.ATTENTION), ("gamma_1", R.ATTENTION),
           ("mlp", R.FEEDFORWARD), ("mlp.norm", R.NORM), ("ls2", R.FEEDFORWARD), ("gamma_2", R.FEEDFORWARD)),
    top=(("norm_pre", R.NORM), ("norm", R.NORM), ("position", R.POSITION)),
)


def import_timm() -> Any:
    try:
        import timm
    except ImportError:
        raise UserError("backbone timm_vit needs the timm package: pip install 'fpt-bench[timm]' "
                        "(or pip install timm)") from None
    return timm


class TimmViTOptions(TransformerOptions):
    model: str = Field(default=DEFAULT_MODEL, description="timm model name, optionally with its pretrained tag "
                       "(e.g. vit_base_patch14_dinov2.lvd142m, deit_base_patch16_224, eva02_base_patch14_224)")
    source: str | None = Field(default=None, description="a local directory (model.safetensors) or .safetensors "
                               "file of timm weights for `model` (default: timm's download from the hub)")
    n_positions: int = Field(default=1024, gt=0, le=MAX_POSITIONS,
                             description="rows of the new position table (grown to max_len)")
    dropout: float | None = Field(default=None, ge=0, lt=1, description="dropout in the blocks (default: 0)")


def _final_norm(vit: nn.Module) -> nn.Module:
    """The model's last norm over tokens: ``norm``, or ``fc_norm`` where the model pools first (BEiT)."""
    norm = getattr(vit, "norm", None)
    if isinstance(norm, nn.Module) and not isinstance(norm, nn.Identity):
        return norm
    fc_norm = getattr(vit, "fc_norm", None)
    return fc_norm if isinstance(fc_norm, nn.Module) else nn.Identity()


class TimmViTModule(TransformerModule):
    role_map = ROLES
    def __init__(self, vit: nn.Module, name: str, kwargs: dict[str, Any], n_positions: int,
                 provenance: dict[str, Any]) -> None:
        super().__init__(provenance)
        self.name = name
        self.kwargs = {k: v for k, v in kwargs.items() if k != "depth"}  # timm.create_model's, minus the depth
        self.layers = nn.ModuleList(list(vit.blocks))
        self.norm_pre = getattr(vit, "norm_pre", None) or nn.Identity()
        self.norm = _final_norm(vit)
        self.hidden_size = int(vit.embed_dim)
        self.position = nn.Parameter(torch.zeros(n_positions, self.hidden_size))
        self.max_positions = n_positions
        self.n_layers = len(self.layers)
        self.takes_mask = "attn_mask" in inspect.signature(self.layers[0].forward).parameters
        dropped = 0
        for block in self.layers:  # BEiT: a bias per pair of image patches, sized for the image's grid
            if getattr(getattr(block, "attn", None), "relative_position_bias_table", None) is not None:
                block.attn.relative_position_bias_table = None
                dropped += 1
        if dropped:
            provenance["dropped"] = f"relative position bias tables of {dropped} blocks (2-D image positions)"

    def forward(self, embeds: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self.norm_pre(embeds + self.position[: embeds.shape[1]])
        attn_mask = None
        if mask is not None:
            if not self.takes_mask:
                if not bool(mask.all()):
                    raise UserError(f"timm model {self.name}: its blocks take no attention mask, so they cannot "
                                    f"skip padding; use it on fixed-length tasks, or a ViT/DeiT/EVA model")
            else:
                attn_mask = mask[:, None, None, :].bool()  # (B, 1, 1, T): True = attend
        for block in self.layers:
            hidden = block(hidden, attn_mask=attn_mask) if self.takes_mask else block(hidden)
        return self.norm(hidden)

    def used_numel(self, seq_len: int) -> dict[str, int]:
        return {"position": min(seq_len, self.max_positions) * self.hidden_size}  # type: ignore[type-var]

    def attention_flops(self, seq_len: int) -> int:
        return 4 * self.n_layers * seq_len * seq_len * self.hidden_size

    def stats_target(self) -> nn.Module:
        return nn.ModuleList([self.norm_pre, self.layers, self.norm])  # not the new position table

    def architecture(self) -> dict[str, Any]:
        return {"kind": "timm_vit", "model": self.name, "kwargs": self.kwargs, "n_layers": self.n_layers,
                "n_positions": self.max_positions}

    def truncate(self, n_layers: int | None, what: str) -> None:
        self.n_layers = truncate_layers(self, "layers", n_layers, what)

    def grow_positions(self, rows: int) -> None:
        if rows <= self.position.shape[0]:
            return
        new = torch.zeros(rows, self.hidden_size, dtype=self.position.dtype)
        new[: self.position.shape[0]] = self.position.detach()
        self.position = nn.Parameter(new)
        self.max_positions = rows


def create(name: str, pretrained: bool, kwargs: dict[str, Any]) -> nn.Module:
    """``timm.create_model`` with clear errors: unknown name, not a ViT-family model, weights not reachable."""
    timm = import_timm()
    base = name.split(".", 1)[0]
    if not timm.is_model(base):
        raise UserError(f"timm has no model {base!r}{did_you_mean(base, timm.list_models())}")
    try:
        model = timm.create_model(name, pretrained=pretrained, num_classes=0, **kwargs)
    except (OSError, RuntimeError, ValueError) as exc:
        if not pretrained:
            raise UserError(f"timm could not build {name} with {kwargs}: {exc}") from None
        raise pretrained_error(hub_id(name) or name, exc, f"pretrained timm weights of {name}") from None
    except TypeError as exc:
        raise UserError(f"timm model {name} does not take {sorted(kwargs)}: {exc}") from None
    if not isinstance(getattr(model, "blocks", None), nn.Sequential | nn.ModuleList) or not hasattr(model,
                                                                                                      "embed_dim"):
        raise UserError(f"timm model {name} is not a plain vision transformer (no single stack of `blocks` of one "
                        f"width): timm_vit takes ViT-family models (ViT, DeiT, DINOv2, BEiT, EVA, ...)")
    return model


def hub_id(name: str) -> str | None:
    """The hub repository timm downloads ``name``'s pretrained weights from (None: not on the hub)."""
    timm = import_timm()
    cfg = timm.models.get_pretrained_cfg(name)
    return getattr(cfg, "hf_hub_id", None) if cfg is not None else None


def load_local(model: nn.Module, source: str, keep: tuple[str, ...] = ("blocks.", "norm.", "fc_norm.",
                                                                       "norm_pre.")) -> None:
    """Weights for the kept parts from a local timm ``.safetensors`` file or a directory holding model.safetensors."""
    from safetensors.torch import load_file

    path = Path(source).expanduser()
    file = path / "model.safetensors" if path.is_dir() else path
    if not file.is_file() or file.suffix != ".safetensors":
        raise UserError(f"timm_vit source={source}: expected a .safetensors file of timm weights or a directory "
                        f"holding model.safetensors (as timm and the hub store them)")
    try:
        state = load_file(str(file))
    except Exception as exc:  # noqa: BLE001 - a corrupt or foreign file
        raise UserError(f"could not read {file}: {exc}") from None
    wanted = {k: v for k, v in model.state_dict().items() if k.startswith(keep)}
    missing = sorted(k for k in wanted if k not in state)
    wrong = sorted(k for k in wanted if k in state and state[k].shape != wanted[k].shape)
    if missing or wrong:
        detail = f"missing {', '.join(missing[:4])}" if missing else f"shapes differ for {', '.join(wrong[:4])}"
        raise UserError(f"{file} does not hold the weights of this timm model's blocks: {detail}")
    model.load_state_dict({k: state[k] for k in wanted}, strict=False)


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
        kwargs = _dropout(options)
        sizes = {"depth": options.n_layers, "embed_dim": options.n_embd, "num_heads": options.n_head}
        kwargs.update({k: v for k, v in sizes.items() if v})
        return self._module(create(options.model, False, kwargs), options, kwargs, max_len, provenance)

    def pretrained_module(self, source: str, options: TimmViTOptions, max_len: int,
                          provenance: dict[str, Any]) -> TimmViTModule:
        kwargs = _dropout(options)
        vit = create(options.model, options.source is None, kwargs)
        if options.source:
            load_local(vit, options.source)
        return self._module(vit, options, kwargs, max_len, provenance)

    def checkpoint_module(self, checkpoint: BackboneCheckpoint, options: TimmViTOptions, max_len: int,
                          provenance: dict[str, Any]) -> TimmViTModule:
        arch = checkpoint.architecture
        kwargs = {**arch["kwargs"], "depth": arch["n_layers"], **_dropout(options)}
        return TimmViTModule(create(arch["model"], False, kwargs), arch["model"], kwargs, arch["n_positions"],
                             provenance)

    def _module(self, vit: nn.Module, options: TimmViTOptions, kwargs: dict[str, Any], max_len: int,
                provenance: dict[str, Any]) -> TimmViTModule:
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
