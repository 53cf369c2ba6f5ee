"""FPTModel = input layer -> backbone -> readout -> output layer, with a role for every parameter."""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from fpt_bench.api.backbone_module import BackboneModule
from fpt_bench.api.roles import Role
from fpt_bench.api.specs import Continuous, Readout, TaskSpec, Tokens

INPUT_INIT_GAIN = 1.41  # orthogonal init of the linear input layer, as in the paper


class InputLayer(nn.Module):
    """A linear layer (orthogonal init, zero bias) for continuous tokens, an embedding for token ids."""

    def __init__(self, spec: Continuous | Tokens, hidden_size: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.tokens = isinstance(spec, Tokens)
        if isinstance(spec, Tokens):
            self.embed: nn.Module = nn.Embedding(spec.vocab_size, hidden_size)
        else:
            linear = nn.Linear(spec.dim, hidden_size)
            nn.init.orthogonal_(linear.weight, gain=INPUT_INIT_GAIN)
            nn.init.zeros_(linear.bias)
            self.embed = linear
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.embed(x))


class FPTModel(nn.Module):
    def __init__(self, task: TaskSpec, backbone: BackboneModule, input_dropout: float = 0.1) -> None:
        super().__init__()
        self.task = task
        self.input = InputLayer(task.input, backbone.hidden_size, input_dropout)
        self.backbone = backbone
        out = task.output
        self.output = nn.Linear(backbone.hidden_size, out.per_position * out.width)
        # modules a freeze policy's ``transform`` adds (LoRA, adapters); their parameters have role ``adapter``,
        # and a module with an int attribute ``layer`` belongs to that backbone layer
        self.adapters = nn.ModuleDict()

    # ------------------------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Outputs of shape (B, n_predictions, width): logits for classification (width = n_classes)."""
        return self.head(self.features(x, lengths))

    def features(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Input layer -> backbone -> readout: the hidden states the output layer reads, (B, k, hidden).

        When nothing here trains (an output-layer-only policy) this runs without recording autograd graph;
        PyTorch would skip it anyway (no input requires grad), the explicit ``no_grad`` makes it certain."""
        frozen = not any(p.requires_grad for p in self._prefix_parameters())
        with torch.no_grad() if frozen else contextlib.nullcontext():
            embeds = self.input(x)
            mask = None
            if lengths is not None:
                positions = torch.arange(embeds.shape[1], device=embeds.device)
                mask = (positions[None, :] < lengths[:, None]).long()
            hidden = self.backbone(embeds, mask)
            return self.readout(hidden, lengths)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """The output layer on readout features (B, k, hidden) -> outputs (B, n_predictions, width)."""
        out = self.task.output
        return self.output(features).reshape(features.shape[0], out.n_predictions, out.width)

    def _prefix_parameters(self) -> Iterator[nn.Parameter]:
        """Every parameter below the output layer, including modules a policy added (``adapters``), which
        hook into the backbone's forward from outside it."""
        output = {id(p) for p in self.output.parameters()}
        yield from (p for p in self.parameters() if id(p) not in output)

    def readout(self, hidden: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """Hidden states at the read positions: (B, k, hidden)."""
        out = self.task.output
        if out.readout == Readout.LAST_K:
            return hidden[:, -out.k:]
        if out.readout == Readout.LAST_NONPAD and lengths is not None:
            index = (lengths - 1).clamp(min=0)
            return hidden[torch.arange(hidden.shape[0], device=hidden.device), index][:, None]
        return hidden[:, -1:]

    # -------------------------------------------------------------------------------------- roles
    def parameter_roles(self) -> dict[str, Role]:
        roles: dict[str, Role] = {}
        for name, _ in self.input.named_parameters():
            roles[f"input.{name}"] = Role.INPUT
        for name, _ in self.output.named_parameters():
            roles[f"output.{name}"] = Role.OUTPUT
        backbone_roles = self.backbone.parameter_roles()
        tagged = self._tagged_roles()
        for name, _ in self.backbone.named_parameters():
            full = f"backbone.{name}"
            if full in tagged:
                roles[full] = tagged[full]
            elif name in backbone_roles:
                roles[full] = backbone_roles[name]
            else:
                raise RuntimeError(f"backbone parameter {name!r} has no role (a bug in the backbone plugin)")
        for name, _ in self.adapters.named_parameters():
            roles[f"adapters.{name}"] = Role.ADAPTER
        return roles

    def _tagged_roles(self) -> dict[str, Role]:
        """Roles declared by modules themselves: a module with an ``fpt_role`` attribute (for example an
        adapter that a freeze policy's ``transform`` inserted) gives that role to all its parameters."""
        tagged: dict[str, Role] = {}
        for module_name, module in self.named_modules():
            role = getattr(module, "fpt_role", None)
            if role is not None:
                for name, _ in module.named_parameters():
                    tagged[f"{module_name}.{name}" if module_name else name] = Role(role)
        return tagged

    def parameter_layers(self) -> dict[str, int]:
        layers = {f"backbone.{k}": v for k, v in self.backbone.parameter_layers().items()}
        for key, module in self.adapters.items():
            if isinstance(getattr(module, "layer", None), int):
                layers.update({f"adapters.{key}.{name}": module.layer for name, _ in module.named_parameters()})
        return layers

    def parameter_counts(self, seq_len: int) -> dict[str, Any]:
        """Total and trainable counts, and trainable elements a sequence of ``seq_len`` can reach."""
        roles = self.parameter_roles()
        partial = {f"backbone.{k}": v for k, v in self.backbone.used_numel(seq_len).items()}
        total = trainable = reachable = 0
        by_role: dict[str, dict[str, int]] = defaultdict(lambda: {"total": 0, "trainable": 0})
        for name, param in self.named_parameters():
            n = param.numel()
            total += n
            by_role[roles[name].value]["total"] += n
            if param.requires_grad:
                trainable += n
                reachable += partial.get(name, n)
                by_role[roles[name].value]["trainable"] += n
        return {
            "total": total,
            "trainable": trainable,
            "trainable_reachable": reachable,
            "trainable_fraction": trainable / total if total else 0.0,
            "by_role": dict(sorted(by_role.items())),
        }
