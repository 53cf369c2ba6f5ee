"""The training loop: determinism, accumulation, divergence, failure isolation, and exact resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import TINY, result_files, run_cli

from fpt_bench import Continuous, OutputSpec, PaperHParams, SplitData, Task, TaskSpec, hookimpl
from fpt_bench.host.manager import get_host
from fpt_bench.results.store import read_result

BASE = ["--backbone-args", TINY, "--profile", "smoke", "--device", "cpu", "--no-progress"]


def run(tmp_path: Path, *extra: str, task: str = "bit_xor") -> dict:
    code = run_cli("run", "--task", task, *BASE, "--output-dir", str(tmp_path), *extra)
    assert code[0] in (0, 2)
    [path] = result_files(tmp_path)
    return json.loads(path.read_text())


def test_same_seed_gives_bit_identical_metrics(tmp_path: Path) -> None:
    a = run(tmp_path / "a", "--steps", "6", "--eval-every", "3")
    b = run(tmp_path / "b", "--steps", "6", "--eval-every", "3")
    assert a["metrics"] == b["metrics"]
    c = run(tmp_path / "c", "--steps", "6", "--eval-every", "3", "--seeds", "1")
    assert c["metrics"]["curve"] != a["metrics"]["curve"]


def test_gradient_accumulation_keeps_the_effective_batch(tmp_path: Path) -> None:
    one = run(tmp_path / "one", "--steps", "4", "--batch-size", "8", "--backbone-args",
              "weights=random,n_layers=2,n_embd=32,n_head=2,dropout=0")
    two = run(tmp_path / "two", "--steps", "4", "--batch-size", "8", "--grad-accum", "2", "--backbone-args",
              "weights=random,n_layers=2,n_embd=32,n_head=2,dropout=0")
    for p, q in zip(one["metrics"]["curve"], two["metrics"]["curve"], strict=True):
        assert p["train_loss"] == pytest.approx(q["train_loss"], rel=1e-5)


class _ExplodingTask(Task):
    """Finite for 3 steps, then inputs of 1e38 * 1e38 = inf make the loss non-finite."""

    spec = TaskSpec(name="explode", description="diverges at step 4", input=Continuous(dim=1), max_len=4,
                    output=OutputSpec(n_classes=2), generated=True, paper=PaperHParams(steps=8))
    calls = 0

    def sample(self, batch_size, generator, options):
        from fpt_bench import Batch

        type(self).calls += 1  # the first call: the run's contract check looks at the first training batch
        scale = 1.0 if type(self).calls <= 4 else float("inf")
        x = torch.randn(batch_size, 4, 1, generator=generator) * scale
        return Batch(x, torch.zeros(batch_size, dtype=torch.long))

    def load(self, split, options, data_dir):
        return SplitData(torch.ones(8, 4, 1), torch.zeros(8, dtype=torch.long))


class _BuggyTask(_ExplodingTask):
    spec = TaskSpec(name="buggy", description="raises", input=Continuous(dim=1), max_len=4,
                    output=OutputSpec(n_classes=2), generated=True)

    def sample(self, batch_size, generator, options):
        raise ZeroDivisionError("a bug in the task")


class _TestTasks:
    @hookimpl
    def fpt_bench_register_tasks(self, registry):
        registry.add(_ExplodingTask())
        registry.add(_BuggyTask())


@pytest.fixture()
def extra_tasks():
    host = get_host()
    if "explode" not in host.tasks:
        host.register(_TestTasks(), "test-tasks")
    _ExplodingTask.calls = 0
    return host


def test_divergence_is_recorded_with_the_last_finite_metrics(tmp_path: Path, extra_tasks) -> None:
    data = run(tmp_path, "--steps", "8", "--eval-every", "2", task="explode")
    assert data["status"] == "diverged"
    assert "non-finite training loss" in data["error"] and "at step 4" in data["error"]
    assert [p["step"] for p in data["metrics"]["curve"]] == [2]
    assert data["metrics"]["val_accuracy"] is not None and data["metrics"]["test_accuracy"] is not None
    assert data["timing"]["steps"] == 3


def test_a_bug_in_one_cell_fails_that_cell_and_the_sweep_goes_on(tmp_path: Path, extra_tasks, capsys) -> None:
    code, out, err = run_cli("run", "--task", "buggy", "--task", "bit_xor", *BASE, "--steps", "2",
                             "--output-dir", str(tmp_path), capsys=capsys)
    assert code == 1  # an internal error (bug) is not a user error
    results = {read_result(p).cell.task: read_result(p) for p in result_files(tmp_path)}
    assert results["bit_xor"].status == "ok"
    assert results["buggy"].status == "failed" and results["buggy"].error_kind == "internal"
    assert "ZeroDivisionError: a bug in the task" in results["buggy"].error
    assert "1 ok, 0 diverged, 1 failed" in out


RESUME_ARGS = ["run", "--task", "bit_memory", "--backbone-args", "weights=random,n_layers=2,n_embd=64,n_head=4",
               "--profile", "smoke", "--steps", "60", "--eval-every", "20", "--checkpoint-every", "10",
               "--batch-size", "8", "--task-args", "n_val=64,n_test=64", "--device", "cpu", "--no-progress"]


def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    assert run_cli(*RESUME_ARGS, "--output-dir", str(reference))[0] == 0
    [ref_path] = result_files(reference)
    expected = read_result(ref_path)

    killed = tmp_path / "killed"
    ckpt = killed / ref_path.relative_to(reference).with_suffix(".ckpt")
    proc = subprocess.Popen([sys.executable, "-m", "fpt_bench.cli", *RESUME_ARGS, "--output-dir", str(killed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # let it run past the checkpoint, into later steps
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert ckpt.exists(), "the run never wrote a checkpoint"
    assert not result_files(killed), "the run finished before it was killed; the test proves nothing"

    assert run_cli(*RESUME_ARGS, "--output-dir", str(killed))[0] == 0
    [path] = result_files(killed)
    resumed = read_result(path)
    assert resumed.timing.resumed_from_step is not None and resumed.timing.resumed_from_step >= 10
    assert resumed.metrics == expected.metrics  # bit-identical, curve included
    assert not ckpt.exists()  # a finished cell removes its checkpoint


def test_checkpoint_of_another_config_is_ignored(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = list(RESUME_ARGS)
    args[args.index("60")] = "10"
    assert run_cli(*args, "--output-dir", str(out), "--keep-checkpoints", "--checkpoint-every", "5")[0] == 0
    [path] = result_files(out)
    ckpt = path.with_suffix(".ckpt")
    assert ckpt.exists()
    payload = torch.load(ckpt, weights_only=True)
    assert payload["config_hash"] == read_result(path).provenance.config_hash
    payload["config_hash"] = "something-else"
    torch.save(payload, ckpt)
    assert run_cli(*args, "--output-dir", str(out), "--overwrite", "always", "--checkpoint-every", "5")[0] == 0
    assert read_result(path).timing.resumed_from_step is None
