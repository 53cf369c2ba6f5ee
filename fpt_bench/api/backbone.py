"""The Backbone plugin interface: maps a sequence of embeddings to hidden states, nothing about tasks. The module a
backbone builds is a ``BackboneModule`` (``fpt_bench.api.backbone_module``, which imports torch)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from fpt_bench.api.options import Configurable
from fpt_bench.api.specs import BackboneSpec
from fpt_bench.infra.lazy import moved

if TYPE_CHECKING:
    from fpt_bench.api.backbone_module import BackboneModule


class Backbone(Configurable):
    """Base class for backbones. Subclasses set ``spec`` and ``Options`` and implement ``build``.

    ``smoke_args`` are options that build a tiny instance (seconds on a CPU, nothing downloaded): ``fpt-bench
    check-plugin`` and tests use them. ``None`` means there is no such size; ``{}`` means the defaults are tiny.
    """

    spec: ClassVar[BackboneSpec]
    component_kind = "backbone"
    options_flag = "--backbone-args"
    smoke_args: ClassVar[dict[str, Any] | None] = None

    def build(self, options: BaseModel, max_len: int) -> BackboneModule:
        raise NotImplementedError

    def availability(self, options: BaseModel) -> str | None:
        """Why ``build(options)`` cannot work on this machine as it is (its weights are not here and cannot be
        fetched), as one message that says what to install or where to put the files; None when it can.

        Asked before cells run (``fpt-bench run`` skips such cells, ``fpt-bench ls cells`` lists them as
        unavailable), so it must be quick: look for files, never download. Default: always available."""
        return None


# BackboneModule imports torch: found here on first use
__getattr__ = moved(__name__, {"BackboneModule": "fpt_bench.api.backbone_module"})
