"""Bad runs and determinism: one multi-cell sweep where a cell diverges, one raises, one has a user error and one
is fine (each recorded as such, the sweep goes on); out-of-memory backs off the micro-batch (injected on the CPU:
the forward pass raises ``torch.cuda.OutOfMemoryError`` for micro-batches larger than N) and stays
deterministic; a CIFAR cell with augmentation is bit-identical twice; ``--deterministic`` is recorded."""

from __future__ import annotations

import io
import json
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import result_files, run_cli
from reliability_support import tally

from fpt_bench import Batch, Continuous, OutputSpec, PaperHParams, SplitData, Task, TaskSpec, hookimpl
from fpt_bench.api.model import FPTModel
from fpt_bench.host.manager import get_host
from fpt_bench.results.store import read_result

TINY = "weights=random,n_layers=1,n_embd=16,n_head=2"
BASE = ["--backbone-args", TINY, "--profile", "smoke", "--device", "cpu", "--no-progress"]


def run(out: Path, *extra: str, task: str = "bit_xor") -> tuple[int, dict]:
    code = run_cli("run", "--task", task, *BASE, "--output-dir", str(out), *extra)[0]
    [path] = result_files(out)
    return code, json.loads(path.read_text())


# ------------------------------------------------------------------------------------------- bad cells
class _Diverges(Task):
    """Finite for 4 steps, then infinite inputs make the loss non-finite."""

    spec = TaskSpec(name="rel_diverges", description="diverges at step 5", input=Continuous(dim=1), max_len=4,
                    output=OutputSpec(n_classes=2), generated=True, paper=PaperHParams(steps=10))

    def sample(self, batch_size, generator, options):  # type: ignore[no-untyped-def]
        step_scale = float("inf") if generator.initial_seed() in _Diverges.late_seeds else 1.0
        return Batch(torch.randn(batch_size, 4, 1, generator=generator) * step_scale,
                     torch.zeros(batch_size, dtype=torch.long))

    late_seeds: set[int] = set()

    def load(self, split, options, data_dir):  # type: ignore[no-untyped-def]
        return SplitData(torch.ones(8, 4, 1), torch.zeros(8, dtype=torch.long))


class _Raises(_Diverges):
    spec = TaskSpec(name="rel_raises", description="a bug at step 3", input=Continuous(dim=1), max_len=4,
                    output=OutputSpec(n_classes=2), generated=True)
    calls = 0

    def sample(self, batch_size, generator, options):  # type: ignore[no-untyped-def]
        type(self).calls += 1
        if type(self).calls == 3:
            raise KeyError("a bug in the task at step 3")
        return Batch(torch.randn(batch_size, 4, 1, generator=generator), torch.zeros(batch_size, dtype=torch.long))


class _NoData(_Diverges):
    spec = TaskSpec(name="rel_no_data", description="its data is missing", input=Continuous(dim=1), max_len=4,
                    output=OutputSpec(n_classes=2))

    def load(self, split, options, data_dir):  # type: ignore[no-untyped-def]
        from fpt_bench import DataMissingError

        raise DataMissingError(f"data missing for task 'rel_no_data' in {data_dir}: run `fpt-bench data fetch`")


class _Tasks:
    @hookimpl
    def fpt_bench_register_tasks(self, registry):  # type: ignore[no-untyped-def]
        for task in (_Diverges(), _Raises(), _NoData()):
            registry.add(task)


@pytest.fixture()
def bad_tasks():  # type: ignore[no-untyped-def]
    from fpt_bench.api.seeding import derive_seed

    host = get_host()
    if "rel_diverges" not in host.tasks:
        host.register(_Tasks(), "reliability-test-tasks")
    _Raises.calls = 0
    seed = derive_seed(0, "data")
    _Diverges.late_seeds = {derive_seed(seed, "data", step) for step in range(4, 10)}  # steps 5..10
    return host


def test_a_sweep_survives_divergence_a_bug_and_missing_data(tmp_path: Path, bad_tasks, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run_cli("run", "--task", "rel_diverges", "--task", "rel_raises", "--task", "rel_no_data",
                             "--task", "bit_xor", *BASE, "--steps", "8", "--eval-every", "2",
                             "--output-dir", str(tmp_path), capsys=capsys)
    assert code == 1  # a bug (internal error) among the failures
    results = {r.cell.task: r for r in map(read_result, result_files(tmp_path))}
    assert set(results) == {"rel_diverges", "rel_raises", "rel_no_data", "bit_xor"}
    diverged = results["rel_diverges"]
    assert diverged.status == "diverged" and "non-finite training loss" in diverged.error and "step 5" in diverged.error
    assert [p.step for p in diverged.metrics.curve] == [2, 4]  # the last finite evaluations are kept
    assert diverged.metrics.val_accuracy is not None and diverged.metrics.test_accuracy is not None
    assert diverged.timing.steps == 4
    raised = results["rel_raises"]
    assert raised.status == "failed" and raised.error_kind == "internal" and "KeyError" in raised.error
    missing = results["rel_no_data"]
    assert missing.status == "failed" and missing.error_kind == "user" and "fpt-bench data fetch" in missing.error
    assert results["bit_xor"].status == "ok" and results["bit_xor"].timing.steps == 8
    assert "1 ok, 1 diverged, 2 failed" in out and "Traceback" in err  # the bug's traceback, for its author
    tally("bad runs", "cells in the mixed sweep", 4)


# ----------------------------------------------------------------------------------------- out of memory
def inject_oom(monkeypatch: pytest.MonkeyPatch, largest: int, message: str | None = None) -> list[int]:
    """Training forward passes over more than ``largest`` examples raise out-of-memory; returns the sizes tried."""
    real = FPTModel.forward
    tried: list[int] = []

    def forward(self, x, lengths=None):  # type: ignore[no-untyped-def]
        if self.training:
            tried.append(x.shape[0])
            if x.shape[0] > largest:
                if message is None:
                    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
                raise RuntimeError(message)
        return real(self, x, lengths)

    monkeypatch.setattr(FPTModel, "forward", forward)
    return tried


def test_out_of_memory_backs_off_the_micro_batch_deterministically(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["--steps", "4", "--eval-every", "2", "--batch-size", "8", "--checkpoint-every", "2"]
    _, planned = run(tmp_path / "planned", *args, "--grad-accum", "4")  # micro-batch 2 from the start
    tried = inject_oom(monkeypatch, largest=2)
    code, backed = run(tmp_path / "backed", *args, "--keep-checkpoints")
    assert code == 0 and backed["status"] == "ok"
    assert tried[:3] == [8, 4, 2] and set(tried[3:]) == {2}  # halved twice at the first step, then kept
    assert backed["timing"]["micro_batch_size"] == 2 and backed["timing"]["oom_backoffs"] == 2
    assert planned["timing"]["micro_batch_size"] == 2 and planned["timing"]["oom_backoffs"] == 0
    assert backed["metrics"] == planned["metrics"]  # same batches, same seeds, same chunks: bit-identical
    [path] = result_files(tmp_path / "backed")
    assert torch.load(path.with_suffix(".ckpt"), weights_only=True)["grad_chunks"] == 4  # a resume keeps it
    tally("bad runs", "out-of-memory backoffs injected", backed["timing"]["oom_backoffs"])


@pytest.mark.parametrize("message", ["CUDA error: out of memory", "MPS backend out of memory (MPS allocated: 9 GB)"])
def test_out_of_memory_as_a_runtime_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, message: str) -> None:
    inject_oom(monkeypatch, largest=4, message=message)
    code, data = run(tmp_path, "--steps", "2", "--eval-every", "2", "--batch-size", "8")
    assert code == 0 and data["timing"]["micro_batch_size"] == 4 and data["timing"]["oom_backoffs"] == 1


def test_out_of_memory_at_one_example_fails_the_cell_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    inject_oom(monkeypatch, largest=0)
    code, data = run(tmp_path, "--steps", "2", "--eval-every", "2", "--batch-size", "4")
    assert code == 2 and data["status"] == "failed" and data["error_kind"] == "user"
    assert "out of memory at step 1 with a micro-batch of 1" in data["error"] and "smaller backbone" in data["error"]


def test_other_runtime_errors_are_not_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tried = inject_oom(monkeypatch, largest=0, message="shape mismatch in a custom layer")
    code, data = run(tmp_path, "--steps", "2", "--eval-every", "2", "--batch-size", "4")
    assert code == 1 and data["status"] == "failed" and data["error_kind"] == "internal" and tried == [4]


# ------------------------------------------------------------------------------------------- determinism
def tiny_cifar(data_dir: Path, n: int = 6) -> None:
    """A CIFAR-10 archive in the real format (python pickles), imported unverified."""
    from fpt_bench.datastore.importer import import_files

    archive = data_dir.parent / "cifar-10-python.tar.gz"
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    with tarfile.open(archive, "w:gz") as tar:
        for i, name in enumerate(names):
            rng = np.random.default_rng(i)
            entry = {"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8),
                     "labels": [int(v) for v in rng.integers(0, 10, n)]}
            blob = pickle.dumps(entry, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    task = get_host().tasks.get("cifar10")
    import_files("cifar10", data_dir, task.data_files(task.options({})), archive, verify=False)


def test_cifar_with_augmentation_is_bit_identical_twice(tmp_path: Path) -> None:
    data = tmp_path / "data"
    tiny_cifar(data)
    args = ["--steps", "4", "--eval-every", "2", "--batch-size", "4", "--task-args", "val_size=6",
            "--data-dir", str(data)]
    _, a = run(tmp_path / "a", *args, task="cifar10")
    _, b = run(tmp_path / "b", *args, task="cifar10")
    _, c = run(tmp_path / "c", *args, "--seeds", "1", task="cifar10")
    assert a["status"] == "ok" and a["metrics"] == b["metrics"]
    assert a["metrics"]["curve"] != c["metrics"]["curve"]  # the seed matters (augmentation, order, dropout)
    augment = get_host().tasks.get("cifar10").augment
    x = torch.zeros(4, 64, 48)
    from fpt_bench.api.seeding import generator

    assert not torch.equal(augment(x + 1, generator(0), None), x + 1)  # augmentation really ran on these images


def test_deterministic_switch_is_recorded_and_changes_nothing_on_cpu(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    args = ["--steps", "4", "--eval-every", "2"]
    _, plain = run(tmp_path / "plain", *args)
    code, strict = run(tmp_path / "strict", *args, "--deterministic")
    assert code == 0 and strict["provenance"]["deterministic"] is True and plain["provenance"]["deterministic"] is False
    assert strict["metrics"] == plain["metrics"]  # on a CPU the harness is deterministic already
    assert strict["provenance"]["config_hash"] == plain["provenance"]["config_hash"]  # the same cell
    import os

    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert not torch.are_deterministic_algorithms_enabled()  # restored after the cell
    config = tmp_path / "run.toml"
    config.write_text('tasks = ["bit_xor"]\ndeterministic = true\n')
    code = run_cli("run", "--config", str(config), *BASE, *args, "--output-dir", str(tmp_path / "toml"))[0]
    assert code == 0 and read_result(result_files(tmp_path / "toml")[0]).provenance.deterministic


def test_deterministic_algorithms_are_on_inside_the_cell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []
    real = FPTModel.forward

    def forward(self, x, lengths=None):  # type: ignore[no-untyped-def]
        seen.append(torch.are_deterministic_algorithms_enabled())
        return real(self, x, lengths)

    monkeypatch.setattr(FPTModel, "forward", forward)
    run(tmp_path, "--steps", "2", "--eval-every", "2", "--deterministic")
    assert seen and all(seen)
