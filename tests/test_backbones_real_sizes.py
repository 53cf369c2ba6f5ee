"""Parameter counts of the real models behind the presets, from their published config values (written here;
nothing is downloaded): counted by hand, counted on a model instantiated on the meta device from the same values,
and the table in docs/backbones.md must say the same."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch
from causal_helpers import hand_counts

DOC = Path(__file__).resolve().parent.parent / "docs" / "backbones.md"

# preset -> (family, the config.json values that size the model). Sources: each model's config.json on the hub.
REAL: dict[str, tuple[str, dict[str, Any]]] = {
    **{f"pythia-{name}": ("gpt_neox", {"vocab_size": 50304, "hidden_size": d, "num_hidden_layers": n,
                                       "num_attention_heads": h, "intermediate_size": 4 * d,
                                       "max_position_embeddings": 2048})
       for name, d, n, h in (("70m", 512, 6, 8), ("160m", 768, 12, 12), ("410m", 1024, 24, 16),
                             ("1b", 2048, 16, 8), ("1.4b", 2048, 24, 16))},
    "llama-3.2-1b": ("llama", {"vocab_size": 128256, "hidden_size": 2048, "num_hidden_layers": 16,
                               "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64,
                               "intermediate_size": 8192}),
    "qwen3-0.6b": ("qwen3", {"vocab_size": 151936, "hidden_size": 1024, "num_hidden_layers": 28,
                             "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
                             "intermediate_size": 3072}),
    "qwen2.5-0.5b": ("qwen2", {"vocab_size": 151936, "hidden_size": 896, "num_hidden_layers": 24,
                               "num_attention_heads": 14, "num_key_value_heads": 2, "intermediate_size": 4864}),
    "mistral-7b": ("mistral", {"vocab_size": 32768, "hidden_size": 4096, "num_hidden_layers": 32,
                               "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336}),
    "gemma-2b": ("gemma", {"vocab_size": 256000, "hidden_size": 2048, "num_hidden_layers": 18,
                           "num_attention_heads": 8, "num_key_value_heads": 1, "head_dim": 256,
                           "intermediate_size": 16384}),
    "gemma-2-2b": ("gemma2", {"vocab_size": 256000, "hidden_size": 2304, "num_hidden_layers": 26,
                              "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
                              "intermediate_size": 9216}),
    "gemma-3-1b": ("gemma3_text", {"vocab_size": 262144, "hidden_size": 1152, "num_hidden_layers": 26,
                                   "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 256,
                                   "intermediate_size": 6912}),
    "phi-2": ("phi", {"vocab_size": 51200, "hidden_size": 2560, "num_hidden_layers": 32, "num_attention_heads": 32,
                      "intermediate_size": 10240}),
    "phi-3-mini": ("phi3", {"vocab_size": 32064, "hidden_size": 3072, "num_hidden_layers": 32,
                            "num_attention_heads": 32, "num_key_value_heads": 32, "intermediate_size": 8192,
                            "pad_token_id": 32000}),
    "opt-125m": ("opt", {"vocab_size": 50272, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                         "ffn_dim": 3072, "word_embed_proj_dim": 768, "max_position_embeddings": 2048}),
    "gpt-j-6b": ("gptj", {"vocab_size": 50400, "n_embd": 4096, "n_layer": 28, "n_head": 16, "rotary_dim": 64,
                          "n_positions": 2048}),
    **{f"mamba-{name}": ("mamba", {"vocab_size": 50280, "hidden_size": d, "num_hidden_layers": n, "state_size": 16,
                                   "conv_kernel": 4, "expand": 2})
       for name, d, n in (("130m", 768, 24), ("1.4b", 2048, 48))},
}
# the numbers docs/backbones.md gives (backbone parameters, of which the unused token embedding)
EXPECTED = {
    "pythia-70m": 44_670_976, "pythia-160m": 123_689_472, "pythia-410m": 353_822_720, "pythia-1b": 908_759_040,
    "pythia-1.4b": 1_311_625_216, "llama-3.2-1b": 1_235_814_400, "qwen3-0.6b": 596_049_920,
    "qwen2.5-0.5b": 494_032_768, "mistral-7b": 7_113_805_824, "gemma-2b": 2_506_172_416,
    "gemma-2-2b": 2_614_341_888, "gemma-3-1b": 999_885_952, "phi-2": 2_648_560_640, "phi-3-mini": 3_722_578_944,
    "opt-125m": 125_239_296, "gpt-j-6b": 5_844_393_984, "mamba-130m": 129_135_360, "mamba-1.4b": 1_372_178_432,
}
# Pythia's model card gives its non-embedding counts: a check on the values above from another source
PYTHIA_NON_EMBEDDING = {"70m": 18_915_328, "160m": 85_056_000, "410m": 302_311_424, "1b": 805_736_448,
                        "1.4b": 1_208_602_624}


def short(family: str, c: dict[str, Any]) -> dict[str, int]:
    """The config values in the names hand_counts takes."""
    if family == "gptj":
        return {"V": c["vocab_size"], "D": c["n_embd"], "L": c["n_layer"], "H": c["n_head"], "POS": c["n_positions"]}
    if family == "mamba":
        return {"V": c["vocab_size"], "D": c["hidden_size"], "L": c["num_hidden_layers"], "N": c["state_size"],
                "K": c["conv_kernel"], "E": c["expand"]}
    heads = c["num_attention_heads"]
    return {"V": c["vocab_size"], "D": c["hidden_size"], "L": c["num_hidden_layers"], "H": heads,
            "KV": c.get("num_key_value_heads", heads), "HD": c.get("head_dim", c["hidden_size"] // heads),
            "F": c.get("intermediate_size", c.get("ffn_dim", 0)), "POS": c.get("max_position_embeddings", 0)}


def meta_count(family: str, values: dict[str, Any]) -> int:
    import transformers
    from transformers import CONFIG_MAPPING

    from fpt_bench_plugins.backbones.families import BUILTIN_FAMILIES

    model_class = next(f.model_class for f in BUILTIN_FAMILIES if f.model_type == family)
    with torch.device("meta"):
        model = getattr(transformers, model_class)(CONFIG_MAPPING[family](**values))
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("preset", list(REAL))
def test_real_sizes_by_hand_on_the_meta_device_and_in_the_docs(preset: str) -> None:
    from fpt_bench_plugins.backbones.hf_decoder import PRESETS as DECODERS
    from fpt_bench_plugins.backbones.hf_ssm import PRESETS as SSMS

    assert preset in {**DECODERS, **SSMS}
    family, values = REAL[preset]
    hand = hand_counts(family, short(family, values))
    assert hand["total"] == EXPECTED[preset]
    assert meta_count(family, values) == EXPECTED[preset]
    if preset.startswith("pythia-"):
        assert hand["total"] - hand["token_embedding"] == PYTHIA_NON_EMBEDDING[preset.removeprefix("pythia-")]
    row = doc_rows()[preset]
    assert row == (EXPECTED[preset], hand["token_embedding"], hand["norm"] + hand["position"]), row


def doc_rows() -> dict[str, tuple[int, int, int]]:
    """``| `preset` | ... | total | token embedding | fpt-trained backbone part |`` rows of the docs table."""
    rows = {}
    for line in DOC.read_text().splitlines():
        match = re.match(r"\| `([\w.-]+)` \|.*\| ([\d,]+) \| ([\d,]+) \| ([\d,]+) \|$", line)
        if match:
            rows[match.group(1)] = tuple(int(g.replace(",", "")) for g in match.groups()[1:])
    return rows  # type: ignore[return-value]


def test_timm_vit_sizes() -> None:
    timm = pytest.importorskip("timm")
    for name, expected in (("vit_base_patch16_224", 85_056_000), ("vit_base_patch14_dinov2", 85_074_432)):
        with torch.device("meta"):
            model = timm.create_model(name, pretrained=False, num_classes=0)
        kept = sum(p.numel() for part in (model.blocks, model.norm) for p in part.parameters())
        assert kept == expected  # blocks + final norm; the new position table adds 1024 x 768
        block = 2 * 2 * 768 + (768 * 2304 + 2304) + (768 * 768 + 768) + (768 * 3072 + 3072) + (3072 * 768 + 768)
        assert kept == 12 * (block + (2 * 768 if "dinov2" in name else 0)) + 2 * 768
        assert doc_rows()[name] == (expected + 1024 * 768, 0, 12 * 4 * 768 + 2 * 768 + 1024 * 768)
