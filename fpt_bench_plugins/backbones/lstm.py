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

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fpt_bench import Backbone, BackboneSpec, UserError, hookimpl
from fpt_bench.api.checkpoint_schema import Architecture
from fpt_bench.api.memory import build_within_memory
from fpt_bench.api.structure import MAX_LAYERS, MAX_POSITIONS, MAX_WIDTH
from fpt_bench.api.weights import checkpoint_provenance, open_checkpoint, parse_weights

if TYPE_CHECKING:
    from fpt_bench_plugins.backbones.lstm_module import LSTMModule

WEIGHTS = ("random", "checkpoint", "result")


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
        from fpt_bench_plugins.backbones.lstm_module import ARCHITECTURE, LSTMModule

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
