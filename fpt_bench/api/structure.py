"""Roles from module structure, and the options every transformer backbone shares.

A ``RoleMap`` names modules (or a module's own parameter) by their path (``attention.self``, ``mlp``) and gives
each a role; a parameter takes the role of the deepest named module that owns it. A parameter that no named
module owns is an error that names it: roles are never guessed from parameter names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fpt_bench.api.errors import UserError
from fpt_bench.api.roles import Role
from fpt_bench.api.weights import KINDS, WEIGHTS_HELP, WeightSource, parse_weights

if TYPE_CHECKING:  # torch is imported where a tensor is met: listing the plugins loads without it
    from torch import nn


@dataclass(frozen=True)
class RoleMap:
    """``top``: (module path, role) below the root; ``layer``: (path inside one layer, role); ``layers``: the
    path of the ModuleList of layers (blocks)."""

    layers: str
    layer: tuple[tuple[str, Role], ...]
    top: tuple[tuple[str, Role], ...] = ()


def submodule(root: nn.Module, path: str) -> nn.Module | None:
    from torch import nn

    module: nn.Module | None = root
    for part in path.split(".") if path else []:
        module = getattr(module, part, None) if module is not None else None
        if not isinstance(module, nn.Module):
            return None
    return module


def layer_list(root: nn.Module, role_map: RoleMap) -> nn.ModuleList:
    from torch import nn

    layers = submodule(root, role_map.layers)
    if not isinstance(layers, nn.ModuleList):
        raise UserError(f"{type(root).__name__} has no layer list at {role_map.layers!r}: this transformers version "
                        f"lays the model out differently from what the backbone plugin knows")
    return layers


def _mapped(root: nn.Module, prefix: str) -> nn.Module:
    module = submodule(root, prefix.rstrip("."))
    if module is None:
        raise RuntimeError(f"{type(root).__name__} has no submodule {prefix!r}")
    return module


def roles_from_structure(root: nn.Module, role_map: RoleMap, prefix: str = "",
                         extra: dict[str, Role] | None = None) -> dict[str, Role]:
    """Role of every parameter of ``root`` (names as ``root.named_parameters()`` gives them).

    ``prefix`` is the path of the mapped model inside ``root`` (e.g. ``model.``); ``extra`` maps further module
    paths (relative to ``root``) to roles."""
    owners: dict[str, Role] = {f"{prefix}{path}": role for path, role in role_map.top}
    for i in range(len(layer_list(_mapped(root, prefix), role_map))):
        for path, role in role_map.layer:
            owners[f"{prefix}{role_map.layers}.{i}.{path}"] = role
    owners.update(extra or {})
    roles: dict[str, Role] = {}
    unmapped = []
    for name, _ in root.named_parameters():
        parts = name.split(".")  # the parameter itself, then its owners from the deepest up
        for cut in range(len(parts), 0, -1):
            role = owners.get(".".join(parts[:cut]))
            if role is not None:
                roles[name] = role
                break
        else:
            unmapped.append(name)
    if unmapped:
        raise UserError(f"{type(root).__name__}: no role for parameter(s) {', '.join(unmapped[:6])}: the module "
                        f"layout differs from what the backbone plugin knows (a different transformers version?)")
    return roles


def layers_of(root: nn.Module, role_map: RoleMap, prefix: str = "") -> dict[str, int]:
    """Parameter name -> layer index for the parameters inside the layers."""
    layers = layer_list(_mapped(root, prefix), role_map)
    return {f"{prefix}{role_map.layers}.{i}.{name}": i for i, layer in enumerate(layers)
            for name, _ in layer.named_parameters()}


# Upper bounds of the size options: several times any published transformer (GPT-3: 96 layers of width 12,288 and
# 96 heads); what the machine can hold is checked before building (fpt_bench.api.memory).
MAX_LAYERS, MAX_WIDTH, MAX_HEADS = 1024, 65536, 1024
MAX_POSITIONS = 1 << 20  # position-table rows (the longest task here: 2,000 tokens)


class TransformerOptions(BaseModel):
    """Options every transformer backbone has: the weight source, the source model, depth, random-init sizes."""

    model_config = ConfigDict(extra="forbid")
    weights: str = Field(default="pretrained", description=WEIGHTS_HELP)
    source: str | None = Field(default=None, description="hub id or local directory of the pretrained model")
    n_layers: int | None = Field(default=None, gt=0, le=MAX_LAYERS,
                                description="keep only the first n layers (blocks)")
    n_embd: int | None = Field(default=None, gt=0, le=MAX_WIDTH, description="width (weights=random only)")
    n_head: int | None = Field(default=None, gt=0, le=MAX_HEADS, description="attention heads (weights=random only)")

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: str) -> str:
        parse_weights(value, KINDS)
        return value

    @model_validator(mode="after")
    def _sizes(self) -> Any:
        if self.weight_source.kind != "random" and (self.n_embd or self.n_head):
            raise ValueError("n_embd and n_head only apply to weights=random (other weights fix them)")
        if self.n_embd and self.n_head and self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        return self

    @property
    def weight_source(self) -> WeightSource:
        return parse_weights(self.weights, KINDS)


class PresetOptions(TransformerOptions):
    """Options of a backbone that loads a model of several families: ``preset=`` (a short name), ``source=`` (a hub
    id or folder) or, for random init, ``family=`` (a family's default config). Subclasses narrow the types."""

    preset: str | None = Field(default=None, description="a known model by short name")
    family: str | None = Field(default=None, description="weights=random without a source: that family's default "
                                                         "config")
    dropout: float | None = Field(default=None, ge=0, lt=1, description="dropout (default: the model's own)")

    @model_validator(mode="after")
    def _which(self) -> Any:
        weights = self.weight_source
        if self.family and (weights.kind != "random" or self.source or self.preset):
            raise ValueError("family= only applies to weights=random without source= or preset=")
        if self.source and self.preset:
            raise ValueError("give source= or preset=, not both")
        if not (weights.from_checkpoint or self.source or self.preset or self.family):
            raise ValueError("give preset=NAME or source=HUB_ID_OR_DIR (or family=NAME with weights=random); "
                             "`fpt-bench ls backbones --options` lists the presets")
        return self
