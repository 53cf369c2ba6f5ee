"""``TransformerModule``: the module a :class:`fpt_bench.api.transformer.TransformerBackbone` builds. Kept apart from
``fpt_bench.api.transformer`` so that registering and listing backbones does not import torch;
``fpt_bench.api.transformer.TransformerModule`` loads it on first use."""

from __future__ import annotations

from typing import Any

from torch import nn

from fpt_bench.api.backbone_module import BackboneModule
from fpt_bench.api.roles import Role
from fpt_bench.api.structure import RoleMap, layers_of, roles_from_structure, submodule
from fpt_bench.api.weights import truncate_layers


class TransformerModule(BackboneModule):
    """A module a ``TransformerBackbone`` builds: it keeps the provenance the result records and can drop its last
    blocks (``truncate``). Its parameters' roles and layers come from ``role_map`` (a :class:`RoleMap` of the
    model at path ``role_prefix`` inside the module; a new position table at ``position`` has role position)."""

    role_map: RoleMap
    role_prefix: str = ""

    def __init__(self, provenance: dict[str, Any]) -> None:
        super().__init__()
        self._provenance = provenance

    def parameter_roles(self) -> dict[str, Role]:
        extra = {"position": Role.POSITION} if isinstance(getattr(self, "position", None), nn.Parameter) else None
        return roles_from_structure(self, self.role_map, prefix=self.role_prefix, extra=extra)

    def parameter_layers(self) -> dict[str, int]:
        return layers_of(self, self.role_map, prefix=self.role_prefix)

    def provenance(self) -> dict[str, Any]:
        return self._provenance

    def truncate(self, n_layers: int | None, what: str) -> None:
        """Keep the first ``n_layers`` blocks (all when None); ``what`` names the model in errors. The default cuts
        the ModuleList at ``role_map.layers`` (under ``role_prefix``) and sets ``n_layers``; override it (and call
        it) when a config also records the depth."""
        path = ".".join(p for p in (self.role_prefix, self.role_map.layers) if p)
        parent_path, _, attribute = path.rpartition(".")
        parent = submodule(self, parent_path)
        if parent is None or not isinstance(getattr(parent, attribute, None), nn.ModuleList):
            raise TypeError(f"{type(self).__name__} has no ModuleList of blocks at {path!r} (role_map.layers under "
                            f"role_prefix): override truncate()")
        self.n_layers = truncate_layers(parent, attribute, n_layers, what)

    def stats_target(self) -> nn.Module:
        """What ``weights=stats`` redraws (default: everything; a new position table is left as initialised)."""
        return self
