"""The paper's LSTM baseline (Lu et al. 2021, Table 1 and section 3.3): 3 layers, width 768, LayerNorm on the
gate pre-activations and on the cell, no positional embeddings; options for more layers, residual connections
and a learned position table.

Speed: with ``layer_norm=false`` every layer is an ``nn.LSTM`` (cuDNN on a GPU, oneDNN on a CPU). With layer
norm (the default) no fused kernel exists; the input projection and its LayerNorm run for all time steps in one
matrix product before the recurrence, and the recurrence is one small function per step (``compile=true`` fuses
it with ``torch.compile``). ``benchmarks/lstm_step.py`` measures it next to GPT-2.

As in the reference code's LN-LSTM, the input and recurrent projections are normalised separately, the gates
are ordered (input, forget, output, cell) and the normalised cell is the state carried to the next step. The
reference starts every sequence from a random state and initialises the LayerNorm gains uniformly near 0; here
the state starts at zero and LayerNorms start at gain 1, bias 0 (a deterministic, standard choice).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn
from torch.nn import functional as F

from fpt_bench import Backbone, BackboneModule, BackboneSpec, Role, UserError, hookimpl
from fpt_bench.api.checkpoint_schema import Architecture
from fpt_bench.api.memory import build_within_memory
from fpt_bench.api.structure import MAX_LAYERS, MAX_POSITIONS, MAX_WIDTH
from fpt_bench.api.weights import checkpoint_provenance, open_checkpoint, parse_weights

WEIGHTS = ("random", "checkpoint", "result")
ARCHITECTURE = ("n_layers", "hidden_size", "layer_norm", "residual", "positions")


class LSTMOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    weights: str = Field(default="random", description="random | checkpoint:PATH | result:RESULT_JSON")
    n_layers: int = Field(default=3, gt=0, le=MAX_LAYERS, description="LSTM layers (the paper: 3)")
    hidden_size: int = Field(default=768, gt=0, le=MAX_WIDTH, description="width (the paper: 768)")
    layer_norm: bool = Field(default=True, description="LayerNorm on gate pre-activations and cell (the paper)")
    residual: bool = Field(default=False, description="residual connection around every layer")
    positions: bool = Field(default=False, description="add a learned position table to the input")
    n_positions: int = Field(default=1024, gt=0, le=MAX_POSITIONS,
                             description="rows of the position table (grown to max_len)")
    dropout: float = Field(default=0.0, ge=0, lt=1, description="dropout between layers")
    compile: bool = Field(default=False, description="torch.compile the layer-norm cell step")

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: str) -> str:
        parse_weights(value, WEIGHTS)
        return value


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


class LSTMArchitecture(Architecture):
    """What a saved LSTM backbone's ``architecture`` holds (``LSTMModule.architecture``)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    kind: Literal["lstm"]
    n_layers: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    layer_norm: bool
    residual: bool
    positions: bool
    n_positions: int = Field(gt=0)


class LSTM(Backbone):
    spec = BackboneSpec(
        name="lstm",
        description="the paper's LSTM: 3 x 768, LayerNorm on gates and cell; options: layers, residual, positions",
        citation="Hochreiter & Schmidhuber 1997; Ba et al. Layer Normalization 2016; Lu et al. 2021.",
    )
    Options = LSTMOptions
    smoke_args = {"n_layers": 2, "hidden_size": 16}

    def build(self, options: LSTMOptions, max_len: int) -> LSTMModule:  # type: ignore[override]
        weights = parse_weights(options.weights, WEIGHTS)
        if not weights.from_checkpoint:
            init = "nn.LSTM's uniform(+-1/sqrt(width)); LayerNorm gain 1, bias 0; zero initial state"
            return build_within_memory(  # measured on the meta device first: a forged size allocates nothing
                lambda: LSTMModule(options, max_len, {"weights": "random", "init": init}),
                f"backbone 'lstm' (n_layers={options.n_layers}, hidden_size={options.hidden_size})",
                "choose smaller n_layers / hidden_size")
        checkpoint = open_checkpoint(weights, "lstm", LSTMArchitecture)
        arch = checkpoint.architecture
        clash = [k for k in ARCHITECTURE if k in options.model_fields_set and getattr(options, k) != arch[k]
                 and k != "n_layers"]
        if clash:
            raise UserError(f"{checkpoint.path} fixes {', '.join(f'{k}={arch[k]}' for k in clash)}; drop those options")
        depth = options.n_layers if "n_layers" in options.model_fields_set else arch["n_layers"]
        if depth > arch["n_layers"]:
            raise UserError(f"n_layers={depth}, but {checkpoint.path} has only {arch['n_layers']} layers")
        saved = options.model_copy(update={**{k: arch[k] for k in ARCHITECTURE}, "n_positions": arch["n_positions"]})
        origin = checkpoint_provenance(checkpoint)
        module = checkpoint.build(lambda: LSTMModule(saved, 0, dict(origin)))
        module.layers = module.layers[:depth]
        module.n_layers = depth
        if module.position is not None and max_len > module.position.shape[0]:
            raise UserError(f"{checkpoint.path} has {module.position.shape[0]} positions; this task needs {max_len}")
        return module


@hookimpl
def fpt_bench_register_backbones(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(LSTM())
