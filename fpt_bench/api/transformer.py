"""One builder for every weight source of a transformer backbone: ``TransformerBackbone.build``.

A transformer backbone plugin says how to make its module three ways — from its config alone (``weights=random``),
from pretrained weights (``pretrained``; also ``stats``, which redraws them), and from a harness checkpoint
(``checkpoint:PATH`` / ``result:RESULT_JSON``) — and what to do once the module exists (``finish``: grow a position
table, pick a kernel). The builder does the rest the same way for every backbone: which source, the provenance the
result records, the statistics-matched redraw, loading and checking a checkpoint, and keeping the first
``n_layers`` blocks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from fpt_bench.api.availability import unavailable_reason
from fpt_bench.api.backbone import Backbone
from fpt_bench.api.checkpoint_schema import Architecture
from fpt_bench.api.errors import UserError
from fpt_bench.api.memory import build_within_memory
from fpt_bench.api.structure import TransformerOptions
from fpt_bench.api.weights import checkpoint_provenance, open_checkpoint, stats_init_
from fpt_bench.infra.lazy import moved

if TYPE_CHECKING:
    from fpt_bench.api.backbone_checkpoint import BackboneCheckpoint
    from fpt_bench.api.transformer_module import TransformerModule

STATS_INIT = "per-tensor Gaussian with the pretrained tensor's mean and std"


class TransformerBackbone(Backbone):
    """Base of transformer backbones: implement ``random_module``, ``pretrained_module`` and
    ``checkpoint_module`` (each gets the provenance dict to keep and may add to it, and returns a
    :class:`TransformerModule`), and, where needed, ``source`` and ``finish``. ``build`` picks the constructor for
    ``weights=`` (random / pretrained / stats / checkpoint:PATH / result:R.json), then keeps the first ``n_layers``
    blocks (``TransformerModule.truncate``), then calls ``finish``. ``--save-backbone`` and ``weights=checkpoint:``
    need ``kind``, ``architecture_schema`` and the module's ``architecture()``.

    ``kind`` is the architecture tag written into backbone checkpoints (``BackboneModule.architecture()["kind"]``);
    a checkpoint of another kind is refused with the backbone to use instead, and ``architecture_schema`` (a pydantic
    model of what ``architecture()`` writes) validates a checkpoint's metadata before anything is built."""

    kind: ClassVar[str]
    architecture_schema: ClassVar[type[Architecture] | None] = None  # what a saved backbone's architecture holds
    random_init: ClassVar[str] = "transformers default (normal, std 0.02)"
    random_alternative: ClassVar[str] = ""  # said when pretrained files are missing: what works without them

    def install_hint(self, source: str) -> str:
        """How to get ``source``'s files without the hub when a package brings them (said first), else ``""``."""
        return ""

    def needed_files(self, options: Any) -> tuple[str | None, bool]:
        """(the pretrained source whose files a cell with these options needs, whether its weights too). Default:
        the source for pretrained and stats weights; nothing for random init (a library config) or a checkpoint."""
        if options.weight_source.needs_pretrained:
            return self.source(options), True
        return None, False

    def availability(self, options: Any) -> str | None:
        """Why the files these options need are neither here nor fetchable (one message that says what to do), or
        None: asked before cells run and again by ``build``, so a machine without them fails at once."""
        source, needs_weights = self.needed_files(options)
        if source is None:
            return None
        return unavailable_reason(source, needs_weights=needs_weights, install=self.install_hint(source),
                                  alternative=self.random_alternative if needs_weights else "")

    def source(self, options: BaseModel) -> str | None:
        """The hub id or local directory of the pretrained model these options name."""
        return getattr(options, "source", None)

    def random_module(self, options: Any, max_len: int, provenance: dict[str, Any]) -> TransformerModule:
        raise NotImplementedError

    def pretrained_module(self, source: str, options: Any, max_len: int,
                          provenance: dict[str, Any]) -> TransformerModule:
        """The pretrained model at ``source`` (also for ``weights=stats``: ``provenance["weights"]`` says which)."""
        raise NotImplementedError

    def checkpoint_module(self, checkpoint: BackboneCheckpoint, options: Any, max_len: int,
                          provenance: dict[str, Any]) -> TransformerModule:
        """A module of ``checkpoint.architecture``, weights not loaded yet (the builder builds it on the meta device
        first, checks it against the file's tensors, then builds it again and loads them)."""
        raise NotImplementedError

    def finish(self, module: TransformerModule, options: Any, max_len: int) -> None:
        """After the weights and the depth: what every source shares (grow positions, kernels, notes)."""

    def build(self, options: TransformerOptions, max_len: int) -> TransformerModule:  # type: ignore[override]
        reason = self.availability(options)
        if reason is not None:
            raise UserError(reason)
        weights = options.weight_source
        what = "the model"
        if weights.kind == "random":  # measured on the meta device first: a forged size allocates nothing
            module = build_within_memory(
                lambda: self.random_module(options, max_len, {"weights": "random", "init": self.random_init}),
                f"backbone {self.spec.name!r} ({_sizes(options)})", "choose smaller n_layers / n_embd")
        elif weights.from_checkpoint:
            checkpoint = open_checkpoint(weights, self.kind, self.architecture_schema)
            origin = checkpoint_provenance(checkpoint)
            # built first on the meta device and checked against the file's tensors, then for real and loaded
            module = checkpoint.build(lambda: self.checkpoint_module(checkpoint, options, max_len, dict(origin)))
            what = str(checkpoint.path)
        else:
            source = self.source(options)
            assert source is not None, "options without a source must be refused by their validator"
            what = source
            provenance: dict[str, Any] = {"weights": weights.kind, "source": source}
            module = self.pretrained_module(source, options, max_len, provenance)
            if weights.kind == "stats":
                provenance["tensors_redrawn"] = stats_init_(module.stats_target())
                provenance["init"] = STATS_INIT
        module.truncate(options.n_layers, what)  # random_module may build n_layers blocks to begin with
        self.finish(module, options, max_len)
        return module


def _sizes(options: Any) -> str:
    given = {k: getattr(options, k, None) for k in ("n_layers", "n_embd", "n_head")}
    return ", ".join(f"{k}={v}" for k, v in given.items() if v is not None) or "its default sizes"


# TransformerModule imports torch: found here on first use
__getattr__ = moved(__name__, {"TransformerModule": "fpt_bench.api.transformer_module"})
