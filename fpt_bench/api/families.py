"""Model families: how a transformers architecture family (``config.model_type``) is used as a frozen backbone —
its class, and the roles of its modules. ``hf_decoder`` and ``hf_ssm`` look models up here; a plugin adds a family
with the ``fpt_bench_register_model_families(registry)`` hook and ``registry.add(ModelFamily(...))``. A model of a
family nobody registered is refused with a message, never mapped by guessing from parameter names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from fpt_bench.api.errors import UserError
from fpt_bench.api.structure import RoleMap

Sizes = Callable[[Any, int | None, int | None], dict[str, Any]]


@dataclass(frozen=True)
class ModelFamily:
    """How fpt-bench uses one transformers architecture family (``config.model_type``) as a frozen backbone.

    ``roles`` maps module paths relative to the model (an instance of ``model_class``) to roles; every parameter
    must be covered (the deepest listed owner wins). ``sizes(config, n_embd, n_head)`` returns the config changes
    for ``weights=random`` with ``n_embd``/``n_head`` given (every width that follows from them: hidden size,
    feed-forward width, heads, key/value heads, head width); a family without ``sizes`` refuses
    ``n_embd``/``n_head`` rather than ignore them."""

    model_type: str
    model_class: str  # a transformers class that takes inputs_embeds and has no LM head, e.g. "LlamaModel"
    roles: RoleMap
    kind: Literal["decoder", "ssm"] = "decoder"
    token_embedding: str = "embed_tokens"  # path of the token table (never used: the harness feeds embeddings)
    position: str | None = None  # path of a learned absolute position table (nn.Embedding), if the family has one
    position_offset: int = 0  # table rows before position 0 (OPT: 2)
    input_width_key: str = "hidden_size"  # config key of the width of inputs_embeds and of the output
    dropout_keys: tuple[str, ...] = ()  # config keys that ``dropout=`` sets
    sizes: Sizes | None = None
    sdpa: bool = True  # build with attn_implementation="sdpa" where transformers has it (False: "eager")
    # modules (paths inside a layer) whose weight the model may use without calling the module (fused kernels):
    # forward-hook adapters (LoRA) would not act on them, so they are not adapted
    direct_weights: tuple[str, ...] = ()
    description: str = ""

    @property
    def name(self) -> str:
        return self.model_type

    @property
    def spec(self) -> ModelFamily:  # the registry names a component by ``spec.name``
        return self

    @property
    def positions(self) -> str:
        if self.position:
            return "learned"
        return "none (recurrent)" if self.kind == "ssm" else "rotary"


class UsesModelFamilies:
    """For a backbone that looks models up by family: call ``use_families(registry)`` with the registry its plugin's
    ``fpt_bench_register_backbones`` hook received (the backbone then reads the same host's families, including
    those plugins loaded later register); a backbone made outside a host reads the process's host."""

    families: Any = None

    def use_families(self, registry: Any) -> UsesModelFamilies:
        self.families = registry.sibling("model_family")
        return self

    def known_families(self) -> dict[str, ModelFamily]:
        registry = self.families
        if registry is None:
            from fpt_bench.host.manager import get_host

            registry = get_host().registries["model_family"]
        return {entry.name: entry.component for entry in registry}


def family_of(config: Any, source: str, kind: str, backbone: str, families: dict[str, ModelFamily],
              elsewhere: Mapping[str, str] | None = None) -> ModelFamily:
    """The family of ``config`` among ``families`` for a backbone of ``kind``; one clear error otherwise.
    ``elsewhere`` (the calling plugin's knowledge) names the backbone to use instead, by family kind or by a
    ``model_type`` that another backbone takes."""
    elsewhere = elsewhere or {}
    model_type = str(getattr(config, "model_type", None))
    family = families.get(model_type)
    shared = sorted(n for n in families if n.rpartition(":")[2] == model_type and ":" in n)
    if family is None and shared:  # several plugins register it and none is a built-in (docs/writing-plugins.md)
        plugins = ", ".join(n.rpartition(":")[0] for n in shared)
        raise UserError(f"model family {model_type!r} is registered by several plugins ({', '.join(shared)}) and "
                        f"{backbone} picks a family by the model's model_type, so it cannot choose: keep one of "
                        f"{plugins} (uninstall the others, or name them in FPT_BENCH_DISABLE_PLUGINS)")
    if family is not None and family.kind == kind:
        return family
    if family is not None:
        other = elsewhere.get(family.kind)
        use = f"use --backbone {other}" if other else f"use a backbone for {family.kind} models"
        raise UserError(f"{source} is a {model_type} model ({family.kind}): {use}")
    known = ", ".join(sorted(n for n, f in families.items() if f.kind == kind)) or "none"
    other = elsewhere.get(model_type)
    hint = f" (for {model_type} use --backbone {other})" if other else ""
    raise UserError(
        f"{backbone} does not know the architecture family {model_type!r} of {source}{hint}: it maps the "
        f"modules of {known} to roles and will not guess them from parameter names. To add {model_type!r}, "
        f"register a fpt_bench.api.families.ModelFamily for it from a plugin's "
        f"fpt_bench_register_model_families(registry) hook (docs/backbones.md, 'Adding a family')"
    )
