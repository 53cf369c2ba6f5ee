"""Task-pretrained backbones: ``--save-backbone`` writes the trained backbone next to the result, another cell
loads it (``checkpoint:PATH`` or ``result:RESULT_JSON``) and records where its weights came from; every backbone
kind round-trips; LoRA adapters are merged into the saved weights."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from backbone_helpers import TINY, build_backbone, build_model, host, one_thread  # noqa: F401

from fpt_bench import UserError
from fpt_bench.api.backbone_checkpoint import backbone_path, read_backbone_checkpoint, save_backbone
from fpt_bench.api.cell import CellConfig
from fpt_bench.api.hparams import HParamOverrides
from fpt_bench.cells.context import RunContext
from fpt_bench.cells.profiles import resolve_hparams
from fpt_bench.cells.sweep import run_sweep
from fpt_bench.results.store import read_result, result_path, write_result


def _cell(backbone_args: dict, policy: str) -> CellConfig:
    spec = host().tasks.get("bit_xor").spec
    hparams = resolve_hparams(spec, "smoke", HParamOverrides(steps=3, eval_every=3, checkpoint_every=0,
                                                            val_examples=16, test_examples=16))
    return CellConfig(task="bit_xor", backbone="gpt2", backbone_args=backbone_args, policy=policy, seed=0,
                      profile="smoke", hparams=hparams)


def _sweep(cell: CellConfig, out: Path, save: bool) -> str:
    ctx = RunContext(plugin_host=host(), device="cpu", data_dir=out / "data", output_dir=out, progress=False,
                     save_backbone=save)
    log = io.StringIO()
    run_sweep([cell], ctx, host().executors.get("local"), out=log)
    return log.getvalue()


def test_save_backbone_then_transfer_it_frozen(tmp_path: Path) -> None:
    pretrain = _cell(dict(TINY["gpt2"][1]), "full")
    first = result_path(tmp_path, pretrain)
    assert "ok" in _sweep(pretrain, tmp_path, save=False)
    assert not backbone_path(first).exists() and read_result(first).provenance.saved_backbone is None
    # asking for the backbone of a finished cell reruns it once; after that the cell is skipped
    assert "ok" in _sweep(pretrain, tmp_path, save=True)
    assert "skip" in _sweep(pretrain, tmp_path, save=True)
    result = read_result(first)
    assert result.provenance.saved_backbone == backbone_path(first).name
    checkpoint = read_backbone_checkpoint(backbone_path(first))
    assert checkpoint.backbone == "gpt2" and checkpoint.cell["config_hash"] == pretrain.config_hash()
    assert checkpoint.cell["step"] == result.metrics.best_step and checkpoint.origin["weights"] == "random"

    # the saved weights are the trained ones: they differ from the same seed's initial weights
    initial = build_backbone("gpt2", dict(TINY["gpt2"][1]), max_len=10, seed=0)
    loaded = build_backbone("gpt2", {"weights": f"checkpoint:{backbone_path(first)}"})
    name = "model.h.1.mlp.c_fc.weight"
    assert not torch.equal(initial.state_dict()[name], loaded.state_dict()[name])
    torch.testing.assert_close(loaded.state_dict()[name], checkpoint.state_dict()[name], rtol=0, atol=0)

    transfer = _cell({"weights": f"result:{first}"}, "fpt")
    assert "ok" in _sweep(transfer, tmp_path, save=False)
    second = read_result(result_path(tmp_path, transfer))
    source = second.provenance.backbone
    assert source["weights"] == "checkpoint" and source["checkpoint"] == str(backbone_path(first).resolve())
    assert source["saved_by"]["policy"] == "full" and source["saved_by"]["task"] == "bit_xor"
    assert len(source["sha256"]) == 64
    assert second.parameters is not None
    assert second.parameters.by_role["attention"]["trainable"] == 0  # loaded frozen under fpt
    assert second.parameters.trainable == 33218


def test_save_backbone_does_not_rerun_a_diverged_cell(tmp_path: Path) -> None:
    cell = _cell(dict(TINY["gpt2"][1]), "fpt")
    path = result_path(tmp_path, cell)
    assert "ok" in _sweep(cell, tmp_path, save=False)
    write_result(path, read_result(path).model_copy(update={"status": "diverged"}))  # diverged cells save none
    assert "skip" in _sweep(cell, tmp_path, save=True)
    assert not backbone_path(path).exists() and read_result(path).status == "diverged"


@pytest.mark.parametrize("key", list(TINY))
def test_every_backbone_round_trips_through_a_checkpoint(tmp_path: Path, key: str) -> None:
    name, args = TINY[key]
    model = build_model(key).eval()
    path = save_backbone(model, tmp_path / "b.backbone.safetensors", name, {"test": key})
    loaded = build_backbone(name, {"weights": f"checkpoint:{path}"}).eval()
    original = model.backbone.state_dict()
    assert set(loaded.state_dict()) == set(original)
    for k, v in loaded.state_dict().items():
        torch.testing.assert_close(v, original[k], rtol=0, atol=0)
    x = torch.randn(2, 10, model.backbone.hidden_size)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model.backbone(x))
    assert loaded.provenance()["weights"] == "checkpoint" and loaded.provenance()["saved_by"] == {"test": key}


def test_checkpoint_depth_can_be_cut(tmp_path: Path) -> None:
    path = save_backbone(build_model("bert"), tmp_path / "b.safetensors", "hf_encoder", {})
    loaded = build_backbone("hf_encoder", {"weights": f"checkpoint:{path}", "n_layers": 1})
    assert loaded.n_layers == 1 and loaded.model.config.num_hidden_layers == 1
    lstm = save_backbone(build_model("lstm"), tmp_path / "l.safetensors", "lstm", {})
    assert build_backbone("lstm", {"weights": f"checkpoint:{lstm}", "n_layers": 1}).n_layers == 1
    with pytest.raises(UserError, match="hidden_size=32"):
        build_backbone("lstm", {"weights": f"checkpoint:{lstm}", "hidden_size": 64})


@pytest.mark.parametrize("key", ["gpt2", "bert"])  # GPT-2's Conv1D stores weights transposed; BERT's Linear not
def test_lora_adapters_are_merged_into_the_saved_backbone(tmp_path: Path, key: str) -> None:
    model = build_model(key, "lora", {"rank": 2, "targets": "attention+feedforward"}).eval()
    x = torch.randn(2, 10, model.backbone.hidden_size)
    with torch.no_grad():
        before = model.backbone(x)
        for adapter in model.adapters.values():
            adapter.lora_b.normal_(0, 0.5)
        adapted = model.backbone(x)
    assert not torch.allclose(before, adapted)  # the adapters act
    path = save_backbone(model, tmp_path / "lora.safetensors", TINY[key][0], {})
    merged = build_backbone(TINY[key][0], {"weights": f"checkpoint:{path}"}).eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(x), adapted, atol=1e-5, rtol=1e-4)


def test_lora_starts_as_the_frozen_model_and_trains_only_adapters() -> None:
    plain = build_model("vit").eval()
    lora = build_model("vit", "lora", {"rank": 4, "targets": "feedforward"}).eval()
    x = torch.randn(2, 10, 1)
    with torch.no_grad():
        torch.testing.assert_close(lora(x), plain(x))  # B = 0: same function at the start
    lora.train()
    lora(x).sum().backward()
    roles = lora.parameter_roles()
    grads = {roles[n] for n, p in lora.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert "adapter" in grads and "attention" not in grads and "feedforward" not in grads
    layers = lora.parameter_layers()
    assert {layers[n] for n in roles if n.startswith("adapters.")} == {0, 1}
    with pytest.raises(UserError, match="no Linear or Conv1D module with role attention"):
        build_model("lstm", "lora", {})


def test_checkpoint_errors_are_clear(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = save_backbone(build_model("gpt2"), tmp_path / "g.safetensors", "gpt2", {})
    with pytest.raises(UserError, match="load it with --backbone gpt2"):
        build_backbone("vit", {"weights": f"checkpoint:{path}"})
    foreign = tmp_path / "foreign.safetensors"
    save_file({"x": torch.zeros(2)}, str(foreign))
    with pytest.raises(UserError, match="not a backbone saved by fpt-bench"):
        build_backbone("gpt2", {"weights": f"checkpoint:{foreign}"})
    with pytest.raises(UserError, match="does not exist"):
        build_backbone("gpt2", {"weights": f"checkpoint:{tmp_path / 'absent.safetensors'}"})
    with pytest.raises(UserError, match="no such result file"):
        build_backbone("gpt2", {"weights": f"result:{tmp_path / 'absent.json'}"})


def test_cli_flag_reaches_the_run_config() -> None:
    from fpt_bench.cells.config import build_run_config
    from fpt_bench.cli.app import run_config

    assert run_config(["--task", "bit_xor", "--save-backbone"]).save_backbone is True
    assert build_run_config({"save_backbone": True}, {"tasks": ["bit_xor"]}).save_backbone is True  # config file
    assert run_config(["--task", "bit_xor"]).save_backbone is False
