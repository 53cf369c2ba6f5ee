"""Feature caching for output-layer-only policies: the same result as the uncached run, recorded, and only when
the cell allows it; training batches are a pure function of (seed, step)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import result_files, run_cli
from perf_helpers import PerfSeq, register

from fpt_bench.training.batches import TrainingData

NO_DROPOUT = "weights=random,n_layers=2,n_embd=32,n_head=2,dropout=0"


@pytest.fixture(autouse=True)
def _task() -> None:
    register()


def run(tmp_path: Path, *extra: str, task: str = "perf_seq", backbone: str = NO_DROPOUT) -> dict:
    code, _, _ = run_cli("run", "--task", task, "--backbone-args", backbone, "--policy", "output_only",
                         "--profile", "smoke", "--device", "cpu", "--no-progress", "--output-dir", str(tmp_path),
                         "--steps", "12", "--eval-every", "6", "--batch-size", "4", "--lr", "0.05", *extra)
    assert code == 0
    [path] = result_files(tmp_path)
    return json.loads(path.read_text())


@pytest.mark.parametrize("task_args", ["fixed=false", "fixed=true,readout=last"])
def test_cached_run_equals_the_uncached_run(tmp_path: Path, task_args: str) -> None:
    """Variable-length bucketed batches read at the last real token, and fixed-length ones read at the end:
    the cached run's curve and accuracies match the uncached run's (dropout 0: the frozen part is deterministic)."""
    args = ("--task-args", task_args, "--input-dropout", "0")
    threads = torch.get_num_threads()
    plain = run(tmp_path / "off", *args, "--feature-cache", "off")
    cached = run(tmp_path / "auto", *args)
    assert torch.get_num_threads() == threads  # cached steps ran on one thread; the count is restored
    assert cached["provenance"]["speed"]["cached_step_threads"] == 1
    assert plain["provenance"]["speed"]["feature_cache"] is False
    assert plain["provenance"]["speed"]["feature_cache_reason"] == "feature_cache=off"
    speed = cached["provenance"]["speed"]
    assert speed["feature_cache"] is True and speed["feature_cache_reason"] == "only the output layer trains"
    assert speed["feature_cache_mb"] == pytest.approx((48 + 16 + 16) * 32 * 4 / 2**20)
    assert cached["timing"]["feature_cache_seconds"] > 0 and plain["timing"]["feature_cache_seconds"] is None
    # recorded: "off" is part of the config (and hash), the neutral "auto" is not (earlier results keep theirs)
    assert plain["cell"]["hparams"]["feature_cache"] == "off" and "feature_cache" not in cached["cell"]["hparams"]
    assert plain["provenance"]["config_hash"] != cached["provenance"]["config_hash"]
    losses = [(p["train_loss"], q["train_loss"]) for p, q in zip(plain["metrics"]["curve"],
                                                                 cached["metrics"]["curve"], strict=True)]
    assert len(losses) == 2 and losses[0][0] != losses[1][0]  # it learns: the losses move
    for a, b in losses:
        assert a == pytest.approx(b, rel=1e-4)
    for key in ("val_accuracy", "test_accuracy", "test_accuracy_final", "best_step"):
        assert plain["metrics"][key] == cached["metrics"][key], key
    # a cached step computes only the head: its model FLOPs are the head's
    assert cached["timing"]["model_flops"] < plain["timing"]["model_flops"] / 100


def test_dropout_in_the_frozen_part_keeps_auto_from_caching_but_not_on(tmp_path: Path) -> None:
    dropout = "weights=random,n_layers=2,n_embd=32,n_head=2,dropout=0.1"
    auto = run(tmp_path / "auto", backbone=dropout)
    assert auto["provenance"]["speed"]["feature_cache"] is False
    assert "dropout" in auto["provenance"]["speed"]["feature_cache_reason"]
    forced = run(tmp_path / "on", "--feature-cache", "on", backbone=dropout)
    assert forced["provenance"]["speed"]["feature_cache"] is True
    assert "without its dropout" in forced["provenance"]["speed"]["feature_cache_reason"]
    assert forced["cell"]["hparams"]["feature_cache"] == "on"


def _model_and_data(policy: str, task_name: str = "perf_seq", **task_args):
    from fpt_bench.api.model import FPTModel
    from fpt_bench.host.manager import get_host

    host = get_host()
    task = host.tasks.get(task_name)
    options = task.options(task_args)
    spec = task.resolve_spec(options)
    backbone = host.backbones.get("gpt2")
    model = FPTModel(spec, backbone.build(backbone.options({"weights": "random", "n_layers": 1, "n_embd": 16,
                                                            "n_head": 2}), spec.max_len))
    host.policies.get(policy).apply(model, host.policies.get(policy).options({}))
    split = None if spec.generated else task.load("train", options, Path("."))
    return model, TrainingData(task, options, split, 0, 4, torch.device("cpu")), [] if split is None else [split]


@pytest.mark.parametrize(("policy", "task_args", "reason"), [
    ("output_only", {}, None),
    ("out", {"fixed": True, "readout": "last"}, None),
    ("fpt", {}, "parameters below the output layer train (roles input, norm, position)"),
    ("bitfit", {}, "parameters below the output layer train (roles attention, feedforward, input, norm)"),
    ("output_only", {"augment": True}, "the task augments training batches"),
    ("output_only", {"readout": "last"}, "depends on the batch's padding"),
    ("output_only", "bit_xor", "the training data is generated (every batch is new)"),
])
def test_who_may_cache(policy: str, task_args, reason: str | None) -> None:
    from fpt_bench.training.features import ineligible_reason

    if task_args == "bit_xor":
        model, data, splits = _model_and_data(policy, "bit_xor")
    else:
        model, data, splits = _model_and_data(policy, **task_args)
    got = ineligible_reason(model, data, splits)
    assert got == reason if reason is None else reason in got


def test_the_batch_of_a_step_is_a_pure_function_of_seed_and_step() -> None:
    task = PerfSeq()
    options = task.options({})
    split = task.load("train", options, Path("."))
    a = TrainingData(task, options, split, 7, 4, torch.device("cpu"))
    b = TrainingData(task, options, split, 7, 4, torch.device("cpu"))
    assert a.bucketed
    for step in (30, 0, 11, 12, 30):  # any order, across epochs (12 batches of 4 per epoch)
        index = a.indices(step)
        assert torch.equal(index, b.indices(step))
        assert torch.equal(a.batch(step).x, split.batch(index).x)
    assert not torch.equal(a.indices(0), TrainingData(task, options, split, 8, 4, torch.device("cpu")).indices(0))
