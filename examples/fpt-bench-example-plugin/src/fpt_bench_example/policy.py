"""``fpt_last_layers``: the FPT recipe (input, output, LayerNorm, positions) plus every parameter of the last
``last`` backbone layers. Works on any backbone whose ``parameter_layers()`` says which layer a parameter is in."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from fpt_bench import FreezePolicy, PolicySpec, Role

FPT_ROLES = frozenset({Role.INPUT, Role.OUTPUT, Role.NORM, Role.POSITION})


class LastLayersOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    last: int = Field(default=1, gt=0, description="how many of the last layers train entirely")


class FPTLastLayers(FreezePolicy):
    spec = PolicySpec(
        name="fpt_last_layers",
        description="fpt + every parameter of the last N backbone layers (policy arg last=N, default 1)",
        trainable_roles=FPT_ROLES,
        citation="fpt-bench-example",
    )
    Options = LastLayersOptions

    def apply(self, model: Any, options: LastLayersOptions) -> None:  # type: ignore[override]
        roles = model.parameter_roles()  # every parameter name -> Role
        layers = model.parameter_layers()  # parameter name -> layer index, for parameters inside a layer
        first_trained = model.backbone.n_layers - options.last
        for name, param in model.named_parameters():
            layer = layers.get(name)
            in_last = layer is not None and layer >= first_trained
            param.requires_grad_(roles[name] in self.spec.trainable_roles or in_last)
