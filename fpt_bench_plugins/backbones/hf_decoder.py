"""Any Hugging Face decoder-only language model as a frozen backbone, called with ``inputs_embeds`` (its token
embedding is never used): GPT-NeoX/Pythia, Llama, Mistral, Qwen2/2.5, Qwen3, Gemma 1-3, Phi 1-2, Phi-3/4, OPT,
GPT-J — and any family a plugin registers (``fpt_bench_register_model_families``).

From a hub id or a local directory (``source=``), a short name (``preset=``, below) or a family's default config
(``family=`` with ``weights=random``). Sequences are right-padded and the model is causal, so a real position never
sees padding; the harness reads the last real position of variable-length tasks (``last_nonpad``), the only
position that has seen the whole sequence. Compute dtype, positions and checkpointing: ``hf_causal``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from fpt_bench import BackboneSpec, hookimpl
from fpt_bench_plugins.backbones.hf_causal import CausalBackbone, CausalOptions

PYTHIA = {f"pythia-{size}": f"EleutherAI/pythia-{size}"
          for size in ("70m", "160m", "410m", "1b", "1.4b", "2.8b", "6.9b", "12b")}
PRESETS: dict[str, str] = {
    **PYTHIA,
    "llama-3.2-1b": "meta-llama/Llama-3.2-1B",  # gated: accept the licence on the hub and `hf auth login`
    "llama-3.2-3b": "meta-llama/Llama-3.2-3B",
    "llama-3.1-8b": "meta-llama/Llama-3.1-8B",
    "smollm2-135m": "HuggingFaceTB/SmolLM2-135M",  # a Llama, not gated
    "smollm2-360m": "HuggingFaceTB/SmolLM2-360M",
    "qwen2.5-0.5b": "Qwen/Qwen2.5-0.5B",
    "qwen2.5-1.5b": "Qwen/Qwen2.5-1.5B",
    "qwen3-0.6b": "Qwen/Qwen3-0.6B-Base",
    "qwen3-1.7b": "Qwen/Qwen3-1.7B-Base",
    "mistral-7b": "mistralai/Mistral-7B-v0.3",
    "gemma-2b": "google/gemma-2b",  # Gemma models are gated like Llama
    "gemma-2-2b": "google/gemma-2-2b",
    "gemma-3-1b": "google/gemma-3-1b-pt",
    "phi-1.5": "microsoft/phi-1_5",
    "phi-2": "microsoft/phi-2",
    "phi-3-mini": "microsoft/Phi-3-mini-4k-instruct",
    "opt-125m": "facebook/opt-125m",
    "opt-350m": "facebook/opt-350m",
    "opt-1.3b": "facebook/opt-1.3b",
    "gpt-j-6b": "EleutherAI/gpt-j-6b",
}
PresetName = Literal[tuple(PRESETS)]  # type: ignore[valid-type]


class HFDecoderOptions(CausalOptions):
    preset: PresetName | None = Field(  # type: ignore[valid-type]
        default=None, description="a known model: " + ", ".join(PRESETS))


class HFDecoder(CausalBackbone):
    spec = BackboneSpec(
        name="hf_decoder",
        description="any Hugging Face decoder-only LM (Pythia, Llama, Qwen, Mistral, Gemma, Phi, OPT, GPT-J, ...) "
                    "via inputs_embeds",
        citation="Biderman et al. 2023 (Pythia); Touvron et al. 2023 (Llama); Yang et al. 2025 (Qwen3); "
                 "Jiang et al. 2023 (Mistral); Gemma Team 2024; Zhang et al. 2022 (OPT); Wang & Komatsuzaki 2021.",
    )
    Options = HFDecoderOptions
    smoke_args = {"weights": "random", "family": "llama", "n_layers": 2, "n_embd": 32, "n_head": 2}

    family_kind = "decoder"
    presets = PRESETS


@hookimpl
def fpt_bench_register_backbones(registry: Any) -> None:
    registry.add(HFDecoder().use_families(registry))
