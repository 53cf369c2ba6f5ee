"""timm_vit: any timm vision transformer by name, tiny sizes built locally (random weights; timm downloads
nothing for them): roles, counts by hand from the sizes, padding, depth, pretrained weights from a local file and
through the hub cache offline, the clear error when they are not there, and a cell through the harness."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from backbone_helpers import build_backbone, host, one_thread  # noqa: F401

from fpt_bench import Role, UserError
from fpt_bench.api.model import FPTModel
from fpt_bench.cli import main

timm = pytest.importorskip("timm")

D, L, ROWS = 32, 2, 1024  # width, blocks, rows of the new position table
# a ViT block: 2 LayerNorms, fused qkv with biases, output projection, MLP 4 x D
VIT_BLOCK = 2 * 2 * D + (D * 3 * D + 3 * D) + (D * D + D) + (D * 4 * D + 4 * D) + (4 * D * D + D)
SWIGLU = 4 * D * 2 // 3  # EVA-02's hidden width (int(D x 4 x 2/3)), fused gate + value
# model -> (params of one block, of the final norm, roles that must appear)
MODELS = {
    "vit_tiny_patch16_224": (VIT_BLOCK, 2 * D),
    "deit_tiny_patch16_224": (VIT_BLOCK, 2 * D),
    "vit_small_patch14_dinov2": (VIT_BLOCK + 2 * D, 2 * D),  # + LayerScale ls1, ls2
    # q and v biases only (no k bias), LayerScale gamma_1/gamma_2, relative position bias dropped; fc_norm
    "beit_base_patch16_224": (VIT_BLOCK - 3 * D + 2 * D + 2 * D, 2 * D),
    # q and v biases, SwiGLU MLP (fc1 to 2 x SWIGLU, fc2 from SWIGLU); fc_norm
    "eva02_tiny_patch14_224": (2 * 2 * D + D * 3 * D + 2 * D + (D * D + D) + (D * 2 * SWIGLU + 2 * SWIGLU)
                               + (SWIGLU * D + D), 2 * D),
}
TINY = {"weights": "random", "n_layers": L, "n_embd": D, "n_head": 2}


def tiny(model: str, **extra: object) -> object:
    return build_backbone("timm_vit", {**TINY, "model": model, **extra})


@pytest.mark.parametrize("model", list(MODELS))
def test_counts_and_roles_by_hand(model: str) -> None:
    block, final = MODELS[model]
    backbone = tiny(model)
    assert sum(p.numel() for p in backbone.parameters()) == L * block + final + ROWS * D
    spec = host().tasks.get("bit_xor").spec
    for policy, trainable in (("fpt", None), ("full", None), ("output_only", 2 * D + 2)):
        fpt_model = FPTModel(spec, tiny(model))
        host().policies.get(policy).apply(fpt_model, host().policies.get(policy).options({}))
        counts = fpt_model.parameter_counts(10)
        roles = fpt_model.parameter_roles()
        norms = sum(p.numel() for n, p in fpt_model.named_parameters() if roles[n] == Role.NORM)
        expected = {"fpt": (4 * D + 2 + norms + ROWS * D, 4 * D + 2 + norms + 10 * D),
                    "full": (counts["total"], counts["total"] - (ROWS - 10) * D),
                    "output_only": (trainable, trainable)}[policy]
        assert (counts["trainable"], counts["trainable_reachable"]) == expected, policy
    assert norms == L * 2 * 2 * D + final  # norm1, norm2 per block and the final norm
    roles = backbone.parameter_roles()
    assert roles["position"] == Role.POSITION and set(backbone.parameter_layers().values()) == {0, 1}
    assert {Role.ATTENTION, Role.FEEDFORWARD, Role.NORM, Role.POSITION} == set(roles.values())


def test_layer_scale_belongs_to_its_sublayer_and_beit_drops_image_positions() -> None:
    dinov2 = tiny("vit_small_patch14_dinov2").parameter_roles()
    assert dinov2["layers.0.ls1.gamma"] == Role.ATTENTION and dinov2["layers.0.ls2.gamma"] == Role.FEEDFORWARD
    beit = tiny("beit_base_patch16_224")
    roles = beit.parameter_roles()
    assert roles["layers.1.gamma_1"] == Role.ATTENTION and roles["layers.1.attn.q_bias"] == Role.ATTENTION
    assert not any("relative_position" in name for name in roles)
    assert beit.provenance()["dropped"] == "relative position bias tables of 2 blocks (2-D image positions)"
    with torch.no_grad():
        assert beit.eval()(torch.randn(2, 7, D)).shape == (2, 7, D)  # any length: no 14 x 14 grid left


@pytest.mark.parametrize("model", ["vit_tiny_patch16_224", "vit_small_patch14_dinov2", "eva02_tiny_patch14_224"])
def test_padding_never_changes_real_positions(model: str) -> None:
    backbone = tiny(model).eval()
    x = torch.randn(2, 10, D)
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[1, 7:] = 0
    with torch.no_grad():
        padded, alone = backbone(x, mask), backbone(x[1:, :7])
    torch.testing.assert_close(padded[1, :7], alone[0], atol=2e-5, rtol=1e-4)


def test_a_model_whose_blocks_take_no_mask_refuses_padding() -> None:
    beit = tiny("beit_base_patch16_224").eval()
    mask = torch.ones(2, 6, dtype=torch.long)
    beit(torch.randn(2, 6, D), mask)  # no padding: fine
    mask[0, 4:] = 0
    with pytest.raises(UserError, match="beit_base_patch16_224: its blocks take no attention mask"):
        beit(torch.randn(2, 6, D), mask)


def test_not_a_vit_and_unknown_names_are_clear() -> None:
    with pytest.raises(UserError, match="not a plain vision transformer"):
        build_backbone("timm_vit", {"weights": "random", "model": "resnet18"})
    with pytest.raises(UserError, match="timm has no model 'vit_tiny_patch16_2244'.*did you mean"):
        build_backbone("timm_vit", {"weights": "random", "model": "vit_tiny_patch16_2244"})


def test_weights_from_a_local_safetensors_file(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    torch.manual_seed(3)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "model.safetensors"))
    backbone = build_backbone("timm_vit", {"model": "vit_tiny_patch16_224", "source": str(tmp_path),
                                           "n_layers": 2})
    assert backbone.n_layers == 2 and backbone.hidden_size == 192
    torch.testing.assert_close(backbone.state_dict()["layers.1.attn.qkv.weight"],
                               model.state_dict()["blocks.1.attn.qkv.weight"], rtol=0, atol=0)
    torch.testing.assert_close(backbone.state_dict()["norm.weight"], model.state_dict()["norm.weight"])
    assert backbone.provenance()["source"] == str(tmp_path) and not backbone.position.any()
    with pytest.raises(UserError, match="this timm model's blocks: shapes differ for blocks.0.attn.proj.bias"):
        build_backbone("timm_vit", {"model": "deit_small_patch16_224", "source": str(tmp_path)})
    holey = {k: v.contiguous() for k, v in model.state_dict().items() if k != "blocks.3.norm1.weight"}
    save_file(holey, str(tmp_path / "holey.safetensors"))
    with pytest.raises(UserError, match="this timm model's blocks: missing blocks.3.norm1.weight"):
        build_backbone("timm_vit", {"model": "vit_tiny_patch16_224", "source": str(tmp_path / "holey.safetensors")})


HUB_SCRIPT = r"""
import json
from fpt_bench.host.manager import get_host
from fpt_bench import UserError
plugin = get_host().backbones.get("timm_vit")
out = {}
for name in ("vit_tiny_patch16_224", "vit_base_patch14_dinov2.lvd142m"):
    try:
        module = plugin.build(plugin.options({"model": name, "n_layers": 1}), 10)
        out[name] = {"q": module.state_dict()["layers.0.attn.qkv.weight"].sum().item(), "layers": module.n_layers}
    except UserError as exc:
        out[name] = {"error": str(exc)}
print("RESULT" + json.dumps(out))
"""


def test_pretrained_through_the_hub_cache_offline(tmp_path: Path) -> None:
    """timm's own download path with HF_HUB_OFFLINE=1: a cached repository loads; one not cached is a clear
    error naming the repository, the cache and the command that fetches it."""
    from safetensors.torch import save_file

    hub, revision = tmp_path / "hub", "0123456789abcdef0123456789abcdef01234567"
    repo = hub / "models--timm--vit_tiny_patch16_224.augreg_in21k_ft_in1k"
    (repo / "snapshots" / revision).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    torch.manual_seed(4)
    state = timm.create_model("vit_tiny_patch16_224", pretrained=False).state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(repo / "snapshots" / revision / "model.safetensors"))
    env = {**os.environ, "HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "home")}
    proc = subprocess.run([sys.executable, "-c", HUB_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert out["vit_tiny_patch16_224"]["layers"] == 1
    assert out["vit_tiny_patch16_224"]["q"] == pytest.approx(state["blocks.0.attn.qkv.weight"].sum().item(), abs=1e-4)
    error = out["vit_base_patch14_dinov2.lvd142m"]["error"]
    assert "needs a download: vit_base_patch14_dinov2.lvd142m" in error and "HF_HUB_OFFLINE" in error
    assert "hf download timm/vit_base_patch14_dinov2.lvd142m" in error and str(hub) in error


def test_without_timm_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm now raises ImportError
    with pytest.raises(UserError, match=r"needs the timm package: pip install 'fpt-bench\[timm\]'"):
        tiny("vit_tiny_patch16_224")


def test_a_cell_through_the_harness(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = main(["run", "--task", "bit_xor", "--backbone", "timm_vit", "--backbone-args",
                 "weights=random,model=vit_small_patch14_dinov2,n_layers=2,n_embd=32,n_head=2", "--profile", "smoke",
                 "--steps", "2", "--device", "cpu", "--output-dir", str(out), "--no-progress"])
    result = json.loads(next(out.rglob("*.json")).read_text())
    assert code == 0 and result["status"] == "ok", result.get("error")
    assert result["parameters"]["trainable"] == 4 * D + 2 + (L * 4 + 2) * D + ROWS * D
