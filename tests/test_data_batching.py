"""Variable-length batching: padding per batch, the last-real-token readout, bucketing by length (a pure function
of the step), evaluation in length order, and whole runs on real-format data (ListOps, CIFAR-10)."""

from __future__ import annotations

import io
import json
import pickle
import tarfile
from pathlib import Path

import numpy as np
import torch

from fpt_bench import SplitData, Task, TaskSpec, Tokens
from fpt_bench.api.model import FPTModel
from fpt_bench.api.specs import OutputSpec
from fpt_bench.cli import main
from fpt_bench.host.manager import get_host
from fpt_bench.training.batches import TrainingData
from fpt_bench.training.inference import evaluate

TINY = "weights=random,n_layers=1,n_embd=16,n_head=2"


def tiny_model(spec: TaskSpec) -> FPTModel:
    backbone = get_host().backbones.get("gpt2")
    torch.manual_seed(0)
    module = backbone.build(backbone.options({"weights": "random", "n_layers": 2, "n_embd": 32, "n_head": 2}),
                            spec.max_len)
    return FPTModel(spec, module).eval()


def ragged_split(n: int = 1000, seed: int = 0) -> SplitData:
    rng = np.random.default_rng(seed)
    lengths = torch.from_numpy(rng.integers(10, 200, n))
    x = torch.zeros(n, 200, dtype=torch.uint8)
    for i, length in enumerate(lengths.tolist()):
        x[i, :length] = torch.from_numpy(rng.integers(1, 16, length).astype(np.uint8))
    return SplitData(x, torch.arange(n), lengths, decode=lambda t: t.long())  # y = example index


class Plain(Task):
    spec = TaskSpec(name="plain", description="no bucketing", input=Tokens(vocab_size=16), max_len=200,
                    output=OutputSpec(n_classes=10))


def test_last_nonpad_readout_ignores_padding_and_paper_compat_reads_the_end() -> None:
    listops = get_host().tasks.get("listops")
    model = tiny_model(listops.spec)
    a = torch.tensor([[11, 3, 10, 15]])
    b = torch.tensor([[13, 5, 14, 4, 9, 15, 8, 15]])
    batch = torch.cat([torch.nn.functional.pad(a, (0, 4)), b])
    with torch.no_grad():
        alone = torch.cat([model(a, torch.tensor([4])), model(b, torch.tensor([8]))])
        together = model(batch, torch.tensor([4, 8]))
        assert torch.allclose(alone, together, atol=1e-5)
        compat = tiny_model(listops.resolve_spec(listops.options({"protocol": "paper-compat"})))
        a, b = torch.tensor([[11, 3, 10]]), torch.tensor([[13, 5, 14, 4, 9, 8]])  # brackets dropped
        batch = torch.cat([torch.nn.functional.pad(a, (0, 3)), b])
        end = compat(batch, torch.tensor([3, 6]))  # reads position 6 of the padded batch: a pad token for a
        assert not torch.allclose(end[0], compat(a, torch.tensor([3]))[0], atol=1e-4)
        assert torch.allclose(end[1], compat(b, torch.tensor([6]))[0], atol=1e-5)


def test_bucketed_batches_are_a_pure_function_of_the_step() -> None:
    listops = get_host().tasks.get("listops")
    split = ragged_split()
    data = TrainingData(listops, listops.options({}), split, seed=3, batch_size=8, device=torch.device("cpu"))
    assert data.bucketed
    seen = [data.batch(s).y for s in range(130)]
    fresh = TrainingData(listops, listops.options({}), split, seed=3, batch_size=8, device=torch.device("cpu"))
    for s in (129, 7, 125, 0, 64):  # a resumed run asks for steps out of order
        assert torch.equal(fresh.batch(s).y, seen[s])
    epoch = torch.cat(seen[:125])
    assert len(epoch.unique()) == 1000  # every example once per epoch (1000 = 125 x 8)
    assert not torch.equal(torch.cat(seen[125:130]), epoch[:40])  # the next epoch is shuffled anew
    other = TrainingData(listops, listops.options({}), split, seed=4, batch_size=8, device=torch.device("cpu"))
    assert not torch.equal(other.batch(0).y, seen[0])
    plain = TrainingData(Plain(), Plain().options({}), split, seed=3, batch_size=8, device=torch.device("cpu"))
    assert not plain.bucketed
    padded = sum(data.batch(s).x.numel() for s in range(125))
    unbucketed = sum(plain.batch(s).x.numel() for s in range(125))
    assert padded < 0.7 * unbucketed
    batch = data.batch(5)
    assert batch.x.shape[1] == int(batch.lengths.max()) and batch.x.dtype == torch.long


def test_evaluation_in_length_order_gives_the_per_example_accuracy() -> None:
    listops = get_host().tasks.get("listops")
    split = ragged_split(40, seed=1)
    split.y = torch.randint(0, 10, (40,), generator=torch.Generator().manual_seed(0))
    model = tiny_model(listops.spec)
    with torch.no_grad():
        single = [model(split.x[i:i + 1, : split.lengths[i]].long(), split.lengths[i:i + 1]).argmax(-1).item()
                  for i in range(40)]
    expected = sum(int(p == y) for p, y in zip(single, split.y.tolist(), strict=True)) / 40
    assert evaluate(model, split, 7, torch.device("cpu"), "fp32") == expected


def test_listops_run_on_a_generated_set(tmp_path: Path) -> None:
    listops = get_host().tasks.get("listops")
    listops.generate_data(tmp_path / "data", 0, sizes={"train": 12, "val": 4, "test": 4})
    out = tmp_path / "out"
    # smoke reads the small in-memory set unless the cell names a source: its own --task-args win
    code = main(["run", "--task", "listops", "--task-args", "source=generated", "--backbone-args", TINY, "--profile",
                 "smoke", "--device", "cpu", "--output-dir", str(out), "--data-dir", str(tmp_path / "data"), "--steps",
                 "6", "--no-progress"])
    result = json.loads(next(out.rglob("*.json")).read_text())
    assert code == 0 and result["status"] == "ok" and result["metrics"]["test_accuracy"] is not None
    assert result["provenance"]["data"]["train"]["source"] == "generated (LRA algorithm)"
    assert result["provenance"]["data"]["test"]["examples"] == 4


def test_cifar10_run_with_augmentation(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"):
            entry = {"data": rng.integers(0, 256, (6, 3072)).astype(np.uint8), "labels": list(range(6))}
            blob = pickle.dumps(entry, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    data = str(tmp_path / "data")
    assert main(["data", "import", "cifar10", str(archive), "--data-dir", data, "--no-verify"]) == 0
    out = tmp_path / "out"
    code = main(["run", "--task", "cifar10", "--task-args", "val_size=2", "--backbone-args", TINY, "--profile",
                 "smoke", "--device", "cpu", "--output-dir", str(out), "--data-dir", data, "--steps", "4",
                 "--no-progress"])
    result = json.loads(next(out.rglob("*.json")).read_text())
    assert code == 0 and result["status"] == "ok" and result["provenance"]["data"]["test"]["examples"] == 6
    files = result["provenance"]["data"]["test"]["files"]
    assert files["cifar-10-batches-py/test_batch"]["state"] == "unverified"
