"""The torch side of ``hf_encoder``: the module it (and ``minilm``) builds, a Hugging Face encoder fed
``inputs_embeds``. The backbones import it when they build a module, so listing the plugins does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from fpt_bench.api.structure import layer_list, submodule
from fpt_bench.api.transformer import TransformerModule
from fpt_bench.api.weights import truncate_layers

if TYPE_CHECKING:
    from fpt_bench_plugins.backbones.hf_encoder import Family



class HFEncoderModule(TransformerModule):
    def __init__(self, model: nn.Module, family: Family, provenance: dict[str, Any]) -> None:
        super().__init__(provenance)
        self.model = model
        self.family = family
        self.role_map, self.role_prefix = family.roles, "model."
        self._sync()

    def _sync(self) -> None:
        config = self.model.config
        self.hidden_size = config.d_model if self.family.model_type == "t5" else config.hidden_size
        self.n_layers = len(layer_list(self.model, self.family.roles))
        self.max_positions = (config.max_position_embeddings - self.family.position_offset(config)
                              if self.family.position else None)

    def forward(self, embeds: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None and self.family.model_type == "longformer":
            mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
        return self.model(inputs_embeds=embeds, attention_mask=mask).last_hidden_state

    def used_numel(self, seq_len: int) -> dict[str, int]:
        used = {f"model.{path}.weight": 0 for path in self.family.token_embedding}
        if self.family.position:
            rows = self.family.position_offset(self.model.config) + seq_len
            used[f"model.{self.family.position}.weight"] = min(rows, self.model.config.max_position_embeddings) * \
                self.hidden_size
            if self.family.model_type != "t5":
                used["model.embeddings.token_type_embeddings.weight"] = self.hidden_size
        return used

    def architecture(self) -> dict[str, Any]:
        return {"kind": "hf_encoder", "family": self.family.model_type, "config": self.model.config.to_dict()}

    def truncate(self, n_layers: int | None, what: str) -> None:
        parent_path, _, attribute = self.family.roles.layers.rpartition(".")
        parent = submodule(self.model, parent_path)
        assert parent is not None
        setattr(self.model.config, self.family.depth_key, truncate_layers(parent, attribute, n_layers, what))
        self._sync()

    def extend_positions(self, max_len: int) -> dict[str, int] | None:
        """Grow the absolute position table for tasks longer than the model's positions (new rows drawn like
        the model's init, normal with the config's initializer_range); None when nothing had to change."""
        if self.max_positions is None or max_len <= self.max_positions:
            return None
        path = self.family.position
        assert path is not None
        embeddings_path, _, attribute = path.rpartition(".")
        embeddings = submodule(self.model, embeddings_path)
        old = getattr(embeddings, attribute)
        rows = max_len + self.family.position_offset(self.model.config)
        new = nn.Embedding(rows, old.embedding_dim, padding_idx=old.padding_idx, device=old.weight.device)
        with torch.no_grad():
            new.weight.normal_(0.0, self.model.config.initializer_range)
            new.weight[: old.num_embeddings] = old.weight
        setattr(embeddings, attribute, new)
        for buffer in ("position_ids", "token_type_ids"):  # BERT keeps index buffers as long as the table
            if isinstance(getattr(embeddings, buffer, None), torch.Tensor):
                values = torch.arange(rows) if buffer == "position_ids" else torch.zeros(rows, dtype=torch.long)
                embeddings.register_buffer(buffer, values.expand((1, -1)).to(old.weight.device), persistent=False)
        before = self.max_positions
        self.model.config.max_position_embeddings = rows
        self._sync()
        return {"from": before, "to": max_len}
