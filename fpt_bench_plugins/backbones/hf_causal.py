"""What ``hf_decoder`` and ``hf_ssm`` share: a Hugging Face causal model (decoder-only LM or state-space model)
fed ``inputs_embeds`` as a frozen backbone, its options, its compute dtype, and how it is built.

Compute dtype (``dtype=``): ``float32``, ``bfloat16``, or ``auto`` (the default): bfloat16 when the checkpoint's
config stores bfloat16 weights and a CUDA device with bfloat16 support is present, float32 otherwise (float16
checkpoints such as Pythia's are widened to float32, not narrowed to bfloat16's shorter mantissa; random init
follows the same rule on the same config, so pretrained and random cells compute alike). A bfloat16 backbone
keeps its norms and position tables (what ``fpt`` trains) in float32 and runs its forward under bfloat16
autocast; a parameter a policy trains beyond those (``full``, ``fpt_attn``, ...) is widened to float32 when the
model moves to its device (the runner's ``model.to(device)`` after the policy, before the optimiser and any
resume) or at the latest at the first training step, so optimisers never update bfloat16 weights.

This module holds what listing the plugins reads (options, backbone, registration); the nn.Module, the dtype rule's
code and the other torch helpers are in ``hf_causal_module``, imported when a module is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from fpt_bench import UserError
from fpt_bench.api.backbone_checkpoint import BackboneCheckpoint
from fpt_bench.api.errors import did_you_mean
from fpt_bench.api.families import ModelFamily, UsesModelFamilies, family_of
from fpt_bench.api.structure import PresetOptions
from fpt_bench.api.transformer import TransformerBackbone
from fpt_bench.api.weights import load_config, load_pretrained, model_from_config

if TYPE_CHECKING:
    from fpt_bench_plugins.backbones.hf_causal_module import CausalLMModule


class CausalOptions(PresetOptions):
    """Options of hf_decoder and hf_ssm (subclasses narrow ``preset``)."""

    family: str | None = Field(default=None, description="weights=random without a source: that family's "
                               "default transformers config: a registered family's model_type (llama, qwen2, gpt_neox, "
                               "mamba, ...; an unknown one is refused with the list)")
    dropout: float | None = Field(default=None, ge=0, lt=1, description="dropout where the family has it "
                                  "(default: the model's own)")
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        default="auto", description="compute dtype of the frozen weights: auto = bfloat16 when the checkpoint "
                                    "stores bfloat16 and a bf16-capable CUDA device is present, else float32")
    gradient_checkpointing: bool = Field(default=False, description="recompute each layer's activations in the "
                                         "backward pass (less activation memory for large models; one more "
                                         "forward of the blocks per step)")
    positions: Literal["model", "learned"] = Field(
        default="model", description="model: the model's own positions (rotary, learned or none); learned: also "
                                     "a new zero-initialised trainable table added to the inputs (role position)")


# the backbone to use instead: by family kind, or by a model_type another built-in backbone takes
ELSEWHERE = {"ssm": "hf_ssm", "decoder": "hf_decoder", "gpt2": "gpt2", "vit": "vit", "bert": "hf_encoder",
             "roberta": "hf_encoder", "t5": "hf_encoder", "longformer": "hf_encoder"}


def _model_class(family: ModelFamily) -> Any:
    import transformers

    cls = getattr(transformers, family.model_class, None)
    if cls is None:
        raise UserError(f"transformers {transformers.__version__} has no class {family.model_class} for the "
                        f"{family.model_type} family; upgrade transformers")
    return cls


def _sdpa(family: ModelFamily) -> bool:
    """PyTorch's fused attention where the family allows it and transformers implements it for the class (Gemma 2's
    logit soft-capping, for one, runs eager)."""
    return family.sdpa and bool(getattr(_model_class(family), "_supports_sdpa", False))


def _config_class(model_type: str) -> Any:
    from transformers import CONFIG_MAPPING

    try:
        return CONFIG_MAPPING[model_type]
    except KeyError:
        import transformers

        raise UserError(f"transformers {transformers.__version__} does not know model_type {model_type!r}; "
                        f"upgrade transformers") from None


def _dropout(family: ModelFamily, dropout: float | None) -> dict[str, float]:
    return {key: dropout for key in family.dropout_keys} if dropout is not None else {}


def _positions_note(family: ModelFamily, learned: bool) -> str:
    if family.position:
        note = "learned absolute table (role position: trains under fpt)"
    elif family.kind == "ssm":
        note = "none: a state-space model orders tokens by its recurrence; fpt trains input, output and norms"
    else:
        note = "rotary (no parameters): fpt trains input, output and norms"
    return note + ("; plus a new zero-initialised learned table (role position)" if learned else "")


class CausalBackbone(TransformerBackbone, UsesModelFamilies):
    """``hf_decoder`` and ``hf_ssm``: a model of a registered family of ``family_kind``, from a preset, a source or a
    family's default config; see the module docstring for the dtype rule."""

    family_kind: str  # "decoder" or "ssm"
    presets: dict[str, str]
    random_init = "transformers default"

    @property
    def kind(self) -> str:  # type: ignore[override]
        return self.spec.name

    def source(self, options: CausalOptions) -> str | None:  # type: ignore[override]
        return options.source or (self.presets[options.preset] if options.preset else None)

    def needed_files(self, options: CausalOptions) -> tuple[str | None, bool]:
        """Random init without family= still reads the source's config (only a family default needs nothing)."""
        weights = options.weight_source
        if weights.from_checkpoint or options.family:
            return None, False
        return self.source(options), weights.needs_pretrained

    def _family(self, config: Any, where: str) -> ModelFamily:
        return family_of(config, where, self.family_kind, self.spec.name, self.known_families(), ELSEWHERE)

    def random_module(self, options: CausalOptions, max_len: int, provenance: dict[str, Any]) -> CausalLMModule:
        from fpt_bench_plugins.backbones.hf_causal_module import CausalLMModule, set_depth

        if options.family:
            known = {f.model_type for f in self.known_families().values() if f.kind == self.family_kind}
            if options.family not in known:
                raise UserError(f"{self.spec.name}: unknown family {options.family!r}"
                                f"{did_you_mean(options.family, known)}; the families are {', '.join(sorted(known))} "
                                f"(`fpt-bench ls backbones --options`; a plugin adds one: docs/backbones.md)")
            config = _config_class(options.family)()
            where = f"default {options.family} config"
        else:
            where = str(self.source(options))
            config = load_config(where)
        family = self._family(config, where)
        sizes: dict[str, Any] = {}
        if options.n_embd or options.n_head:
            if family.sizes is None:
                raise UserError(f"{self.spec.name}: model family {family.model_type!r} does not say how to set "
                                f"n_embd/n_head (its ModelFamily has no `sizes`); leave them out to build its "
                                f"config's own sizes, or give the family a `sizes` function (docs/backbones.md)")
            sizes = family.sizes(config, options.n_embd, options.n_head)
        for key, value in {**_dropout(family, options.dropout), **sizes}.items():
            setattr(config, key, value)
        if options.n_layers:
            set_depth(config, options.n_layers)
        provenance["config"] = where
        model = model_from_config(_model_class(family), config, _sdpa(family))
        return CausalLMModule(model, family, provenance, self.spec.name, _learned_rows(options, max_len))

    def pretrained_module(self, source: str, options: CausalOptions, max_len: int,
                          provenance: dict[str, Any]) -> CausalLMModule:
        import torch

        from fpt_bench_plugins.backbones.hf_causal_module import CausalLMModule, choose_dtype

        family = self._family(load_config(source), source)
        # stats redraws from float32 statistics; the compute dtype is applied in finish()
        dtype = choose_dtype(options.dtype, load_config(source))[0] if provenance["weights"] == "pretrained" \
            else torch.float32
        model = load_pretrained(_model_class(family), source, _dropout(family, options.dropout), _sdpa(family),
                                dtype=dtype)
        return CausalLMModule(model, family, provenance, self.spec.name, _learned_rows(options, max_len))

    def checkpoint_module(self, checkpoint: BackboneCheckpoint, options: CausalOptions, max_len: int,
                          provenance: dict[str, Any]) -> CausalLMModule:
        from fpt_bench_plugins.backbones.hf_causal_module import CausalLMModule

        arch = checkpoint.architecture
        family = self.known_families().get(arch["family"])
        if family is None:
            raise UserError(f"{checkpoint.path} holds a {arch['family']} model; no loaded plugin registers that "
                            f"family (install the plugin that did)")
        config = _config_class(family.model_type).from_dict({**arch["config"], **_dropout(family, options.dropout)})
        model = model_from_config(_model_class(family), config, _sdpa(family))
        return CausalLMModule(model, family, provenance, self.spec.name, arch["learned_positions"])

    def finish(self, module: CausalLMModule, options: CausalOptions, max_len: int) -> None:  # type: ignore[override]
        import torch
        from torch import nn

        from fpt_bench_plugins.backbones.hf_causal_module import FLOAT32_ROLES, choose_dtype

        provenance = module._provenance
        if options.preset and not options.source and not options.weight_source.from_checkpoint:
            provenance["preset"] = options.preset
        provenance["family"] = module.family.model_type
        learned = _learned_rows(options, max_len)
        if module.position is not None and learned and learned > module.position.shape[0]:  # a checkpoint's table
            grown = torch.zeros(learned, module.position.shape[1])
            grown[: module.position.shape[0]] = module.position.detach()
            module.position = nn.Parameter(grown)
            module._sync()
        extended = module.extend_positions(max_len)
        if extended:
            provenance["extended_positions"] = extended
        provenance["positions"] = _positions_note(module.family, learned is not None)
        dtype, why = choose_dtype(options.dtype, module.model.config)
        module.set_compute_dtype(dtype)
        provenance["dtype"] = {"weights": str(dtype).removeprefix("torch."), "rule": why,
                               "float32_roles": sorted(r.value for r in FLOAT32_ROLES) if dtype != torch.float32
                               else []}
        if options.gradient_checkpointing:
            model = module.model
            kwargs = {"use_reentrant": False}  # frozen weights: the reentrant variant would drop their inputs' grads
            if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x; the old name is deprecated
                model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
            else:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
            provenance["gradient_checkpointing"] = True


def _learned_rows(options: CausalOptions, max_len: int) -> int | None:
    return max_len if options.positions == "learned" else None
