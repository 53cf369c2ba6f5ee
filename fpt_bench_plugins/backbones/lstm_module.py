"""The LSTM baseline's module (the ``lstm`` backbone's nn.Module) and its layer-norm LSTM layer and cell step.
Imported by ``lstm.py`` only when a backbone is built."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn import functional as F

from fpt_bench import BackboneModule, Role

if TYPE_CHECKING:
    from fpt_bench_plugins.backbones.lstm import LSTMOptions

ARCHITECTURE = ("n_layers", "hidden_size", "layer_norm", "residual", "positions")


def _ln_lstm_step(xp: torch.Tensor, h: torch.Tensor, c: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor,
                  ln_hh_w: torch.Tensor, ln_hh_b: torch.Tensor, ln_c_w: torch.Tensor, ln_c_b: torch.Tensor,
                  eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One step: ``xp`` is the (already normalised) input projection of this step, (B, 4H)."""
    size = h.shape[-1]
    gates = xp + F.layer_norm(F.linear(h, w_hh, b_hh), (4 * size,), ln_hh_w, ln_hh_b, eps)
    sig = torch.sigmoid(gates[:, : 3 * size])
    cell = sig[:, size: 2 * size] * c + sig[:, :size] * torch.tanh(gates[:, 3 * size:])
    cell = F.layer_norm(cell, (size,), ln_c_w, ln_c_b, eps)
    return sig[:, 2 * size:] * torch.tanh(cell), cell


_compiled_step: Any = None


def _step_fn(compiled: bool) -> Any:
    global _compiled_step
    if not compiled:
        return _ln_lstm_step
    if _compiled_step is None:
        _compiled_step = torch.compile(_ln_lstm_step, dynamic=False)
    return _compiled_step


class LayerNormLSTM(nn.Module):
    """One LSTM layer with LayerNorm on the input and recurrent gate pre-activations and on the cell."""

    def __init__(self, input_size: int, hidden_size: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.hidden_size, self.eps = hidden_size, eps
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.bias_ih = nn.Parameter(torch.empty(4 * hidden_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(4 * hidden_size))
        self.ln_ih = nn.LayerNorm(4 * hidden_size, eps=eps)
        self.ln_hh = nn.LayerNorm(4 * hidden_size, eps=eps)
        self.ln_cell = nn.LayerNorm(hidden_size, eps=eps)
        self.compiled = False
        bound = 1 / math.sqrt(hidden_size)  # nn.LSTM's initialisation
        for weight in (self.weight_ih, self.bias_ih, self.weight_hh, self.bias_hh):
            nn.init.uniform_(weight, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xp = self.ln_ih(F.linear(x, self.weight_ih, self.bias_ih))  # every time step at once: (B, T, 4H)
        batch, steps = x.shape[:2]
        h = x.new_zeros(batch, self.hidden_size, dtype=xp.dtype)
        c = torch.zeros_like(h)
        step = _step_fn(self.compiled)
        w_hh, b_hh = self.weight_hh, self.bias_hh
        if torch.is_autocast_enabled(x.device.type):  # cast once, not once per step
            dtype = torch.get_autocast_dtype(x.device.type)
            w_hh, b_hh = w_hh.to(dtype), b_hh.to(dtype)
        outputs = []
        for t in range(steps):
            h, c = step(xp[:, t], h, c, w_hh, b_hh, self.ln_hh.weight, self.ln_hh.bias, self.ln_cell.weight,
                        self.ln_cell.bias, self.eps)
            outputs.append(h)
        return torch.stack(outputs, 1)


class LSTMModule(BackboneModule):
    causal = True  # the state at a position has seen only the positions before it

    def __init__(self, options: LSTMOptions, max_len: int, provenance: dict[str, Any]) -> None:
        super().__init__()
        size = options.hidden_size
        self.hidden_size, self.n_layers = size, options.n_layers
        self.residual, self.layer_norm = options.residual, options.layer_norm
        if options.layer_norm:
            self.layers = nn.ModuleList(LayerNormLSTM(size, size) for _ in range(options.n_layers))
            for layer in self.layers:
                layer.compiled = options.compile
        else:
            self.layers = nn.ModuleList(nn.LSTM(size, size, batch_first=True) for _ in range(options.n_layers))
        self.dropout = nn.Dropout(options.dropout)
        self.position: nn.Parameter | None = None
        if options.positions:
            self.position = nn.Parameter(torch.empty(max(options.n_positions, max_len), size).normal_(0.0, 0.02))
        self.max_positions = None if self.position is None else self.position.shape[0]
        self._options = options
        self._provenance = provenance

    def forward(self, embeds: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        hidden = embeds if self.position is None else embeds + self.position[: embeds.shape[1]]
        for i, layer in enumerate(self.layers):
            out = layer(hidden) if self.layer_norm else layer(hidden)[0]
            hidden = hidden + out if self.residual else out
            if i < len(self.layers) - 1:
                hidden = self.dropout(hidden)
        return hidden

    def parameter_roles(self) -> dict[str, Role]:
        roles = {}
        for i, layer in enumerate(self.layers):
            norms = {id(p) for m in layer.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters()}
            for name, param in layer.named_parameters():
                roles[f"layers.{i}.{name}"] = Role.NORM if id(param) in norms else Role.RECURRENT
        if self.position is not None:
            roles["position"] = Role.POSITION
        return roles

    def parameter_layers(self) -> dict[str, int]:
        return {f"layers.{i}.{name}": i for i, layer in enumerate(self.layers) for name, _ in layer.named_parameters()}

    def used_numel(self, seq_len: int) -> dict[str, int]:
        if self.position is None:
            return {}
        return {"position": min(seq_len, self.position.shape[0]) * self.hidden_size}

    def provenance(self) -> dict[str, Any]:
        return self._provenance

    def architecture(self) -> dict[str, Any]:
        arch: dict[str, Any] = {"kind": "lstm", **{k: getattr(self._options, k) for k in ARCHITECTURE}}
        arch["n_layers"] = len(self.layers)
        arch["n_positions"] = self.max_positions or self._options.n_positions
        return arch
