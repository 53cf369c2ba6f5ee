"""hf_decoder and hf_ssm on a tiny config of every family, built locally (random weights from a config.json the
test writes; nothing is downloaded): every parameter has a role, trainable and reachable counts under fpt / full /
output_only equal counts computed by hand from the config, n_layers truncation, causal masking and padding, LoRA,
the compute dtype, activation checkpointing, and a training cell through the harness."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from backbone_helpers import build_backbone, host, one_thread  # noqa: F401
from causal_helpers import TINY, D, L, hand_counts, save_config

from fpt_bench import Role, UserError
from fpt_bench.api.model import FPTModel
from fpt_bench.cli import main

FAMILIES = list(TINY)
INPUT, OUTPUT = 2 * D, 2 * D + 2  # bit_xor: Linear(1, D) and Linear(D, 2)


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    where = tmp_path_factory.mktemp("configs")
    return {family: save_config(family, where) for family in FAMILIES}


def tiny(configs: dict[str, Path], family: str, **extra: Any) -> tuple[str, dict[str, Any]]:
    return TINY[family][2], {"weights": "random", "source": str(configs[family]), "dropout": 0.0, **extra}


def model_of(configs: dict[str, Path], family: str, policy: str = "fpt", policy_args: dict[str, Any] | None = None,
             **extra: Any) -> FPTModel:
    name, args = tiny(configs, family, **extra)
    spec = host().tasks.get("bit_xor").spec
    model = FPTModel(spec, build_backbone(name, args, spec.max_len))
    freeze = host().policies.get(policy)
    freeze.apply(model, freeze.options(policy_args or {}))
    return model


@pytest.mark.parametrize("family", FAMILIES)
def test_counts_under_fpt_full_and_output_only_match_the_config(configs: dict[str, Path], family: str) -> None:
    hand = hand_counts(family)
    total = hand["total"] + INPUT + OUTPUT
    unreached = hand["token_embedding"] + (hand["position_rows"] - 10) * D * bool(hand["position"])
    expected = {
        "fpt": (total, INPUT + OUTPUT + hand["norm"] + hand["position"],
                INPUT + OUTPUT + hand["norm"] + (10 * D if hand["position"] else 0)),
        "full": (total, total, total - unreached),
        "output_only": (total, OUTPUT, OUTPUT),
    }
    for policy, counts in expected.items():
        model = model_of(configs, family, policy)
        got = model.parameter_counts(10)
        assert (got["total"], got["trainable"], got["trainable_reachable"]) == counts, policy
        assert set(model.parameter_roles()) == {n for n, _ in model.named_parameters()}
    by_role = model_of(configs, family).parameter_counts(10)["by_role"]
    assert by_role["norm"]["total"] == hand["norm"]
    assert by_role["token_embedding"]["total"] == hand["token_embedding"]
    assert by_role.get("position", {"total": 0})["total"] == hand["position"]


@pytest.mark.parametrize("family", FAMILIES)
def test_roles_come_from_the_family_layout(configs: dict[str, Path], family: str) -> None:
    backbone = model_of(configs, family).backbone
    roles = backbone.parameter_roles()
    present = set(roles.values())
    if TINY[family][2] == "hf_ssm":  # the mixer is the token mixer; there is no feed-forward sublayer
        assert present == {Role.ATTENTION, Role.NORM, Role.TOKEN_EMBEDDING}
    else:
        assert {Role.ATTENTION, Role.FEEDFORWARD, Role.NORM, Role.TOKEN_EMBEDDING} <= present
    assert (Role.POSITION in present) == (family == "opt")  # rotary families have no position parameters
    for name, param in backbone.named_parameters():
        if roles[name] == Role.NORM:
            assert param.dim() == 1, name
    assert set(backbone.parameter_layers().values()) == set(range(L)) and backbone.n_layers == L
    assert backbone.causal
    assert "rotary" in backbone.provenance()["positions"] or family in ("opt", "mamba", "mamba2")


def test_known_modules_get_the_expected_roles(configs: dict[str, Path]) -> None:
    qwen3 = model_of(configs, "qwen3").backbone.parameter_roles()
    assert qwen3["model.layers.1.self_attn.q_norm.weight"] == Role.NORM
    assert qwen3["model.layers.1.self_attn.q_proj.weight"] == Role.ATTENTION
    assert qwen3["model.layers.1.mlp.gate_proj.weight"] == Role.FEEDFORWARD
    assert qwen3["model.embed_tokens.weight"] == Role.TOKEN_EMBEDDING
    opt = model_of(configs, "opt").backbone.parameter_roles()
    assert opt["model.decoder.embed_positions.weight"] == Role.POSITION
    assert opt["model.decoder.layers.0.fc1.weight"] == Role.FEEDFORWARD
    mamba2 = model_of(configs, "mamba2").backbone.parameter_roles()
    assert mamba2["model.layers.0.mixer.norm.weight"] == Role.NORM
    assert mamba2["model.layers.0.mixer.A_log"] == Role.ATTENTION
    assert mamba2["model.layers.0.mixer.in_proj.weight"] == Role.ATTENTION


@pytest.mark.parametrize("family", FAMILIES)
def test_causal_masking_and_right_padding(configs: dict[str, Path], family: str) -> None:
    backbone = model_of(configs, family).backbone.eval()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 10, backbone.hidden_size, generator=gen)
    later = x.clone()
    later[:, 6:] += torch.randn(2, 4, backbone.hidden_size, generator=gen)
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[1, 7:] = 0
    with torch.no_grad():
        out, changed = backbone(x), backbone(later)
        padded, alone = backbone(x, mask), backbone(x[1:, :7])
    # a later token never changes an earlier position, and it does change its own
    torch.testing.assert_close(out[:, :6], changed[:, :6], atol=1e-5, rtol=1e-4)
    assert not torch.allclose(out[:, 6:], changed[:, 6:], atol=1e-3)
    # right padding: a padded sequence's real positions are what the sequence alone gives
    torch.testing.assert_close(padded[1, :7], alone[0], atol=2e-5, rtol=1e-4)
    assert out.shape == (2, 10, backbone.hidden_size)


@pytest.mark.parametrize("family", ["llama", "opt", "mamba", "mamba2"])
def test_n_layers_keeps_the_first_blocks(configs: dict[str, Path], family: str) -> None:
    name, args = tiny(configs, family, n_layers=1)
    backbone = build_backbone(name, args)
    assert backbone.n_layers == 1 and backbone.model.config.num_hidden_layers == 1
    assert set(backbone.parameter_layers().values()) == {0}
    hand = hand_counts(family)
    assert sum(p.numel() for p in backbone.parameters()) == hand["total"] - hand["layer"]


def test_lora_adapts_the_attention_of_a_decoder_and_the_mixer_of_a_mamba(configs: dict[str, Path]) -> None:
    fpt = model_of(configs, "llama").parameter_counts(10)["trainable"]
    lora = model_of(configs, "llama", "lora", {"rank": 4}).parameter_counts(10)["trainable"]
    # q (32 -> 32), k and v (32 -> 16), o (32 -> 32): rank x (in + out) each, two layers
    assert lora - fpt == 2 * 4 * ((32 + 32) + (32 + 16) + (32 + 16) + (32 + 32))
    mamba_fpt = model_of(configs, "mamba").parameter_counts(10)["trainable"]
    mamba = model_of(configs, "mamba", "lora", {"rank": 4}).train()
    # in_proj 32 -> 128 only: x_proj, dt_proj and out_proj are read as weights by the scan (no hook would act)
    assert mamba.parameter_counts(10)["trainable"] - mamba_fpt == 2 * 4 * (32 + 128)
    assert sorted(mamba.adapters) == ["model__layers__0__mixer__in_proj", "model__layers__1__mixer__in_proj"]
    for adapter in mamba.adapters.values():
        torch.nn.init.normal_(adapter.lora_b)  # B starts at zero; make the adapters act
    x = torch.randn(2, 10, 1)
    mamba(x).sum().backward()
    adapters = [p for n, p in mamba.named_parameters() if n.startswith("adapters.")]
    assert len(adapters) == 4 and all(p.grad is not None and p.grad.abs().sum() > 0 for p in adapters)
    with pytest.raises(UserError, match="no Linear or Conv1D module with role feedforward"):
        model_of(configs, "mamba", "lora", {"targets": "feedforward"})


def test_fpt_attn_on_a_mamba_trains_the_whole_mixer_and_fpt_ff_adds_nothing(configs: dict[str, Path]) -> None:
    fpt = model_of(configs, "mamba").parameter_counts(10)["trainable"]
    assert model_of(configs, "mamba", "fpt_ff").parameter_counts(10)["trainable"] == fpt
    hand = hand_counts("mamba")
    mixers = hand["total"] - hand["norm"] - hand["token_embedding"]
    assert model_of(configs, "mamba", "fpt_attn").parameter_counts(10)["trainable"] == fpt + mixers


def test_learned_positions_option_adds_a_zero_table(configs: dict[str, Path]) -> None:
    model = model_of(configs, "llama", positions="learned")
    backbone = model.backbone
    assert backbone.position.shape == (10, D) and not backbone.position.any()
    assert model.parameter_roles()["backbone.position"] == Role.POSITION
    assert model.parameter_counts(10)["trainable"] == INPUT + OUTPUT + hand_counts("llama")["norm"] + 10 * D
    assert "learned table" in backbone.provenance()["positions"]


def test_bfloat16_keeps_norms_in_float32_and_widens_what_trains(configs: dict[str, Path]) -> None:
    model = model_of(configs, "llama", "fpt_attn", dtype="bfloat16")
    backbone = model.backbone
    dtypes = {name: p.dtype for name, p in backbone.named_parameters()}
    assert dtypes["model.layers.0.self_attn.q_proj.weight"] == torch.bfloat16
    assert dtypes["model.layers.0.mlp.up_proj.weight"] == torch.bfloat16
    assert dtypes["model.norm.weight"] == torch.float32
    assert backbone.provenance()["dtype"] == {"weights": "bfloat16", "rule": "dtype=bfloat16",
                                              "float32_roles": ["norm", "position"]}
    reference = model_of(configs, "llama", "fpt_attn", dtype="float32")
    reference.load_state_dict(model.state_dict())  # the same (bf16-rounded) weights in float32
    x = torch.randn(2, 10, 1)
    model.eval(), reference.eval()
    with torch.no_grad():
        low, high = model(x), reference(x)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, high, atol=0.05, rtol=0.05)
    model.train()
    model(x).sum().backward()  # a training step widens what fpt_attn trains
    assert backbone.model.layers[0].self_attn.q_proj.weight.dtype == torch.float32
    moved = model_of(configs, "llama", "fpt_attn", dtype="bfloat16").to("cpu")  # as the runner does, pre-optimiser
    assert moved.backbone.model.layers[1].self_attn.o_proj.weight.dtype == torch.float32
    assert moved.backbone.model.layers[1].mlp.down_proj.weight.dtype == torch.bfloat16
    assert backbone.model.layers[0].self_attn.q_proj.weight.grad.dtype == torch.float32
    assert backbone.model.layers[0].mlp.up_proj.weight.dtype == torch.bfloat16  # frozen: stays narrow


def test_auto_dtype_follows_the_checkpoint_and_the_device(configs: dict[str, Path], tmp_path: Path) -> None:
    from transformers import LlamaConfig

    from fpt_bench_plugins.backbones.hf_causal_module import choose_dtype

    stored = LlamaConfig(dtype="bfloat16")
    assert choose_dtype("auto", LlamaConfig(dtype="float16")) == (torch.float32,
                                                                  "auto: the checkpoint stores float16")
    expected = torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    assert choose_dtype("auto", stored)[0] == expected
    assert choose_dtype("float32", stored) == (torch.float32, "dtype=float32")
    name, args = tiny(configs, "llama")
    assert build_backbone(name, args).provenance()["dtype"]["rule"] == "auto: the config names no dtype"


def test_activation_checkpointing_gives_the_same_gradients(configs: dict[str, Path]) -> None:
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = model_of(configs, "qwen3", "fpt", gradient_checkpointing=checkpointing).train()
        model(torch.ones(2, 10, 1)).sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 5
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-6, rtol=1e-5)


def test_option_errors_are_clear(configs: dict[str, Path]) -> None:
    decoder = host().backbones.get("hf_decoder")
    with pytest.raises(UserError, match="give preset=NAME or source="):
        decoder.options({})
    with pytest.raises(UserError, match="preset"):
        decoder.options({"preset": "pythia-3m"})
    with pytest.raises(UserError, match="family= only applies to weights=random"):
        decoder.options({"family": "llama"})
    with pytest.raises(UserError, match=r"is a mamba model \(ssm\): use --backbone hf_ssm"):
        build_backbone("hf_decoder", {"weights": "random", "source": str(configs["mamba"])})
    with pytest.raises(UserError, match="use --backbone hf_decoder"):
        build_backbone("hf_ssm", {"weights": "random", "source": str(configs["llama"])})


def test_unknown_family_names_the_architecture_and_the_hook(tmp_path: Path) -> None:
    from transformers import GPT2Config, OlmoConfig

    OlmoConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
               intermediate_size=48).save_pretrained(tmp_path / "olmo")
    with pytest.raises(UserError) as info:
        build_backbone("hf_decoder", {"weights": "random", "source": str(tmp_path / "olmo")})
    message = str(info.value)
    assert "hf_decoder does not know the architecture family 'olmo'" in message
    assert "gemma, gemma2, gemma3_text, gpt_neox, gptj, llama, mistral, opt, phi, phi3, qwen2, qwen3" in message
    assert "fpt_bench_register_model_families(registry)" in message and "ModelFamily" in message
    GPT2Config(n_layer=1, n_embd=32, n_head=2).save_pretrained(tmp_path / "gpt2")
    with pytest.raises(UserError, match="for gpt2 use --backbone gpt2"):
        build_backbone("hf_decoder", {"weights": "random", "source": str(tmp_path / "gpt2")})


@pytest.mark.parametrize(("family", "per_layer"), [
    ("llama", 4 * 64 * 64), ("mistral", 4 * 64 * 64),  # transformers' default configs say head_dim=128
    ("qwen2", 4 * 64 * 64 + 3 * 64), ("qwen3", 4 * 64 * 64), ("phi3", 4 * 64 * 64), ("gpt_neox", 4 * 64 * 65),
])
def test_a_family_default_config_takes_n_embd_and_n_head(family: str, per_layer: int) -> None:
    """weights=random, family=F: the attention is n_embd wide in n_head heads of n_embd / n_head (q, k, v, o)."""
    module = build_backbone("hf_decoder", {"weights": "random", "family": family, "n_layers": 2, "n_embd": 64,
                                           "n_head": 4})
    roles = module.parameter_roles()
    attention = sum(p.numel() for n, p in module.named_parameters() if roles[n] == Role.ATTENTION)
    assert attention == 2 * per_layer
    assert module.hidden_size == 64


def test_family_errors_name_the_choices() -> None:
    with pytest.raises(UserError) as info:
        build_backbone("hf_decoder", {"weights": "random", "family": "lama", "n_layers": 1})
    message = str(info.value)
    assert "hf_decoder: unknown family 'lama'; did you mean 'llama'?" in message
    assert "the families are gemma, gemma2, gemma3_text, gpt_neox, gptj, llama, mistral, opt, phi, phi3, qwen2, " \
           "qwen3 (`fpt-bench ls backbones --options`" in message


@pytest.mark.parametrize("family", FAMILIES)
def test_one_training_cell_through_the_harness(configs: dict[str, Path], family: str, tmp_path: Path) -> None:
    name, _ = tiny(configs, family)
    out = tmp_path / "out"
    args = f"weights=random,source={configs[family]}"
    code = main(["run", "--task", "bit_xor", "--backbone", name, "--backbone-args", args, "--profile", "smoke",
                 "--steps", "2", "--eval-every", "2", "--device", "cpu", "--output-dir", str(out), "--no-progress"])
    result = json.loads(next(out.rglob("*.json")).read_text())
    assert code == 0 and result["status"] == "ok", result.get("error")
    hand = hand_counts(family)
    assert result["parameters"]["trainable"] == INPUT + OUTPUT + hand["norm"] + hand["position"]
    assert result["provenance"]["backbone"]["family"] == family
    assert result["metrics"]["test_accuracy"] is not None


@pytest.mark.parametrize("backbone,family", [("hf_decoder", "llama"), ("hf_ssm", "mamba2")])
def test_a_variable_length_task_trains_on_right_padded_batches(tmp_path: Path, configs: dict[str, Path],
                                                             backbone: str, family: str) -> None:
    listops = host().tasks.get("listops")
    listops.generate_data(tmp_path / "data", 0, sizes={"train": 12, "val": 4, "test": 4})
    out = tmp_path / "out"
    code = main(["run", "--task", "listops", "--backbone", backbone, "--backbone-args",
                 f"weights=random,source={configs[family]}", "--profile", "smoke", "--steps", "2", "--device", "cpu",
                 "--output-dir", str(out), "--data-dir", str(tmp_path / "data"), "--no-progress"])
    result = json.loads(next(out.rglob("*.json")).read_text())
    assert code == 0 and result["status"] == "ok", result.get("error")


def test_opt_with_a_narrower_embedding_projects_in_and_out(tmp_path: Path) -> None:
    """OPT-350m's layout: embeddings 16 wide, the model 32 wide, post-norm layers and no final LayerNorm."""
    from transformers import OPTConfig

    OPTConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, ffn_dim=48,
              word_embed_proj_dim=16, max_position_embeddings=64, do_layer_norm_before=False,
              dropout=0.0).save_pretrained(tmp_path / "opt350")
    backbone = build_backbone("hf_decoder", {"weights": "random", "source": str(tmp_path / "opt350")}).eval()
    assert backbone.hidden_size == 16
    roles = backbone.parameter_roles()
    assert roles["model.decoder.project_in.weight"] == Role.OTHER == roles["model.decoder.project_out.weight"]
    assert "model.decoder.final_layer_norm.weight" not in roles
    x = torch.randn(1, 6, 16)
    later = x.clone()
    later[:, 4:] += 1
    with torch.no_grad():
        out = backbone(x)
        torch.testing.assert_close(out[:, :4], backbone(later)[:, :4])
    assert out.shape == (1, 6, 16)
    assert backbone.used_numel(6)["model.decoder.embed_positions.weight"] == 6 * 32  # positions are model-wide


def test_a_learned_table_grows_for_longer_tasks_and_mamba_runs_in_bfloat16(configs: dict[str, Path]) -> None:
    name, args = tiny(configs, "opt")
    opt = build_backbone(name, args, max_len=100)  # the tiny OPT has 64 positions (+ 2 offset rows)
    assert opt.max_positions == 100 and opt.provenance()["extended_positions"] == {"from": 64, "to": 100}
    assert opt.model.decoder.embed_positions.weight.shape == (102, D)
    with torch.no_grad():
        assert torch.isfinite(opt.eval()(torch.randn(1, 100, D))).all()
    model = model_of(configs, "mamba", "fpt", dtype="bfloat16").train()
    assert model.backbone.model.layers[0].mixer.in_proj.weight.dtype == torch.bfloat16
    model(torch.randn(2, 10, 1)).sum().backward()
    assert model.backbone.model.layers[0].norm.weight.grad is not None
