"""``BackboneModule``: what ``Backbone.build`` returns (an ``nn.Module``). Kept apart from ``fpt_bench.api.backbone``
so that registering and listing backbones does not import torch; ``fpt_bench.api.backbone.BackboneModule`` and
``fpt_bench.BackboneModule`` load it on first use."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fpt_bench.api.roles import Role


class BackboneModule(nn.Module):
    """What ``Backbone.build`` returns.

    Subclasses set ``hidden_size``, ``max_positions`` (None when unbounded) and ``n_layers``, and implement
    ``forward`` and ``parameter_roles``. Roles are assigned from the module structure, never by matching
    parameter names in the core.
    """

    hidden_size: int
    max_positions: int | None = None
    n_layers: int = 0
    causal: bool = False
    attention: str | None = None  # the attention kernel in use (e.g. "sdpa"), recorded in the result
    activation: str | None = None  # the feed-forward activation's implementation, recorded in the result

    def forward(self, embeds: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``embeds`` (B, T, hidden) and ``mask`` (B, T; 1 = real token) -> hidden states (B, T, hidden)."""
        raise NotImplementedError

    def parameter_roles(self) -> dict[str, Role]:
        """Every parameter name (as in ``named_parameters()``) -> its role."""
        raise NotImplementedError

    def parameter_layers(self) -> dict[str, int]:
        """Parameter name -> layer index (0-based) for parameters that belong to a layer."""
        return {}

    def used_numel(self, seq_len: int) -> dict[str, int]:
        """Parameters that a sequence of ``seq_len`` reaches only in part: name -> elements reached.

        For example the rows of a position table beyond ``seq_len``, or a token embedding that the harness
        never calls (0). Parameters not listed are reached whole.
        """
        return {}

    def attention_flops(self, seq_len: int) -> int:
        """Forward FLOPs of one sequence of ``seq_len`` that no parameter count shows (attention scores and
        their weighted sum: ``4 * n_layers * seq_len**2 * hidden`` for a transformer), for the harness's MFU
        estimate (docs/performance.md). Default 0."""
        return 0

    def provenance(self) -> dict[str, Any]:
        """Where the weights came from (recorded in the result)."""
        return {}

    def architecture(self) -> dict[str, Any]:
        """JSON-able description from which the backbone plugin can rebuild this module without its weights
        (e.g. the model config); stored in backbone checkpoints (``--save-backbone``). Default: nothing."""
        return {}
