# ruff: noqa: F811 - the fixtures imported from plugin_helpers are redefined as arguments
"""Freeze policies: is_trainable receives the policy's options (a five-argument override written for API 1.1 still
works and passes check-plugin), "every role of the last k layers", and fpt_layers on every layered role."""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path

import pytest
from plugin_helpers import fake_dist, plugin_site  # noqa: F401 - fixtures
from pydantic import BaseModel, ConfigDict

from fpt_bench import FPT_ROLES, FPTModel, FreezePolicy, LayerSelection, PolicySpec, Role, UserError
from fpt_bench.cli import main
from fpt_bench.host.manager import get_host

R = Role


def build(backbone: str, args: dict, task: str = "bit_xor") -> FPTModel:
    host = get_host()
    spec = host.tasks.get(task).spec
    plugin = host.backbones.get(backbone)
    return FPTModel(spec, plugin.build(plugin.options(args), spec.max_len))


def trained(model: FPTModel) -> dict[str, set]:
    """role -> layers (None: outside the layers) of the parameters that train."""
    roles, layers = model.parameter_roles(), model.parameter_layers()
    out: dict[str, set] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            out.setdefault(roles[name].value, set()).add(layers.get(name))
    return out


def n_trained(model: FPTModel) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


TINY_GPT2 = {"weights": "random", "n_layers": 3, "n_embd": 32, "n_head": 2}
TINY_LSTM = {"n_layers": 3, "hidden_size": 16}

# parameter counts by hand, bit_xor (1 float in per token, 2 classes out)
D = 32  # GPT-2: a block's attention (fused qkv + projection), MLP (4 x D), two LayerNorms; final LayerNorm
ATTN, FF, BLOCK_NORMS = D * 3 * D + 3 * D + D * D + D, D * 4 * D + 4 * D + 4 * D * D + D, 2 * 2 * D
GPT2_IN, GPT2_OUT, LN_F, POSITIONS = 1 * D + D, D * 2 + 2, 2 * D, 1024 * D
GPT2_FPT = GPT2_IN + GPT2_OUT + 3 * BLOCK_NORMS + LN_F + POSITIONS  # what fpt trains
H = 16  # LSTM layer: input and recurrent projections to 4 gates, LayerNorms on both and on the cell
RECURRENT, LSTM_NORMS = 2 * (4 * H * H + 4 * H), 2 * 2 * 4 * H + 2 * H
LSTM_IN, LSTM_OUT = 1 * H + H, H * 2 + 2
LSTM_FPT = LSTM_IN + LSTM_OUT + 3 * LSTM_NORMS  # the LSTM has no positions


class RoleOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str = "attention"


class OneRole(FreezePolicy):
    """The output layer and one role, chosen by an option: is_trainable reads the options."""

    spec = PolicySpec(name="one_role", description="output + the role option=ROLE", trainable_roles=frozenset())
    Options = RoleOptions

    def is_trainable(self, name, role, layer, n_layers, model, options):  # type: ignore[no-untyped-def, override]
        return role in (R.OUTPUT, Role(options.role))


class KeywordOnly(OneRole):
    def is_trainable(self, name, role, layer, n_layers, model, *, options):  # type: ignore[no-untyped-def, override]
        return role in (R.OUTPUT, Role(options.role))


class OldStyle(FreezePolicy):
    """Written for plugin API 1.1: five arguments, no options."""

    spec = PolicySpec(name="old_style", description="output + norms", trainable_roles=frozenset())

    def is_trainable(self, name, role, layer, n_layers, model):  # type: ignore[no-untyped-def, override]
        return role in (R.OUTPUT, R.NORM)


def test_the_counts_by_hand_are_the_tiny_models() -> None:
    assert sum(p.numel() for p in build("gpt2", TINY_GPT2).parameters()) == (
        GPT2_FPT + 3 * (ATTN + FF) + 50257 * D)  # + the token embedding (the harness feeds embeddings)
    assert sum(p.numel() for p in build("lstm", TINY_LSTM).parameters()) == LSTM_FPT + 3 * RECURRENT


@pytest.mark.parametrize("policy", [OneRole(), KeywordOnly()])
def test_is_trainable_receives_the_policy_options(policy: FreezePolicy) -> None:
    for role, count in (("attention", 3 * ATTN), ("feedforward", 3 * FF)):
        model = build("gpt2", TINY_GPT2)
        policy.apply(model, policy.options({"role": role}))
        assert set(trained(model)) == {"output", role}
        assert n_trained(model) == GPT2_OUT + count


def test_a_five_argument_is_trainable_still_works() -> None:
    model = build("gpt2", TINY_GPT2)
    OldStyle().apply(model, OldStyle().options({}))
    assert set(trained(model)) == {"output", "norm"}
    assert n_trained(model) == GPT2_OUT + 3 * BLOCK_NORMS + LN_F


def test_every_role_of_the_last_k_layers() -> None:
    policy = FreezePolicy()
    policy.spec = PolicySpec(name="fpt_last2", description="fpt + every parameter of the last 2 layers",  # type: ignore[misc]
                             trainable_roles=FPT_ROLES, train_layers=LayerSelection(last=2))
    model = build("gpt2", TINY_GPT2)
    policy.apply(model, policy.options({}))
    got = trained(model)
    assert got["attention"] == got["feedforward"] == {1, 2}
    assert got["norm"] == {0, 1, 2, None} and got["input"] == got["output"] == {None}  # fpt's roles everywhere
    assert n_trained(model) == GPT2_FPT + 2 * (ATTN + FF)
    lstm = build("lstm", TINY_LSTM)
    policy.apply(lstm, policy.options({}))
    assert trained(lstm)["recurrent"] == {1, 2}  # any backbone that reports its layers
    assert n_trained(lstm) == LSTM_FPT + 2 * RECURRENT


def test_train_layers_by_index_counts_from_the_end() -> None:
    policy = FreezePolicy()
    policy.spec = PolicySpec(name="first_and_last", description="output + every parameter of layers 0 and -1",  # type: ignore[misc]
                             trainable_roles=frozenset({R.OUTPUT}), train_layers=LayerSelection(indices=[0, -1]))
    model = build("gpt2", TINY_GPT2)
    policy.apply(model, policy.options({}))
    assert trained(model) == {"output": {None}, "attention": {0, 2}, "feedforward": {0, 2}, "norm": {0, 2}}
    assert n_trained(model) == GPT2_OUT + 2 * (ATTN + FF + BLOCK_NORMS)


@pytest.mark.parametrize(("roles", "expected", "count"), [
    ("recurrent", {"recurrent": {2}, "norm": {0, 1, 2}}, LSTM_FPT + RECURRENT),
    ("all", {"recurrent": {2}, "norm": {0, 1, 2}}, LSTM_FPT + RECURRENT),
    ("norm", {"norm": {0, 1, 2}}, LSTM_FPT),
    ("attention", {"norm": {0, 1, 2}}, LSTM_FPT),  # an LSTM has no attention: fpt alone
])
def test_fpt_layers_takes_every_layered_role(roles: str, expected: dict, count: int) -> None:
    policy = get_host().policies.get("fpt_layers")
    model = build("lstm", TINY_LSTM)
    policy.apply(model, policy.options({"roles": roles, "last": 1}))
    assert trained(model) == {"input": {None}, "output": {None}, **expected}
    assert n_trained(model) == count


@pytest.mark.parametrize(("args", "count"), [
    ({"roles": "attention", "last": 1}, GPT2_FPT + ATTN),  # = fpt_ff_last_attn without the feed-forward
    ({"roles": "feedforward", "layers": "0+-1"}, GPT2_FPT + 2 * FF),
    ({"roles": "attention+feedforward", "last": 3}, GPT2_FPT + 3 * (ATTN + FF)),
    ({"roles": "all", "layers": 1}, GPT2_FPT + ATTN + FF),
])
def test_fpt_layers_counts_on_gpt2(args: dict, count: int) -> None:
    policy = get_host().policies.get("fpt_layers")
    model = build("gpt2", TINY_GPT2)
    policy.apply(model, policy.options(args))
    assert n_trained(model) == count


def test_fpt_layers_out_of_range_is_the_users_error() -> None:
    policy = get_host().policies.get("fpt_layers")
    with pytest.raises(UserError, match=r"^fpt_layers: layer\(s\) \[3\] out of range for a backbone of 3 layers$"):
        policy.apply(build("gpt2", TINY_GPT2), policy.options({"layers": "0+3"}))


def test_fpt_layers_refuses_a_role_no_layer_holds() -> None:
    policy = get_host().policies.get("fpt_layers")
    with pytest.raises(UserError, match=r"roles='input': input is not a layered role \(one or more of attention, "
                                        r"feedforward, norm, position, token_embedding, recurrent, adapter, other "
                                        r"joined by '\+', or all\)"):
        policy.options({"roles": "input", "last": 1})


def test_a_policy_written_for_api_1_1_passes_check_plugin(plugin_site, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    source = '''
        from fpt_bench import FreezePolicy, PolicySpec, Role, hookimpl

        class OldStyle(FreezePolicy):
            spec = PolicySpec(name="old_style", description="output + norms", trainable_roles=frozenset())

            def is_trainable(self, name, role, layer, n_layers, model):
                return role in (Role.OUTPUT, Role.NORM)

        @hookimpl
        def fpt_bench_register_policies(registry):
            registry.add(OldStyle())
    '''
    site = tmp_path / "site"
    site.mkdir()
    fake_dist(site, "fpt-bench-old", {"old": "old_plugin"}, {"old_plugin": source})
    plugin_site(site)
    assert main(["check-plugin", "old", "--steps", "1", "--json"]) == 0, capsys.readouterr().out
    results = {r["check"]: r for r in json.loads(capsys.readouterr().out)["results"]
               if r["component"] == "policy old_style"}
    backbones = ("gpt2", "hf_decoder", "hf_encoder", "hf_ssm", "lstm", "minilm", "timm_vit", "vit")
    assert set(results) == {"spec and options", "smoke cell", *(f"on {b}" for b in backbones)}
    assert results["on lstm"]["detail"] == "trains 610 of 5,026 (12.1%)"  # output + norms: 34 + 2 x 288
    without_timm = {"on timm_vit"} if find_spec("timm") is None else set()  # the optional extra
    assert {check for check, r in results.items() if r["status"] != "pass"} == without_timm
