"""Freeze policies beyond the paper's fixed sets: LoRA adapters, and fpt plus roles of chosen layers.

``lora`` (Hu et al. 2022) adds a low-rank update ``scale * B A x`` to every Linear (or GPT-2 Conv1D) module
whose weight the backbone tags with a target role (attention and/or feed-forward), so it works for every
backbone through its roles, with no name matching. The adapters live in ``FPTModel.adapters`` (role
``adapter``) and act through forward hooks; B starts at zero, so the model starts as the frozen one. A backbone
saved with ``--save-backbone`` has the adapters merged into its weights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fpt_bench import FPT_ROLES, FreezePolicy, PolicySpec, Role, UserError

if TYPE_CHECKING:
    from fpt_bench import FPTModel

R = Role

BASES = {"fpt": FPT_ROLES, "io": frozenset({R.INPUT, R.OUTPUT})}


class LoRAOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rank: int = Field(default=8, gt=0, description="rank r of each update")
    alpha: float | None = Field(default=None, gt=0, description="scale = alpha / rank (default alpha = rank)")
    targets: Literal["attention", "feedforward", "attention+feedforward"] = "attention"
    dropout: float = Field(default=0.0, ge=0, lt=1, description="dropout on the adapter input")
    base: Literal["fpt", "io"] = Field(
        default="fpt", description="what else trains: fpt (input, output, norms, positions) or io (input, output)")


class LoRA(FreezePolicy):
    spec = PolicySpec(
        name="lora", description="low-rank adapters on attention and/or feed-forward + fpt (options: rank, alpha, "
        "targets, dropout, base)", trainable_roles=FPT_ROLES | {R.ADAPTER},
        citation="Hu et al. LoRA: Low-Rank Adaptation of Large Language Models. ICLR 2022.",
    )
    Options = LoRAOptions

    def transform(self, model: FPTModel, options: LoRAOptions) -> None:  # type: ignore[override]
        from fpt_bench_plugins.lora_module import add_lora

        add_lora(model, options)

    def apply(self, model: FPTModel, options: LoRAOptions) -> None:  # type: ignore[override]
        self.transform(model, options)
        trainable = BASES[options.base] | {R.ADAPTER}
        roles = model.parameter_roles()
        for name, param in model.named_parameters():
            param.requires_grad_(roles[name] in trainable)


# the roles a backbone's layers hold (the harness's input and output layers are in none)
LAYERED = tuple(r.value for r in Role if r not in (R.INPUT, R.OUTPUT))


class LayerOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    roles: str = Field(
        default="attention+feedforward",
        description=f"roles trained in the chosen layers (on top of fpt), joined by '+': {', '.join(LAYERED)}; "
                    "or all (every parameter of those layers)")
    last: int | None = Field(default=None, gt=0, description="the last N layers")
    layers: str | int | None = Field(default=None, description="layer indices joined by '+', negative from the end")

    @field_validator("roles")
    @classmethod
    def _roles(cls, value: str) -> str:
        parts = value.split("+")
        unknown = [p for p in parts if p not in (*LAYERED, "all")]
        if unknown:
            raise ValueError(f"roles={value!r}: {', '.join(unknown)} is not a layered role (one or more of "
                             f"{', '.join(LAYERED)} joined by '+', or all)")
        return value

    @model_validator(mode="after")
    def _one(self) -> LayerOptions:
        if (self.last is None) == (self.layers is None):
            raise ValueError("give last=N or layers=I+J+... (one of them)")
        return self

    def trained_roles(self) -> frozenset[Role]:
        parts = self.roles.split("+")
        return frozenset(Role(p) for p in LAYERED) if "all" in parts else frozenset(Role(p) for p in parts)

    def chosen(self, n_layers: int) -> set[int]:
        if self.last is not None:
            return set(range(max(0, n_layers - self.last), n_layers))
        try:
            picked = [int(part) for part in str(self.layers).split("+")]
        except ValueError:
            raise UserError(f"fpt_layers: layers={self.layers!r}: expected integers joined by '+', e.g. 0+-1") from None
        bad = [i for i in picked if not -n_layers <= i < n_layers]
        if bad:
            raise UserError(f"fpt_layers: layer(s) {bad} out of range for a backbone of {n_layers} layers")
        return {i % n_layers for i in picked}


class FPTLayers(FreezePolicy):
    """fpt, plus the chosen roles of the chosen layers: a rule on the policy's options, so ``is_trainable`` reads
    them (``apply`` validates the layer choice once against the backbone's depth first)."""

    spec = PolicySpec(
        name="fpt_layers", description="fpt + chosen roles of chosen layers (options: roles, last or layers), "
        "e.g. roles=attention,last=1 or roles=recurrent,last=1 or roles=all,last=2",
        trainable_roles=FPT_ROLES | {R.ATTENTION, R.FEEDFORWARD},
        citation="Lu et al. 2021 (Table 14 generalised)",
    )
    Options = LayerOptions
    smoke_args = {"last": 1}  # the options check-plugin applies it with (it needs last= or layers=)

    def apply(self, model: FPTModel, options: LayerOptions) -> None:  # type: ignore[override]
        options.chosen(model.backbone.n_layers)  # an out-of-range layer is the user's error, said once
        super().apply(model, options)

    def is_trainable(self, name: str, role: Role, layer: int | None, n_layers: int, model: FPTModel,  # type: ignore[override]
                     options: LayerOptions) -> bool:
        return role in FPT_ROLES or (role in options.trained_roles() and layer in options.chosen(n_layers))
