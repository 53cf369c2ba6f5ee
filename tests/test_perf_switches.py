"""Speed switches: each is wired, recorded in the result, and the neutral ones leave earlier results' hashes alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import result_files, run_cli

from fpt_bench.results.schema import CellResult

REPO = Path(__file__).resolve().parents[1]
BASE = ["run", "--task", "bit_xor", "--profile", "smoke", "--device", "cpu", "--no-progress", "--steps", "4",
        "--eval-every", "4", "--task-args", "n_val=16,n_test=16"]
TINY0 = "weights=random,n_layers=2,n_embd=32,n_head=2,dropout=0"


def run(tmp_path: Path, *extra: str, backbone: str = TINY0) -> dict:
    code, _, _ = run_cli(*BASE, "--backbone-args", backbone, "--output-dir", str(tmp_path), *extra)
    assert code == 0
    [path] = result_files(tmp_path)
    return json.loads(path.read_text())


def _compile_run(tmp_path: Path, monkeypatch, real: bool) -> tuple[dict, dict, list]:
    plain = run(tmp_path / "plain")
    calls = []
    real_compile = torch.compile

    def spy(model, **kwargs):
        calls.append((type(model).__name__, kwargs))
        return real_compile(model, **kwargs) if real else model

    monkeypatch.setattr(torch, "compile", spy)
    monkeypatch.setenv("FPT_BENCH_COMPILE_BACKEND", "eager")
    compiled = run(tmp_path / "compiled", "--compile", "--adam-impl", "for_loop",
                   backbone=TINY0 + ",attention=eager,gelu=composite")
    return plain, compiled, calls


def test_compile_adam_and_attention_switches_are_wired_and_recorded(tmp_path: Path, monkeypatch) -> None:
    """The flags reach torch.compile (with the backend from $FPT_BENCH_COMPILE_BACKEND), Adam and the backbone,
    and the result records them. (A real compile: the slow test below and ``benchmarks/throughput.py --compile``.)"""
    plain, compiled, calls = _compile_run(tmp_path, monkeypatch, real=False)
    speed = plain["provenance"]["speed"]
    assert speed["compile"] is False and speed["optimizer"] == "Adam (fused)" and speed["attention"] == "sdpa"
    assert speed["activation"] == "gelu_pytorch_tanh"
    assert speed["backward_layers"] == 2 and speed["frozen_prefix_no_grad"] is False
    assert speed["training_data"] == "generated on the device" and speed["autocast"] is None
    assert "compile" not in plain["cell"]["hparams"] or plain["cell"]["hparams"]["compile"] is False
    assert calls == [("FPTModel", {"backend": "eager"})]
    speed = compiled["provenance"]["speed"]
    assert speed["compile"] is True and speed["compile_backend"] == "eager"
    assert speed["optimizer"] == "Adam (for_loop)" and speed["attention"] == "eager"
    assert speed["activation"] == "gelu_new"
    hp = compiled["cell"]["hparams"]
    assert hp["compile"] is True and hp["adam_impl"] == "for_loop"
    for a, b in zip(plain["metrics"]["curve"], compiled["metrics"]["curve"], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)  # eager attention, gelu_new, for-loop Adam


def test_a_really_compiled_model_trains_like_the_plain_one(tmp_path: Path, monkeypatch) -> None:
    """TorchDynamo traces the model (backend 'eager': no Inductor C++ build) and the numbers do not change
    (about 10 s: most of it Dynamo's first trace)."""
    plain, compiled, calls = _compile_run(tmp_path, monkeypatch, real=True)
    assert calls and compiled["provenance"]["speed"]["compile"] is True
    for a, b in zip(plain["metrics"]["curve"], compiled["metrics"]["curve"], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
    assert plain["metrics"]["test_accuracy"] == compiled["metrics"]["test_accuracy"]


def test_every_result_carries_throughput_and_mfu(tmp_path: Path) -> None:
    data = run(tmp_path)
    timing = data["timing"]

    # bit_xor, GPT-2 2 x 32, FPT: 1,063,040 FLOPs per example (fpt_bench.training.flops; test_perf_flops),
    # 4 steps of batch 4
    assert timing["model_flops"] == 4 * 4 * 1_063_040
    assert timing["model_flops_per_second"] == pytest.approx(timing["model_flops"] / timing["train_seconds"])
    assert timing["peak_dtype"] == "float32" and timing["peak_flops_per_second"] > 1e8
    assert timing["mfu"] == pytest.approx(timing["model_flops_per_second"] / timing["peak_flops_per_second"])
    assert 0 < timing["mfu"] < 1
    CellResult.model_validate(data)


def test_neutral_settings_stay_out_of_the_record_and_the_hash() -> None:
    """At their neutral 'auto', feature_cache and adam_impl are neither recorded in a result's hparams (results
    from before they existed compare as the same hyperparameters) nor hashed; set, they are both."""
    from fpt_bench.api.cell import CellConfig
    from fpt_bench.api.hparams import HParamOverrides
    from fpt_bench.api.specs import TaskSpec
    from fpt_bench.cells.profiles import resolve_hparams

    def cell(**overrides) -> CellConfig:
        spec = TaskSpec(name="t", description="", input={"kind": "continuous", "dim": 1}, max_len=4,
                        output={"n_classes": 2})
        return CellConfig(task="t", backbone="gpt2", policy="fpt", seed=0, profile="smoke",
                          hparams=resolve_hparams(spec, "smoke", HParamOverrides(**overrides)))

    neutral = cell(feature_cache="auto", adam_impl="auto")
    assert not {"feature_cache", "adam_impl"} & set(neutral.hparams.recorded())
    assert {"steps", "lr", "compile", "precision"} <= set(neutral.hparams.recorded())
    assert neutral.config_hash() == cell().config_hash()
    off, fused = cell(feature_cache="off"), cell(adam_impl="fused")
    assert off.hparams.recorded()["feature_cache"] == "off" and fused.hparams.recorded()["adam_impl"] == "fused"
    assert len({neutral.config_hash(), off.config_hash(), fused.config_hash()}) == 3


def test_committed_schema_documents_the_new_keys() -> None:
    schema = json.loads((REPO / "schemas" / "cell-result.schema.json").read_text())
    timing = schema["$defs"]["Timing"]["properties"]
    for key in ("mfu", "model_flops", "model_flops_per_second", "peak_flops_per_second", "feature_cache_seconds"):
        assert timing[key]["description"], key
    speed = schema["$defs"]["Speed"]["properties"]
    assert all(value.get("description") for value in speed.values())
