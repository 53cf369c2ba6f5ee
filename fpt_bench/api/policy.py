"""The FreezePolicy plugin interface: decides which parameters train."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from fpt_bench.api.options import Configurable
from fpt_bench.api.roles import Role
from fpt_bench.api.specs import LayerSelection, PolicySpec

if TYPE_CHECKING:
    from fpt_bench.api.model import FPTModel


class FreezePolicy(Configurable):
    """Trains the parameters whose role is in ``spec.trainable_roles``; ``spec.layer_selection`` can restrict a
    role to some layers (e.g. attention of the last layer only), and ``spec.train_layers`` trains every parameter
    of some layers whatever its role. Override ``transform`` to change the model before freezing (adapters, LoRA)
    and ``is_trainable`` for rules that roles alone cannot say.
    """

    spec: ClassVar[PolicySpec]
    component_kind = "policy"
    options_flag = "--policy-args"
    smoke_args: ClassVar[dict[str, Any] | None] = None  # options check-plugin applies it with (None: its defaults)

    def transform(self, model: FPTModel, options: BaseModel) -> None:
        """Change the model before freezing (default: nothing)."""

    def is_trainable(self, name: str, role: Role, layer: int | None, n_layers: int, model: FPTModel,
                     options: BaseModel | None = None) -> bool:
        """Does parameter ``name`` train? ``layer``: its index in ``model.parameter_layers()`` (0-based; None for a
        parameter outside the backbone's layers: input, output, positions, a final norm); ``n_layers``: the
        backbone's ``n_layers`` as built (``model.backbone.n_layers``, after any truncation); ``options``: the
        policy's validated ``Options``. An override written for plugin API 1.1 takes five arguments (no
        ``options``); ``apply`` then calls it with five."""
        if self.spec.train_layers is not None and _selected(self.spec.train_layers, layer, n_layers):
            return True
        if role not in self.spec.trainable_roles:
            return False
        selection = self.spec.layer_selection.get(role)
        return selection is None or _selected(selection, layer, n_layers)

    def apply(self, model: FPTModel, options: BaseModel) -> None:
        self.transform(model, options)
        roles = model.parameter_roles()
        layers = model.parameter_layers()
        n_layers = model.backbone.n_layers
        args, kwargs = _options_argument(self.is_trainable, options)
        for name, param in model.named_parameters():
            param.requires_grad_(self.is_trainable(name, roles[name], layers.get(name), n_layers, model, *args,
                                                   **kwargs))


def _options_argument(method: object, options: BaseModel) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """How a (bound) ``is_trainable`` takes the options: as its sixth positional argument, as the keyword
    ``options``, or not at all (an override written for plugin API 1.1 takes five arguments)."""
    parameters = list(inspect.signature(method).parameters.values())  # type: ignore[arg-type]
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) >= 6 or any(p.kind == p.VAR_POSITIONAL for p in parameters):
        return (options,), {}
    if any(p.name == "options" or p.kind == p.VAR_KEYWORD for p in parameters):
        return (), {"options": options}
    return (), {}


def _selected(selection: LayerSelection, layer: int | None, n_layers: int) -> bool:
    if layer is None:
        return False
    if selection.last is not None and layer >= n_layers - selection.last:
        return True
    return bool(selection.indices) and (layer in selection.indices or layer - n_layers in selection.indices)
