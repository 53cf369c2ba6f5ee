"""Model FLOPs of a training step, and the device's matmul peak, for model FLOPs utilisation (MFU).

**Model FLOPs** count the multiply-adds the model needs (2 FLOPs each), as in the MFU of Chowdhery et al.
(PaLM, 2022), but for what *this* cell computes: a frozen parameter needs no weight gradient, and the backward
pass stops at the lowest trainable parameter. For a batch of ``B`` sequences padded to ``T`` tokens, read at
``k`` positions (``output.k``; 1 for most tasks)::

    N_in   matmul weights of the input layer (a linear layer: dim x hidden; an embedding table: 0, a lookup)
    N_bb   matmul weights of the backbone (parameters with 2+ dimensions, position and token tables excluded)
    N_out  weights of the output layer, applied at the k read positions only
    A(T)   attention FLOPs the backbone declares (GPT-2: 4 * layers * T^2 * hidden), 0 when it declares none

    forward          = 2 T (N_in + N_bb) + A(T) + 2 k N_out
    backward, inputs = f (2 T N_bb + 2 A(T)) + 2 k N_out    (only when anything below the output trains)
    backward, weights= 2 T (trainable matmul weights of the input layer and backbone) + 2 k N_out
    step             = B * (forward + backward)

``f`` is the share of backbone layers the backward pass runs through: layers at or above the lowest trainable
parameter (1 when the input layer or the position embeddings train, as in FPT; 0 for output-only policies).
Elementwise work (LayerNorm, GELU, softmax, biases, the optimizer) is not counted. With everything trainable
this is the familiar ``6 N`` per token (plus attention); FPT comes to about ``4 N``, output-only to ``2 N``.
On cached features (``feature_cache``) a step is ``B * 4 k N_out``.

**Peak**: the best of a few square matmuls in the cell's compute dtype on its device, measured once per
process (``measure_peak_flops``); MFU = achieved model FLOPs per training second / peak.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cache

import torch

from fpt_bench.api.model import FPTModel
from fpt_bench.api.roles import Role

BOTTOM_ROLES = frozenset({Role.INPUT, Role.POSITION, Role.TOKEN_EMBEDDING})  # enter below the first layer
LOOKUP_ROLES = frozenset({Role.POSITION, Role.TOKEN_EMBEDDING})


@dataclass(frozen=True)
class StepFlops:
    """The coefficients of the formula above for one assembled model (``step_flops`` evaluates it)."""

    n_in: int
    n_bb: int
    n_out: int
    k: int
    backward_share: float  # f
    inputs_backward: bool  # does any gradient flow below the output layer?
    trainable_prefix: int  # trainable matmul weights of the input layer and backbone
    output_trains: bool
    backbone: object  # the BackboneModule (for attention_flops)
    head_only: bool = False  # training on cached features

    def per_example(self, seq_len: int) -> float:
        forward = self._forward(seq_len)
        out = 2.0 * self.k * self.n_out
        weights = out if self.output_trains else 0.0  # the output layer's weight gradient
        if self.head_only:
            return forward + weights
        backward = 2.0 * seq_len * self.trainable_prefix + weights
        if self.inputs_backward:
            attn = float(self.backbone.attention_flops(seq_len))  # type: ignore[attr-defined]
            backward += self.backward_share * (2.0 * seq_len * self.n_bb + 2.0 * attn) + out
        return forward + backward

    def step(self, batch_size: int, seq_len: int) -> float:
        return batch_size * self.per_example(seq_len)

    def forward(self, batch_size: int, seq_len: int) -> float:
        """Forward FLOPs only (evaluation)."""
        return batch_size * self._forward(seq_len)

    def _forward(self, seq_len: int) -> float:
        out = 2.0 * self.k * self.n_out
        if self.head_only:
            return out
        attn = float(self.backbone.attention_flops(seq_len))  # type: ignore[attr-defined]
        return 2.0 * seq_len * (self.n_in + self.n_bb) + attn + out

    @property
    def backward_layers(self) -> int:
        """Backbone layers the backward pass runs through (recorded in the result's speed section)."""
        return round(self.backward_share * self.backbone.n_layers)  # type: ignore[attr-defined]


def step_flops(model: FPTModel, head_only: bool = False) -> StepFlops:
    """The FLOP formula's coefficients for ``model`` under its current ``requires_grad`` flags."""
    roles = model.parameter_roles()
    layers = model.parameter_layers()
    n_layers = max(model.backbone.n_layers, 1)
    n_in = n_bb = n_out = trainable_prefix = 0
    lowest = n_layers  # the lowest layer a gradient must reach; n_layers = none, -1 = below the first layer
    below_output = False
    output_trains = False
    for name, param in model.named_parameters():
        role = roles[name]
        matmul = param.ndim >= 2 and role not in LOOKUP_ROLES and not (role == Role.INPUT and model.input.tokens)
        if role == Role.OUTPUT:
            n_out += param.numel() if param.ndim >= 2 else 0
            output_trains |= param.requires_grad
            continue
        if name.startswith("input."):
            n_in += param.numel() if matmul else 0
        else:
            n_bb += param.numel() if matmul else 0
        if not param.requires_grad:
            continue
        below_output = True
        trainable_prefix += param.numel() if matmul else 0
        if role in BOTTOM_ROLES:
            lowest = -1
        elif name in layers:
            lowest = min(lowest, layers[name])
        elif role != Role.NORM:  # a trainable part of unknown depth: assume the backward runs through all
            lowest = -1
    share = (n_layers - max(lowest, 0)) / n_layers if below_output else 0.0
    return StepFlops(n_in=n_in, n_bb=n_bb, n_out=n_out, k=model.task.output.k, backward_share=share,
                     inputs_backward=below_output, trainable_prefix=trainable_prefix, output_trains=output_trains,
                     backbone=model.backbone, head_only=head_only)


# ------------------------------------------------------------------------------------------------ peak
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@cache
def _measure(device_str: str, dtype: torch.dtype) -> float:
    device = torch.device(device_str)
    cap = 8192 if device.type == "cuda" else 2048
    n, best = 256, 0.0
    while True:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        a @ b  # warm-up
        _sync(device)
        reps = 10 if device.type == "cuda" else 3
        for _ in range(reps):
            t0 = time.perf_counter()
            a @ b
            _sync(device)
            elapsed = time.perf_counter() - t0
            best = max(best, 2.0 * n**3 / max(elapsed, 1e-9))
        # grow while one product is quick (small ones underestimate the peak) and the cap allows it
        if n >= cap or elapsed > 0.05:
            return best
        n *= 2


def measure_peak_flops(device: torch.device | str, precision: str) -> float:
    """The device's matmul FLOPs per second in the compute dtype of ``precision`` (``bf16`` or ``fp32``),
    measured once per process and device: the best of a few square products, growing the size (up to 2048 on
    a CPU, 8192 on CUDA) until one takes 50 ms."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    return _measure(str(torch.device(device)), dtype)
