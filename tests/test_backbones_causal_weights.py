"""hf_decoder / hf_ssm weights, offline: pretrained through the real loading code on tiny models written with
``save_pretrained`` (a local directory and a Hugging Face hub cache), stats init, bfloat16 loading, a harness
checkpoint, and a family that a third-party plugin registers through ``fpt_bench_register_model_families``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from backbone_helpers import build_backbone, one_thread  # noqa: F401
from causal_helpers import TINY, hand_counts, save_model

from fpt_bench import Role, UserError
from fpt_bench.cli import main
from fpt_bench.host.manager import get_host


@pytest.mark.parametrize("family", list(TINY))
def test_pretrained_from_a_local_directory(tmp_path: Path, family: str) -> None:
    where, reference = save_model(family, tmp_path)
    backbone = TINY[family][2]
    module = build_backbone(backbone, {"source": str(where)})
    state = {k.removeprefix("model."): v for k, v in module.state_dict().items()}
    assert state.keys() == reference.keys()
    for key, value in state.items():
        torch.testing.assert_close(value, reference[key], rtol=0, atol=0)
    provenance = module.provenance()
    assert provenance["weights"] == "pretrained" and provenance["source"] == str(where)
    assert provenance["family"] == family and provenance["dtype"]["weights"] == "float32"
    cut = build_backbone(backbone, {"source": str(where), "n_layers": 1})
    assert cut.n_layers == 1 and set(cut.parameter_layers().values()) == {0}
    assert sum(p.numel() for p in cut.parameters()) == hand_counts(family)["total"] - hand_counts(family)["layer"]
    torch.testing.assert_close(cut.state_dict()["model." + next(k for k in reference if ".0." in k)],
                               reference[next(k for k in reference if ".0." in k)], rtol=0, atol=0)


def test_stats_init_matches_each_tensor(tmp_path: Path) -> None:
    where, reference = save_model("qwen2", tmp_path)
    module = build_backbone("hf_decoder", {"source": str(where), "weights": "stats"})
    assert module.provenance()["tensors_redrawn"] == len(reference)
    weight = module.state_dict()["model.layers.0.mlp.up_proj.weight"].double()
    old = reference["layers.0.mlp.up_proj.weight"].double()
    assert not torch.equal(weight, old)
    assert abs(weight.mean() - old.mean()) < 6 * old.std() / old.numel() ** 0.5
    assert abs(weight.std() - old.std()) < 6 * old.std() / (2 * old.numel()) ** 0.5


def test_bfloat16_loading_keeps_bfloat16_and_widens_norms(tmp_path: Path) -> None:
    where, reference = save_model("llama", tmp_path)
    module = build_backbone("hf_decoder", {"source": str(where), "dtype": "bfloat16"})
    state = module.state_dict()
    assert state["model.layers.1.self_attn.o_proj.weight"].dtype == torch.bfloat16
    torch.testing.assert_close(state["model.layers.1.self_attn.o_proj.weight"],
                               reference["layers.1.self_attn.o_proj.weight"].to(torch.bfloat16), rtol=0, atol=0)
    assert state["model.layers.1.input_layernorm.weight"].dtype == torch.float32
    out = module.eval()(torch.randn(1, 5, 32))
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_a_harness_checkpoint_rebuilds_the_backbone(tmp_path: Path) -> None:
    """--save-backbone on an OPT (learned positions) with LoRA merged, then weights=result: loads it whole."""
    where, _ = save_model("opt", tmp_path)
    out = tmp_path / "out"
    code = main(["run", "--task", "bit_xor", "--backbone", "hf_decoder", "--backbone-args", f"source={where}",
                 "--policy", "lora", "--policy-args", "rank=2", "--profile", "smoke", "--steps", "3", "--device",
                 "cpu", "--output-dir", str(out), "--save-backbone", "--no-progress"])
    result_file = next(p for p in out.rglob("*.json"))
    result = json.loads(result_file.read_text())
    assert code == 0 and result["status"] == "ok", result.get("error")
    module = build_backbone("hf_decoder", {"weights": f"result:{result_file}", "n_layers": 1})
    assert module.provenance()["weights"] == "checkpoint" and module.provenance()["family"] == "opt"
    assert module.n_layers == 1 and module.parameter_roles()["model.decoder.embed_positions.weight"] == Role.POSITION
    from safetensors.torch import load_file

    saved = load_file(str(result_file.parent / result["provenance"]["saved_backbone"]))
    key = "model.decoder.layers.0.self_attn.q_proj.weight"
    torch.testing.assert_close(module.state_dict()[key], saved[key], rtol=0, atol=0)
    with pytest.raises(UserError, match="load it with --backbone hf_decoder"):
        build_backbone("hf_ssm", {"weights": f"result:{result_file}"})


HUB_SCRIPT = r"""
import json
from fpt_bench.host.manager import get_host
from fpt_bench import UserError
host = get_host()
out = {}
for name, args in [("hf_decoder", {"source": "tiny-org/llama"}), ("hf_ssm", {"source": "tiny-org/mamba"}),
                   ("hf_decoder", {"preset": "pythia-70m"}), ("hf_decoder", {"preset": "pythia-70m",
                   "weights": "random"})]:
    plugin = host.backbones.get(name)
    key = args.get("source") or args["preset"] + "/" + args.get("weights", "pretrained")
    try:
        module = plugin.build(plugin.options(args), 10)
        out[key] = {"layers": module.n_layers, "sum": sum(p.double().sum().item() for p in module.parameters())}
    except UserError as exc:
        out[key] = {"error": str(exc)}
print("RESULT" + json.dumps(out))
"""


def test_pretrained_through_a_hub_cache_offline(tmp_path: Path) -> None:
    """The path a hub id takes (``models--org--name/snapshots/<rev>/``, HF_HUB_OFFLINE=1); a preset that is not
    cached fails with the offline message, for pretrained weights and for the config random init reads."""
    hub = tmp_path / "hub"
    revision = "0123456789abcdef0123456789abcdef01234567"
    sums = {}
    for family in ("llama", "mamba"):
        made, reference = save_model(family, tmp_path)
        repo = hub / f"models--tiny-org--{family}"
        (repo / "snapshots").mkdir(parents=True)
        made.rename(repo / "snapshots" / revision)
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(revision)
        sums[family] = sum(v.double().sum().item() for v in reference.values())
    env = {**os.environ, "HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_HOME": str(tmp_path / "hf-home")}
    proc = subprocess.run([sys.executable, "-c", HUB_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("RESULT", 1)[1])
    for family in ("llama", "mamba"):
        assert out[f"tiny-org/{family}"]["layers"] == 2
        assert out[f"tiny-org/{family}"]["sum"] == pytest.approx(sums[family], rel=1e-9)
    for key in ("pythia-70m/pretrained", "pythia-70m/random"):
        error = out[key]["error"]
        assert "EleutherAI/pythia-70m" in error and "HF_HUB_OFFLINE" in error and str(hub) in error
        assert "hf download EleutherAI/pythia-70m" in error


# ------------------------------------------------------------------------------ a third party's family
DOC = Path(__file__).resolve().parent.parent / "docs" / "backbones.md"


def doc_plugin() -> types.ModuleType:
    """The plugin module docs/backbones.md shows under "Adding a family" (OLMo: LayerNorms without parameters)."""
    text = DOC.read_text().split("### Adding a family", 1)[1]
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    module = types.ModuleType("olmo_family_plugin")
    exec(compile(code, str(DOC), "exec"), module.__dict__)  # noqa: S102 - our own documentation
    return module


@pytest.fixture
def olmo_plugin() -> Iterator[None]:
    info = get_host().register(doc_plugin(), "third-party-olmo")
    assert info.status == "ok", info.error
    assert info.registered == {"model_family": ["olmo"]}
    yield
    get_host(reload=True)  # drop it again for the other tests


def test_a_plugin_registers_a_family_through_the_hook(tmp_path: Path, olmo_plugin: None) -> None:
    from transformers import OlmoConfig

    OlmoConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
               intermediate_size=48).save_pretrained(tmp_path / "olmo")
    module = build_backbone("hf_decoder", {"weights": "random", "source": str(tmp_path / "olmo")})
    roles = module.parameter_roles()
    assert roles["model.layers.1.self_attn.q_proj.weight"] == Role.ATTENTION
    assert Role.NORM not in roles.values()  # OLMo's norms have no parameters: fpt trains input and output only
    assert module.provenance()["family"] == "olmo"
    x = torch.randn(1, 6, 32)
    y = x.clone()
    y[:, 4:] += 1
    with torch.no_grad():
        torch.testing.assert_close(module.eval()(x)[:, :4], module(y)[:, :4])
    # a second plugin cannot silently replace the family: both load (qualified names), and a model of that family
    # is then an error naming both, since the family is picked by the model's model_type, not by a name given
    info = get_host().register(doc_plugin(), "another-olmo")
    assert info.status == "ok" and info.registered == {"model_family": ["olmo"]}
    with pytest.raises(UserError, match=r"^model family 'olmo' is registered by several plugins "
                                        r"\(another-olmo:olmo, third-party-olmo:olmo\) and hf_decoder picks a family "
                                        r"by the model's model_type, so it cannot choose: keep one of another-olmo, "
                                        r"third-party-olmo \(uninstall the others, or name them in "
                                        r"FPT_BENCH_DISABLE_PLUGINS\)$"):
        build_backbone("hf_decoder", {"weights": "random", "source": str(tmp_path / "olmo")})
    with pytest.raises(UserError, match=r"^model family 'olmo' is registered by several plugins"):
        build_backbone("hf_decoder", {"weights": "random", "family": "olmo"})  # a default config: the same


def test_a_family_without_sizes_refuses_n_embd_rather_than_ignore_it(olmo_plugin: None) -> None:
    with pytest.raises(UserError, match=r"hf_decoder: model family 'olmo' does not say how to set n_embd/n_head "
                                        r"\(its ModelFamily has no `sizes`\)"):
        build_backbone("hf_decoder", {"weights": "random", "family": "olmo", "n_layers": 1, "n_embd": 64,
                                      "n_head": 4})
