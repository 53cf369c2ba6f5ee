"""The paper's freeze policies (Lu et al. 2021, sections 3-4 and Tables 13-16), plus BitFit, fpt_layers and LoRA
(``fpt_bench_plugins.lora``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fpt_bench import FPT_ROLES, FreezePolicy, LayerSelection, PolicySpec, Role, hookimpl
from fpt_bench_plugins.lora import FPTLayers, LoRA

if TYPE_CHECKING:
    from fpt_bench import FPTModel

R = Role

ALL = frozenset(Role)


def _policy(name: str, description: str, roles: frozenset[Role],
            layers: dict[Role, LayerSelection] | None = None) -> FreezePolicy:
    policy = FreezePolicy()
    policy.spec = PolicySpec(  # type: ignore[misc]
        name=name, description=description, trainable_roles=roles, layer_selection=layers or {},
        citation="Lu et al. 2021" if name != "bitfit" else "Ben Zaken et al. 2022",
    )
    return policy


class BitFit(FreezePolicy):
    """Trains every bias (a module's own parameter named ``bias``) and the output layer."""

    spec = PolicySpec(
        name="bitfit", description="biases of every layer + output layer (BitFit, Ben Zaken et al. 2022)",
        trainable_roles=frozenset({R.OUTPUT}), citation="Ben Zaken, Ravfogel, Goldberg. BitFit. ACL 2022.",
    )

    def is_trainable(self, name: str, role: Role, layer: int | None, n_layers: int, model: FPTModel) -> bool:
        return role == R.OUTPUT or name in _bias_names(model)


def _bias_names(model: FPTModel) -> set[str]:
    cached = getattr(model, "_fpt_bias_names", None)
    if cached is None:
        import torch

        cached = {f"{mod_name}.bias" for mod_name, module in model.named_modules()
                  if mod_name and isinstance(getattr(module, "bias", None), torch.nn.Parameter)}
        model._fpt_bias_names = cached  # type: ignore[attr-defined]
    return cached


POLICIES = [
    _policy("fpt", "frozen pretrained transformer: input, output, LayerNorm and positions train", FPT_ROLES),
    _policy("full", "everything trains (fully trained transformer)", ALL),
    _policy("output_only", "only the output layer trains (Table 10)", frozenset({R.OUTPUT})),
    _policy("out", "ablation ladder (Table 15): output layer", frozenset({R.OUTPUT})),
    _policy("out_norm", "ablation ladder (Table 15): output + LayerNorm", frozenset({R.OUTPUT, R.NORM})),
    _policy("out_norm_in", "ablation ladder (Table 15): output + LayerNorm + input",
            frozenset({R.OUTPUT, R.NORM, R.INPUT})),
    _policy("out_norm_in_pos", "ablation ladder (Table 15): output + LayerNorm + input + positions (= fpt)", FPT_ROLES),
    _policy("fpt_ff", "fpt + feed-forward layers (Table 13)", FPT_ROLES | {R.FEEDFORWARD}),
    _policy("fpt_attn", "fpt + self-attention layers (Table 13)", FPT_ROLES | {R.ATTENTION}),
    _policy("fpt_ff_attn", "fpt + feed-forward + self-attention (Table 13)", FPT_ROLES | {R.FEEDFORWARD, R.ATTENTION}),
    _policy("fpt_ff_last_attn", "fpt + all feed-forward + the last attention layer (Table 14)",
            FPT_ROLES | {R.FEEDFORWARD, R.ATTENTION}, {R.ATTENTION: LayerSelection(last=1)}),
    _policy("fpt_frozen_norm", "fpt with LayerNorm frozen (Table 16)", FPT_ROLES - {R.NORM}),
    BitFit(),
    FPTLayers(),
    LoRA(),
]


@hookimpl
def fpt_bench_register_policies(registry) -> None:  # type: ignore[no-untyped-def]
    for policy in POLICIES:
        registry.add(policy)
