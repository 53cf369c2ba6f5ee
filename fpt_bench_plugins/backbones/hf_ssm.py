"""Hugging Face state-space language models (Mamba, Mamba-2) as frozen backbones, called with ``inputs_embeds``.

A Mamba block is a norm and a mixer (input projection, causal depthwise convolution, selective scan, gated output
projection): no attention, no feed-forward sublayer, no position parameters. The mixer is the block's token mixer
and has role ``attention``; so ``fpt`` trains input, output and norms, ``fpt_attn`` adds the whole mixer,
``fpt_ff`` equals ``fpt``, and LoRA with ``targets=attention`` adapts the mixer's projections (docs/backbones.md).
Without the CUDA kernels (``mamba-ssm``, ``causal-conv1d``) transformers runs its sequential reference scan: fine
for tiny configs on a CPU, slow for real sizes. Options as ``hf_decoder``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from fpt_bench import BackboneSpec, hookimpl
from fpt_bench_plugins.backbones.hf_causal import CausalBackbone, CausalOptions

PRESETS: dict[str, str] = {
    **{f"mamba-{size}": f"state-spaces/mamba-{size}-hf" for size in ("130m", "370m", "790m", "1.4b", "2.8b")},
    # Mamba-2 in the transformers format: community conversions of the state-spaces checkpoints
    **{f"mamba2-{size}": f"AntonV/mamba2-{size}-hf" for size in ("130m", "370m", "780m", "1.3b", "2.7b")},
    "mamba-codestral-7b": "mistralai/Mamba-Codestral-7B-v0.1",
}
PresetName = Literal[tuple(PRESETS)]  # type: ignore[valid-type]


class HFSSMOptions(CausalOptions):
    preset: PresetName | None = Field(  # type: ignore[valid-type]
        default=None, description="a known model: " + ", ".join(PRESETS))


class HFSSM(CausalBackbone):
    spec = BackboneSpec(
        name="hf_ssm",
        description="Hugging Face state-space LMs (Mamba, Mamba-2) via inputs_embeds; the mixer has role attention",
        citation="Gu & Dao. Mamba. 2023; Dao & Gu. Transformers are SSMs (Mamba-2). ICML 2024.",
    )
    Options = HFSSMOptions
    smoke_args = {"weights": "random", "family": "mamba", "n_layers": 2, "n_embd": 32}

    family_kind = "ssm"
    presets = PRESETS


@hookimpl
def fpt_bench_register_backbones(registry: Any) -> None:
    registry.add(HFSSM().use_families(registry))
