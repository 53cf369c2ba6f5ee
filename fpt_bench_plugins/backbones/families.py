"""The built-in architecture families of Hugging Face causal models (decoder-only LMs and state-space models) and
the roles of their modules: what ``hf_decoder`` and ``hf_ssm`` know (``fpt_bench.api.families``).

A family is keyed by the config's ``model_type``. It names the transformers class that takes ``inputs_embeds``
and has no LM head, and maps module paths to roles (a ``RoleMap``); a model of a family nobody registered is
refused with a message, never mapped by guessing from parameter names. Third parties add families through the
``fpt_bench_register_model_families(registry)`` hook with ``registry.add(ModelFamily(...))``.

Role decisions (docs/backbones.md has the reasoning):

- rotary families (Llama, Qwen, Mistral, Gemma, Phi, GPT-NeoX, GPT-J) have no position parameters, so ``fpt``
  trains the input layer, the output layer and the norms there;
- Qwen3's and Gemma 3's per-head ``q_norm``/``k_norm`` are norms; LayerNorm and RMSNorm alike have role ``norm``;
- OPT's ``project_in``/``project_out`` (only where the embedding is narrower than the model) are ``other``;
- a state-space model's mixer (Mamba, Mamba-2) is the token mixer of its block: role ``attention``, except the
  gated RMSNorm inside Mamba-2's mixer (``norm``). These models have no feed-forward sublayer.
"""

from __future__ import annotations

import math
from typing import Any

from fpt_bench import Role, UserError, hookimpl
from fpt_bench.api.families import ModelFamily, Sizes
from fpt_bench.api.structure import RoleMap

R = Role
def _attention_sizes(ffn_key: str, heads_key: str = "num_attention_heads", kv_key: str | None = None,
                     head_dim: bool = False) -> Sizes:
    """Width n_embd (feed-forward 4 x n_embd), n_head heads (as many key/value heads: no grouping), heads of
    n_embd / n_head. A config that carries ``head_dim`` (``head_dim=True``, or any config whose class sets one:
    transformers' default Llama and Mistral configs say 128) gets it set, or its heads would keep their width."""

    def sizes(config: Any, n_embd: int | None, n_head: int | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if n_embd:
            out.update({"hidden_size": n_embd, ffn_key: 4 * n_embd})
        if n_head:
            out[heads_key] = n_head
            if kv_key:
                out[kv_key] = n_head
        if (head_dim or getattr(config, "head_dim", None) is not None) and (n_embd or n_head):
            width = n_embd or config.hidden_size
            out["head_dim"] = width // (n_head or getattr(config, heads_key))
        return out

    return sizes


def _opt_sizes(config: Any, n_embd: int | None, n_head: int | None) -> dict[str, Any]:
    out = _attention_sizes("ffn_dim")(config, n_embd, n_head)
    if n_embd:
        out["word_embed_proj_dim"] = n_embd
    return out


def _gptj_sizes(config: Any, n_embd: int | None, n_head: int | None) -> dict[str, Any]:
    out = _attention_sizes("n_inner")(config, n_embd, n_head)
    head = (n_embd or config.n_embd) // (n_head or config.n_head)
    if config.rotary_dim and config.rotary_dim > head:
        out["rotary_dim"] = head  # rotate whole heads when they are narrower than the default 64
    return out


def _mamba_sizes(config: Any, n_embd: int | None, n_head: int | None) -> dict[str, Any]:
    if not n_embd:
        return {}
    return {"hidden_size": n_embd, "intermediate_size": config.expand * n_embd,
            "time_step_rank": math.ceil(n_embd / 16)}


def _mamba2_sizes(config: Any, n_embd: int | None, n_head: int | None) -> dict[str, Any]:
    width = n_embd or config.hidden_size
    heads = n_head or config.num_heads
    inner = config.expand * width
    if inner % heads:
        raise UserError(f"mamba2: expand x n_embd = {inner} is not divisible by n_head = {heads}")
    # the B/C groups must divide the heads
    return {"hidden_size": width, "num_heads": heads, "head_dim": inner // heads,
            "n_groups": math.gcd(config.n_groups, heads)}


_LLAMA_LAYER = (("self_attn", R.ATTENTION), ("mlp", R.FEEDFORWARD), ("input_layernorm", R.NORM),
                ("post_attention_layernorm", R.NORM))
_QK_NORMS = (("self_attn.q_norm", R.NORM), ("self_attn.k_norm", R.NORM))
_GEMMA2_NORMS = (("pre_feedforward_layernorm", R.NORM), ("post_feedforward_layernorm", R.NORM))
_LLAMA_TOP = (("embed_tokens", R.TOKEN_EMBEDDING), ("norm", R.NORM))


def _llama_like(model_type: str, model_class: str, extra: tuple[tuple[str, Role], ...] = (),
                dropout_keys: tuple[str, ...] = ("attention_dropout",), head_dim: bool = False,
                description: str = "") -> ModelFamily:
    return ModelFamily(
        model_type, model_class, RoleMap(layers="layers", layer=_LLAMA_LAYER + extra, top=_LLAMA_TOP),
        dropout_keys=dropout_keys, description=description,
        sizes=_attention_sizes("intermediate_size", kv_key="num_key_value_heads", head_dim=head_dim),
    )


BUILTIN_FAMILIES: tuple[ModelFamily, ...] = (
    ModelFamily(
        "gpt_neox", "GPTNeoXModel",
        RoleMap(layers="layers",
                layer=(("attention", R.ATTENTION), ("mlp", R.FEEDFORWARD), ("input_layernorm", R.NORM),
                       ("post_attention_layernorm", R.NORM)),
                top=(("embed_in", R.TOKEN_EMBEDDING), ("final_layer_norm", R.NORM))),
        token_embedding="embed_in", dropout_keys=("hidden_dropout", "attention_dropout"),
        sizes=_attention_sizes("intermediate_size"), description="GPT-NeoX / Pythia (parallel residual, rotary)",
    ),
    _llama_like("llama", "LlamaModel", description="Llama 1-3, SmolLM, TinyLlama (RMSNorm, rotary, SwiGLU)"),
    _llama_like("mistral", "MistralModel", description="Mistral (Llama layout, sliding-window attention)"),
    _llama_like("qwen2", "Qwen2Model", description="Qwen1.5 / Qwen2 / Qwen2.5 (Llama layout, q/k/v biases)"),
    _llama_like("qwen3", "Qwen3Model", extra=_QK_NORMS, head_dim=True,
                description="Qwen3 dense (Llama layout + per-head q/k RMSNorm)"),
    _llama_like("gemma", "GemmaModel", head_dim=True, description="Gemma 1 (RMSNorm with 1 + w, GeGLU)"),
    _llama_like("gemma2", "Gemma2Model", extra=_GEMMA2_NORMS, head_dim=True,
                description="Gemma 2 (four RMSNorms per layer, local/global attention)"),
    _llama_like("gemma3_text", "Gemma3TextModel", extra=_GEMMA2_NORMS + _QK_NORMS, head_dim=True,
                description="Gemma 3 text models (Gemma 2 layout + per-head q/k RMSNorm)"),
    _llama_like("phi3", "Phi3Model", dropout_keys=("attention_dropout", "resid_pdrop", "embd_pdrop"),
                description="Phi-3 / Phi-4 (Llama layout with fused qkv and gate/up projections)"),
    ModelFamily(
        "phi", "PhiModel",
        RoleMap(layers="layers",
                layer=(("self_attn", R.ATTENTION), ("self_attn.q_layernorm", R.NORM),
                       ("self_attn.k_layernorm", R.NORM), ("mlp", R.FEEDFORWARD), ("input_layernorm", R.NORM)),
                top=(("embed_tokens", R.TOKEN_EMBEDDING), ("final_layernorm", R.NORM))),
        dropout_keys=("resid_pdrop", "embd_pdrop", "attention_dropout"),
        sizes=_attention_sizes("intermediate_size", kv_key="num_key_value_heads"),
        description="Phi-1 / Phi-1.5 / Phi-2 (parallel attention and MLP, partial rotary)",
    ),
    ModelFamily(
        "gptj", "GPTJModel",
        RoleMap(layers="h", layer=(("ln_1", R.NORM), ("attn", R.ATTENTION), ("mlp", R.FEEDFORWARD)),
                top=(("wte", R.TOKEN_EMBEDDING), ("ln_f", R.NORM))),
        token_embedding="wte", dropout_keys=("resid_pdrop", "embd_pdrop", "attn_pdrop"), sizes=_gptj_sizes,
        description="GPT-J (parallel attention and MLP, rotary)",
    ),
    ModelFamily(
        "opt", "OPTModel",
        RoleMap(layers="decoder.layers",
                layer=(("self_attn", R.ATTENTION), ("self_attn_layer_norm", R.NORM), ("fc1", R.FEEDFORWARD),
                       ("fc2", R.FEEDFORWARD), ("final_layer_norm", R.NORM)),
                top=(("decoder.embed_tokens", R.TOKEN_EMBEDDING), ("decoder.embed_positions", R.POSITION),
                     ("decoder.final_layer_norm", R.NORM),
                     # the linear maps between a narrower embedding and the model (OPT-350m): frozen under fpt
                     ("decoder.project_in", R.OTHER), ("decoder.project_out", R.OTHER))),
        token_embedding="decoder.embed_tokens", position="decoder.embed_positions", position_offset=2,
        input_width_key="word_embed_proj_dim", dropout_keys=("dropout", "attention_dropout"), sizes=_opt_sizes,
        description="OPT (learned absolute positions)",
    ),
    ModelFamily(
        "mamba", "MambaModel",
        RoleMap(layers="layers", layer=(("norm", R.NORM), ("mixer", R.ATTENTION)),
                top=(("embeddings", R.TOKEN_EMBEDDING), ("norm_f", R.NORM))),
        kind="ssm", token_embedding="embeddings", sizes=_mamba_sizes, sdpa=False,
        # the training path (mamba_inner_fn) and the reference scan read these weights directly
        direct_weights=("mixer.x_proj", "mixer.dt_proj", "mixer.out_proj"),
        description="Mamba (selective state-space mixer, no attention, no feed-forward)",
    ),
    ModelFamily(
        "mamba2", "Mamba2Model",
        RoleMap(layers="layers", layer=(("norm", R.NORM), ("mixer", R.ATTENTION), ("mixer.norm", R.NORM)),
                top=(("embeddings", R.TOKEN_EMBEDDING), ("norm_f", R.NORM))),
        kind="ssm", token_embedding="embeddings", sizes=_mamba2_sizes, sdpa=False,
        direct_weights=("mixer.out_proj",),  # the fused kernel path reads it directly
        description="Mamba-2 (state-space duality mixer with a gated RMSNorm)",
    ),
)


@hookimpl
def fpt_bench_register_model_families(registry) -> None:  # type: ignore[no-untyped-def]
    for family in BUILTIN_FAMILIES:
        registry.add(family)
