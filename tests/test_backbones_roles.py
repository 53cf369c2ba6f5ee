"""Every parameter of every built-in backbone has a role; trainable counts of (backbone, policy) pairs are pinned;
depth, masks and causality behave."""

from __future__ import annotations

import pytest
import torch
from backbone_helpers import TINY, build_backbone, build_model, one_thread  # noqa: F401

from fpt_bench import Role, UserError

# (total, trainable, trainable and reachable by a 10-token bit_xor sequence) per backbone and policy.
# Worked examples: gpt2/fpt = input 64 + output 66 + 5 LayerNorms x 64 + 1024 x 32 positions = 33,218, of which
# 10 position rows are reachable (770). bert/fpt has 512 position rows (16,834); roberta reads rows 2..11 (834).
# t5/fpt = 130 + 5 RMSNorm x 32 + relative-position buckets 32 x 2 heads = 354. lora rank 4 on gpt2 attention:
# c_attn 4 x (32 + 96) + c_proj 4 x (32 + 32) = 768 per layer, x 2 layers, on top of fpt.
COUNTS = {
    "gpt2": {"fpt": (1666594, 33218, 770), "full": (1666594, 1666594, 25922), "output_only": (1666594, 66, 66),
             "fpt_ff_last_attn": (1666594, 54146, 21698), "fpt_layers": (1666594, 37442, 4994),
             "lora": (1668130, 34754, 2306), "lora_all_io": (1668642, 2178, 2178)},
    "bert": {"fpt": (1018754, 16834, 770), "full": (1018754, 1018754, 25954), "output_only": (1018754, 66, 66),
             "fpt_ff_last_attn": (1018754, 37762, 21698), "fpt_layers": (1018754, 21058, 4994),
             "lora": (1020802, 18882, 2818), "lora_all_io": (1021058, 2434, 2434)},
    "roberta": {"fpt": (1650530, 16834, 834), "full": (1650530, 1650530, 26018), "output_only": (1650530, 66, 66),
                "fpt_ff_last_attn": (1650530, 37762, 21762), "fpt_layers": (1650530, 21058, 5058),
                "lora": (1652578, 18882, 2882), "lora_all_io": (1652834, 2434, 2434)},
    "t5": {"fpt": (1053026, 354, 354), "full": (1053026, 1053026, 24930), "output_only": (1053026, 66, 66),
           "fpt_ff_last_attn": (1053026, 20834, 20834), "fpt_layers": (1053026, 4450, 4450),
           "lora": (1055074, 2402, 2402), "lora_all_io": (1055330, 2434, 2434)},
    "longformer": {"fpt": (1139842, 131586, 834), "full": (1139842, 1139842, 32354),
                   "output_only": (1139842, 66, 66), "fpt_ff_last_attn": (1139842, 155682, 24930),
                   "fpt_layers": (1139842, 138978, 8226), "lora": (1143426, 135170, 4418),
                   "lora_all_io": (1142914, 3202, 3202)},
    "vit": {"fpt": (58370, 33218, 770), "full": (58370, 58370, 25922), "output_only": (58370, 66, 66),
            "fpt_ff_last_attn": (58370, 54146, 21698), "fpt_layers": (58370, 37442, 4994),
            "lora": (60418, 35266, 2818), "lora_all_io": (60674, 2434, 2434)},
    # LSTM: per layer 2 x (4H x H + 4H) recurrent; LayerNorms on 4H, 4H and H
    "lstm": {"fpt": (18178, 1282, 1282), "full": (18178, 18178, 18178), "output_only": (18178, 66, 66),
             "fpt_ff_last_attn": (18178, 1282, 1282), "fpt_layers": (18178, 1282, 1282)},
    "lstm_plain": {"fpt": (49794, 32898, 450), "full": (49794, 49794, 17346), "output_only": (49794, 66, 66),
                   "fpt_ff_last_attn": (49794, 32898, 450), "fpt_layers": (49794, 32898, 450)},
}
POLICIES = {
    "fpt": ("fpt", {}), "full": ("full", {}), "output_only": ("output_only", {}),
    "fpt_ff_last_attn": ("fpt_ff_last_attn", {}), "fpt_layers": ("fpt_layers", {"roles": "attention", "last": 1}),
    "lora": ("lora", {"rank": 4}), "lora_all_io": ("lora", {"rank": 2, "targets": "attention+feedforward",
                                                            "base": "io"}),
}
PAIRS = [(key, policy) for key, counts in COUNTS.items() for policy in counts]


@pytest.mark.parametrize(("key", "policy"), PAIRS, ids=[f"{k}-{p}" for k, p in PAIRS])
def test_trainable_counts_are_pinned(key: str, policy: str) -> None:
    name, args = POLICIES[policy]
    model = build_model(key, name, args)
    counts = model.parameter_counts(10)
    assert (counts["total"], counts["trainable"], counts["trainable_reachable"]) == COUNTS[key][policy]
    roles = model.parameter_roles()
    assert set(roles) == {n for n, _ in model.named_parameters()}  # every parameter has exactly one role


@pytest.mark.parametrize("key", list(TINY))
def test_roles_come_from_structure(key: str) -> None:
    backbone = build_model(key).backbone
    roles = backbone.parameter_roles()
    present = set(roles.values())
    if key.startswith("lstm"):
        assert Role.RECURRENT in present and Role.ATTENTION not in present
        assert (Role.NORM in present) == (key == "lstm")
    else:
        assert {Role.ATTENTION, Role.FEEDFORWARD, Role.NORM, Role.POSITION} <= present
    # every layer parameter belongs to a layer 0..n-1, and every layer has some
    layers = backbone.parameter_layers()
    assert set(layers.values()) == set(range(backbone.n_layers)) == {0, 1}
    for name, param in backbone.named_parameters():  # norms are the LayerNorm/RMSNorm modules' parameters
        if roles[name] == Role.NORM:
            assert param.dim() == 1


def test_known_modules_get_the_expected_roles() -> None:
    bert = build_model("bert").backbone.parameter_roles()
    assert bert["model.encoder.layer.1.attention.self.query.weight"] == Role.ATTENTION
    assert bert["model.encoder.layer.1.attention.output.dense.weight"] == Role.ATTENTION
    assert bert["model.encoder.layer.1.attention.output.LayerNorm.weight"] == Role.NORM
    assert bert["model.encoder.layer.1.output.dense.weight"] == Role.FEEDFORWARD
    assert bert["model.embeddings.position_embeddings.weight"] == Role.POSITION
    assert bert["model.embeddings.word_embeddings.weight"] == Role.TOKEN_EMBEDDING
    t5 = build_model("t5").backbone.parameter_roles()
    assert t5["model.encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"] == Role.POSITION
    assert t5["model.encoder.block.0.layer.0.SelfAttention.q.weight"] == Role.ATTENTION
    assert t5["model.encoder.block.1.layer.1.DenseReluDense.wi.weight"] == Role.FEEDFORWARD
    vit = build_model("vit").backbone.parameter_roles()
    assert vit["position"] == Role.POSITION and vit["norm.weight"] == Role.NORM


@pytest.mark.parametrize("key", list(TINY))
def test_forward_shapes_and_padding_mask(key: str) -> None:
    model = build_model(key)
    backbone = model.backbone.eval()
    x = torch.randn(2, 10, backbone.hidden_size)
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[1, 7:] = 0
    with torch.no_grad():
        full = backbone(x, mask)
        alone = backbone(x[1:, :7])
    assert full.shape == (2, 10, backbone.hidden_size)
    # padding after a sequence does not change its real positions
    torch.testing.assert_close(full[1, :7], alone[0], atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("key", ["gpt2", "lstm", "lstm_plain"])
def test_causal_backbones_see_only_the_past(key: str) -> None:
    backbone = build_model(key).backbone.eval()
    assert backbone.causal
    x = torch.randn(1, 10, backbone.hidden_size)
    y = x.clone()
    y[:, 6:] += 1.0
    with torch.no_grad():
        torch.testing.assert_close(backbone(x)[:, :6], backbone(y)[:, :6])


@pytest.mark.parametrize("key", ["gpt2", "bert", "t5", "vit", "lstm"])
def test_n_layers_sets_the_depth(key: str) -> None:
    name, args = TINY[key]
    depth_key = "n_layers"
    backbone = build_backbone(name, {**args, depth_key: 3})
    assert backbone.n_layers == 3
    assert set(backbone.parameter_layers().values()) == {0, 1, 2}


def test_fpt_layers_picks_layers_by_index() -> None:
    model = build_model("gpt2", "fpt_layers", {"roles": "feedforward", "layers": "0"})
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert "backbone.model.h.0.mlp.c_fc.weight" in trainable
    assert "backbone.model.h.1.mlp.c_fc.weight" not in trainable
    assert "backbone.model.h.0.attn.c_attn.weight" not in trainable
    last = build_model("gpt2", "fpt_layers", {"roles": "attention+feedforward", "layers": "-1"})
    assert last.parameter_counts(10)["trainable"] == COUNTS["gpt2"]["fpt"][1] + 4224 + 8352
    with pytest.raises(UserError, match="out of range"):
        build_model("gpt2", "fpt_layers", {"layers": "5"})


def test_lstm_option_variants_change_the_module() -> None:
    deep = build_backbone("lstm", {"n_layers": 5, "hidden_size": 16, "layer_norm": False})
    assert len(deep.layers) == 5 and isinstance(deep.layers[0], torch.nn.LSTM)
    plain = build_backbone("lstm", {"hidden_size": 16})
    assert len(plain.layers) == 3 and plain.position is None and plain.max_positions is None  # the paper's default
    positions = build_backbone("lstm", {"hidden_size": 16, "positions": True}, max_len=2000)
    assert positions.position.shape == (2000, 16)  # grown for a long task
