"""Freeze policies: role sets and pinned trainable-parameter counts."""

from __future__ import annotations

import pytest

from fpt_bench.api.model import FPTModel
from fpt_bench.api.roles import Role
from fpt_bench.host.manager import get_host

R = Role
FPT = {R.INPUT, R.OUTPUT, R.NORM, R.POSITION}
EXPECTED_ROLES = {
    "fpt": FPT,
    "out_norm_in_pos": FPT,
    "full": set(Role) - {R.RECURRENT, R.ADAPTER, R.OTHER},  # roles GPT-2 has
    "output_only": {R.OUTPUT},
    "out": {R.OUTPUT},
    "out_norm": {R.OUTPUT, R.NORM},
    "out_norm_in": {R.OUTPUT, R.NORM, R.INPUT},
    "fpt_ff": FPT | {R.FEEDFORWARD},
    "fpt_attn": FPT | {R.ATTENTION},
    "fpt_ff_attn": FPT | {R.FEEDFORWARD, R.ATTENTION},
    "fpt_ff_last_attn": FPT | {R.FEEDFORWARD, R.ATTENTION},
    "fpt_frozen_norm": {R.INPUT, R.OUTPUT, R.POSITION},
    "bitfit": {R.INPUT, R.OUTPUT, R.NORM, R.ATTENTION, R.FEEDFORWARD},  # the biases within those roles
    "lora": FPT | {R.ADAPTER},  # default: adapters on attention, on top of fpt
    "fpt_layers": FPT | {R.ATTENTION, R.FEEDFORWARD},  # with last=1: both roles of the last layer
}
# options a policy needs (the others take none)
POLICY_ARGS = {"fpt_layers": {"last": 1}}


def build(task: str, backbone_args: dict) -> FPTModel:
    host = get_host()
    spec = host.tasks.get(task).spec
    backbone = host.backbones.get("gpt2")
    return FPTModel(spec, backbone.build(backbone.options(backbone_args), spec.max_len))


def apply(model: FPTModel, policy: str) -> dict:
    p = get_host().policies.get(policy)
    p.apply(model, p.options(POLICY_ARGS.get(policy, {})))
    return model.parameter_counts(model.task.max_len)


@pytest.fixture(scope="module")
def tiny() -> FPTModel:
    return build("bit_xor", {"weights": "random", "n_layers": 3, "n_embd": 32, "n_head": 2})


def test_every_policy_is_pinned_here() -> None:
    assert set(get_host().policies.names()) == set(EXPECTED_ROLES)


@pytest.mark.parametrize("policy", sorted(EXPECTED_ROLES))
def test_policy_role_sets(policy: str) -> None:
    # a fresh model each: lora adds adapter modules that would stay on a shared one
    counts = apply(build("bit_xor", {"weights": "random", "n_layers": 3, "n_embd": 32, "n_head": 2}), policy)
    trained = {Role(role) for role, c in counts["by_role"].items() if c["trainable"]}
    assert trained == EXPECTED_ROLES[policy]


def test_layer_selection_trains_only_the_last_attention_layer(tiny: FPTModel) -> None:
    apply(tiny, "fpt_ff_last_attn")
    roles, layers = tiny.parameter_roles(), tiny.parameter_layers()
    attention = {layers[n] for n, p in tiny.named_parameters() if roles[n] == R.ATTENTION and p.requires_grad}
    feedforward = {layers[n] for n, p in tiny.named_parameters() if roles[n] == R.FEEDFORWARD and p.requires_grad}
    assert attention == {2} and feedforward == {0, 1, 2}


def test_bitfit_trains_exactly_the_biases_and_the_output_layer(tiny: FPTModel) -> None:
    apply(tiny, "bitfit")
    trained = {n for n, p in tiny.named_parameters() if p.requires_grad}
    assert trained == {n for n, _ in tiny.named_parameters() if n.endswith(".bias")} | {"output.weight"}


@pytest.fixture(scope="module")
def base_bit_memory() -> FPTModel:
    return build("bit_memory", {"weights": "random"})  # GPT-2 base from its config: no download


# GPT-2 base on Bit Memory (120 tokens of 50, last 20 tokens x 50 bits x 2 classes):
# input 50*768+768 = 39,168; output 768*100+100 = 76,900; 25 LayerNorms * 1,536 = 38,400;
# positions: the whole table 1024*768 = 786,432 has requires_grad, the 120 used rows 92,160 are reachable.
# GPT-2 base itself has 124,439,808 parameters; wte (38,597,376) is never reachable.
@pytest.mark.parametrize(
    ("policy", "trainable", "reachable"),
    [
        ("fpt", 940_900, 246_628),
        ("full", 124_555_876, 85_264_228),
        ("output_only", 76_900, 76_900),
        ("out_norm", 115_300, 115_300),
        ("out_norm_in", 154_468, 154_468),
        ("fpt_frozen_norm", 902_500, 208_228),
        ("bitfit", 179_812, 179_812),
    ],
)
def test_pinned_counts_gpt2_base_bit_memory(base_bit_memory: FPTModel, policy: str, trainable: int,
                                             reachable: int) -> None:
    counts = apply(base_bit_memory, policy)
    assert counts["total"] == 124_439_808 + 39_168 + 76_900
    assert (counts["trainable"], counts["trainable_reachable"]) == (trainable, reachable)


def test_modules_added_by_a_policy_declare_their_own_role(tiny: FPTModel) -> None:
    import torch

    adapter = torch.nn.Linear(32, 4, bias=False)
    adapter.fpt_role = Role.ADAPTER  # what a LoRA/adapter transform sets on the modules it adds
    tiny.backbone.model.h[0].attn.adapter = adapter
    try:
        roles = tiny.parameter_roles()
        assert roles["backbone.model.h.0.attn.adapter.weight"] == Role.ADAPTER
        assert roles["backbone.model.h.0.attn.c_attn.weight"] == Role.ATTENTION
    finally:
        del tiny.backbone.model.h[0].attn.adapter


def test_adapters_outside_the_backbone_get_gradients_when_only_they_and_the_output_train() -> None:
    # lora's adapters live in FPTModel.adapters and hook into the backbone from outside it: with everything else
    # below the output layer frozen, the forward pass must still record the graph (no no_grad shortcut)
    import torch

    model = build("bit_xor", {"weights": "random", "n_layers": 2, "n_embd": 32, "n_head": 2, "dropout": 0})
    apply(model, "lora")
    for name, param in model.named_parameters():
        param.requires_grad_(name.startswith(("adapters.", "output.")))
    model(torch.rand(3, 10, 1)).sum().backward()
    grads = [p.grad for n, p in model.named_parameters() if n.startswith("adapters.") and n.endswith("lora_b")]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)
