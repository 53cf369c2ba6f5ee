"""Model FLOPs (the MFU numerator) against a hand count and against PyTorch's FLOP counter; no autograd graph
below the lowest trainable parameter; the matmul peak."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from fpt_bench.api.model import FPTModel
from fpt_bench.host.manager import get_host
from fpt_bench.training.flops import measure_peak_flops, step_flops
from fpt_bench.training.loop import loss_fn


def build(policy: str, task: str = "bit_xor", **backbone_args) -> FPTModel:
    host = get_host()
    spec = host.tasks.get(task).spec
    backbone = host.backbones.get("gpt2")
    args = {"weights": "random", "n_layers": 2, "n_embd": 32, "n_head": 2, "dropout": 0.0, **backbone_args}
    torch.manual_seed(0)
    model = FPTModel(spec, backbone.build(backbone.options(args), spec.max_len), input_dropout=0.0)
    host.policies.get(policy).apply(model, host.policies.get(policy).options({}))
    return model


def test_fpt_step_flops_by_hand() -> None:
    """bit_xor (10 tokens of 1, read at the last 5, 2 classes each), GPT-2 2 x 32, FPT: per example
    forward 2*10*(32 + 24576) + A + 2*5*64 with A = 4*2*10^2*32, backward through both layers (the input layer
    trains) 2*10*24576 + 2A + 2*5*64, weight gradients of the input layer 2*10*32 and the output layer 2*5*64."""
    per_layer = 32 * 96 + 32 * 32 + 32 * 128 + 128 * 32  # c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj
    assert per_layer == 12288
    attention = 4 * 2 * 10 * 10 * 32
    forward = 2 * 10 * (32 + 2 * per_layer) + attention + 2 * 5 * 64
    backward = 2 * 10 * 2 * per_layer + 2 * attention + 2 * 5 * 64 + 2 * 10 * 32 + 2 * 5 * 64
    assert forward + backward == 1_063_040
    flops = step_flops(build("fpt"))
    assert flops.step(8, 10) == 8 * 1_063_040
    assert flops.forward(8, 10) == 8 * forward


@pytest.mark.parametrize(("policy", "task"), [("full", "bit_xor"), ("fpt", "bit_xor"), ("output_only", "bit_xor"),
                                              ("out_norm", "bit_memory"), ("fpt_ff_last_attn", "bit_xor"),
                                              ("fpt", "listops")])
def test_formula_matches_pytorchs_flop_counter(policy: str, task: str) -> None:
    """Eager attention, so the counter sees the attention matmuls (it has no rule for the CPU SDPA kernel)."""
    model = build(policy, task, attention="eager")
    model.train()
    host = get_host()
    t = host.tasks.get(task)
    spec = t.spec
    if spec.generated:
        batch = t.sample(3, torch.Generator().manual_seed(0), t.options({}))
    else:
        from fpt_bench import Batch

        batch = Batch(torch.randint(1, 16, (3, 40)), torch.zeros(3, dtype=torch.long))
    with FlopCounterMode(display=False) as counter:
        logits = model(batch.x, batch.lengths)
        loss_fn(logits, batch.y).backward()
    expected = step_flops(model).step(len(batch), batch.x.shape[1])
    assert expected == pytest.approx(counter.get_total_flops(), rel=0.002)


def test_head_only_flops_are_the_output_layers() -> None:
    model = build("output_only")
    features = torch.randn(4, 5, 32)
    with FlopCounterMode(display=False) as counter:
        loss_fn(model.head(features), torch.zeros(4, 5, dtype=torch.long)).backward()
    assert step_flops(model, head_only=True).step(4, 5) == counter.get_total_flops() == 4 * 4 * 5 * 64


def test_frozen_layers_below_the_lowest_trainable_one_build_no_graph() -> None:
    x = torch.randn(2, 10, 1)
    out_only = build("output_only")
    features = out_only.features(x)
    assert features.grad_fn is None and not features.requires_grad  # nothing below the head records graph
    assert out_only(x).grad_fn is not None  # the head does
    ladder = build("out_norm")  # LayerNorms train, the input layer does not
    assert ladder.input(x).grad_fn is None
    assert ladder.features(x).grad_fn is not None
    assert build("fpt").input(x).grad_fn is not None


def test_peak_is_measured_once_per_process_and_dtype() -> None:
    first = measure_peak_flops("cpu", "fp32")
    assert first > 1e8  # any CPU of this century does more than 0.1 GFLOP/s
    assert measure_peak_flops(torch.device("cpu"), "fp32") == first  # cached
