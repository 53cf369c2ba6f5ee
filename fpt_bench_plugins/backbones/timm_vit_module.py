"""timm_vit's module (the ``timm_vit`` backbone's nn.Module: a timm model's blocks, final norm and new position
table) and the timm helpers that build one. Imported by ``timm_vit.py`` only when a backbone is built or a
pretrained model's hub repository is looked up."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fpt_bench import Role, UserError
from fpt_bench.api.errors import did_you_mean
from fpt_bench.api.structure import RoleMap
from fpt_bench.api.transformer import TransformerModule
from fpt_bench.api.weights import pretrained_error, truncate_layers

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
