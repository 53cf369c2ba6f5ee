"""The FreezePolicy plugin interface: decides which parameters train."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel

from fpt_bench.api.options import Configurable
from fpt_bench.api.roles import Role
from fpt_bench.api.specs import LayerSelection, PolicySpec

if TYPE_CHECKING:
    from fpt_bench.api.model import FPTModel


class FreezePolicy(Configurable):
    """Trains the parameters whose role is in ``spec.trainable_roles``; ``spec.layer_selection`` can restrict a
    role to some layers (e.g. attention of the last layer only). Override ``transform`` to change the model
    before freezing (adapters, LoRA) and ``is_trainable`` for rules that roles alone cannot say.
    """

    spec: ClassVar[PolicySpec]
    component_kind = "policy"
    options_flag = "--policy-args"

    def transform(self, model: FPTModel, options: BaseModel) -> None:
        """Change the model before freezing (default: nothing)."""

    def is_trainable(self, name: str, role: Role, layer: int | None, n_layers: int, model: FPTModel) -> bool:
        if role not in self.spec.trainable_roles:
            return False
        selection = self.spec.layer_selection.get(role)
        return selection is None or _selected(selection, layer, n_layers)

    def apply(self, model: FPTModel, options: BaseModel) -> None:
        self.transform(model, options)
        roles = model.parameter_roles()
        layers = model.parameter_layers()
        n_layers = model.backbone.n_layers
        for name, param in model.named_parameters():
            param.requires_grad_(self.is_trainable(name, roles[name], layers.get(name), n_layers, model))


def _selected(selection: LayerSelection, layer: int | None, n_layers: int) -> bool:
    if layer is None:
        return False
    if selection.last is not None and layer >= n_layers - selection.last:
        return True
    return bool(selection.indices) and (layer in selection.indices or layer - n_layers in selection.indices)
