"""Tiny configs of every hf_decoder / hf_ssm family, and their parameter counts computed by hand from the config
values (never from a model), shared by the test_backbones_causal* files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# vocab, width, layers, heads, key/value heads, head width, feed-forward width, positions
V, D, L, H, KV, HD, F, POS = 64, 32, 2, 4, 2, 8, 48, 64
N, K, E = 4, 4, 2  # state size, convolution width, expansion (state-space models)

_LLAMA = {"vocab_size": V, "hidden_size": D, "num_hidden_layers": L, "num_attention_heads": H,
          "num_key_value_heads": KV, "head_dim": HD, "intermediate_size": F, "max_position_embeddings": POS}
# family -> (transformers config class, its values, backbone)
TINY: dict[str, tuple[str, dict[str, Any], str]] = {
    "gpt_neox": ("GPTNeoXConfig", {"vocab_size": V, "hidden_size": D, "num_hidden_layers": L,
                                   "num_attention_heads": H, "intermediate_size": F, "max_position_embeddings": POS},
                 "hf_decoder"),
    "llama": ("LlamaConfig", _LLAMA, "hf_decoder"),
    "mistral": ("MistralConfig", _LLAMA, "hf_decoder"),
    "qwen2": ("Qwen2Config", _LLAMA, "hf_decoder"),
    "qwen3": ("Qwen3Config", _LLAMA, "hf_decoder"),
    "gemma": ("GemmaConfig", _LLAMA, "hf_decoder"),
    "gemma2": ("Gemma2Config", _LLAMA, "hf_decoder"),
    "gemma3_text": ("Gemma3TextConfig", _LLAMA, "hf_decoder"),
    "phi3": ("Phi3Config", {**{k: v for k, v in _LLAMA.items() if k != "head_dim"}, "pad_token_id": 0}, "hf_decoder"),
    "phi": ("PhiConfig", {"vocab_size": V, "hidden_size": D, "num_hidden_layers": L, "num_attention_heads": H,
                          "intermediate_size": F, "max_position_embeddings": POS}, "hf_decoder"),
    "gptj": ("GPTJConfig", {"vocab_size": V, "n_embd": D, "n_layer": L, "n_head": H, "rotary_dim": 4,
                            "n_positions": POS}, "hf_decoder"),
    "opt": ("OPTConfig", {"vocab_size": V, "hidden_size": D, "num_hidden_layers": L, "num_attention_heads": H,
                          "ffn_dim": F, "word_embed_proj_dim": D, "max_position_embeddings": POS}, "hf_decoder"),
    "mamba": ("MambaConfig", {"vocab_size": V, "hidden_size": D, "num_hidden_layers": L, "state_size": N,
                              "conv_kernel": K, "expand": E}, "hf_ssm"),
    "mamba2": ("Mamba2Config", {"vocab_size": V, "hidden_size": D, "num_hidden_layers": L, "state_size": N,
                                "conv_kernel": K, "expand": E, "num_heads": 8, "head_dim": 8, "n_groups": 1},
               "hf_ssm"),
}


def hand_counts(family: str, c: dict[str, int] | None = None) -> dict[str, int]:
    """Parameter counts of a ``family`` model (the tiny config above unless ``c`` gives other sizes: keys V, D, L,
    H, KV, HD, F, POS, and for state-space models N, K, E, heads, groups), by role, from the config values alone
    (never from a model): ``total``, ``norm``, ``position``, ``token_embedding``, ``position_rows`` (rows of a
    learned table) and ``layer`` (one block)."""
    c = {"V": V, "D": D, "L": L, "H": H, "KV": KV, "HD": HD, "F": F, "POS": POS, "N": N, "K": K, "E": E,
         "heads": 8, "groups": 1, **(c or {})}
    v, d, n_layers, h, kv, hd, f = c["V"], c["D"], c["L"], c["H"], c["KV"], c["HD"], c["F"]
    embed, position = v * d, 0
    if family in ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi3"):
        attn = d * h * hd + 2 * d * kv * hd + h * hd * d  # q, k, v, o without biases
        if family == "qwen2":
            attn += h * hd + 2 * kv * hd  # q, k, v biases
        mlp = 3 * d * f  # gate, up, down
        norms = {"gemma2": 4 * d, "gemma3_text": 4 * d + 2 * hd, "qwen3": 2 * d + 2 * hd}.get(family, 2 * d)
        layer, top_norm = attn + mlp + norms, d
    elif family == "phi":  # q, k, v, dense with biases; fc1, fc2 with biases; one LayerNorm (parallel block)
        norms = 2 * d
        layer, top_norm = 4 * (d * d + d) + (d * f + f) + (f * d + d) + norms, 2 * d
    elif family == "gpt_neox":  # fused qkv, dense, two LayerNorms, MLP F wide, all with biases
        norms = 4 * d
        layer, top_norm = (3 * d * d + 3 * d) + (d * d + d) + (d * f + f + f * d + d) + norms, 2 * d
    elif family == "gptj":  # q, k, v, out without biases; MLP 4 x D with biases; one LayerNorm
        norms = 2 * d
        layer, top_norm = 4 * d * d + (d * 4 * d + 4 * d) + (4 * d * d + d) + norms, 2 * d
    elif family == "opt":  # q, k, v, out, fc1, fc2 with biases, two LayerNorms; positions: POS + 2 offset rows
        norms = 4 * d
        layer, top_norm = 4 * (d * d + d) + (d * f + f) + (f * d + d) + norms, 2 * d
        position = (c["POS"] + 2) * d
    elif family == "mamba":
        inner, rank, state, kernel = c["E"] * d, -(-d // 16), c["N"], c["K"]
        norms = d
        layer = (norms + d * 2 * inner + (inner * kernel + inner) + inner * (rank + 2 * state)
                 + (rank * inner + inner) + inner * state + inner + inner * d)
        top_norm = d  # layer: norm, in_proj, conv1d, x_proj, dt_proj, A_log, D, out_proj
    elif family == "mamba2":
        inner, heads, groups, state, kernel = c["E"] * d, c["heads"], c["groups"], c["N"], c["K"]
        conv = inner + 2 * groups * state
        norms = d + inner  # the block's RMSNorm and the mixer's gated RMSNorm
        layer = (norms + d * (2 * inner + 2 * groups * state + heads) + (conv * kernel + conv) + 3 * heads
                 + inner * d)  # in_proj, conv1d, dt_bias + A_log + D, out_proj
        top_norm = d
    else:
        raise KeyError(family)
    return {"total": embed + n_layers * layer + top_norm + position, "norm": n_layers * norms + top_norm,
            "position": position, "token_embedding": embed, "position_rows": c["POS"] + 2 if position else 0,
            "layer": layer}


def save_config(family: str, where: Path) -> Path:
    """config.json of the tiny ``family`` model in ``where/family`` (no weights)."""
    import transformers

    cls_name, values, _ = TINY[family]
    path = where / family
    getattr(transformers, cls_name)(**values).save_pretrained(path)
    return path


def save_model(family: str, where: Path, seed: int = 1) -> tuple[Path, dict[str, Any]]:
    """A tiny randomly initialised ``family`` model written with save_pretrained; returns its state dict too."""
    import torch
    import transformers

    from fpt_bench_plugins.backbones.families import BUILTIN_FAMILIES

    cls_name, values, _ = TINY[family]
    config = getattr(transformers, cls_name)(**values)
    model_class = next(f.model_class for f in BUILTIN_FAMILIES if f.model_type == family)
    torch.manual_seed(seed)
    model = getattr(transformers, model_class)(config)
    with torch.no_grad():  # every gain off its init, so a copy is told from a fresh init
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    path = where / f"{family}-model"
    model.save_pretrained(path)
    return path, {k: v.clone() for k, v in model.state_dict().items()}
