"""Objectives beyond single-label classification: multi-label, per-position classification scored per sequence,
regression (with target normalisation) and a task-defined objective; each task's primary metric and its direction
select the parameters, the result records it, the checks accept it and the leaderboard ranks and shows it."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
import torch
from conftest import TINY, result_files

from fpt_bench import (
    Batch,
    Classification,
    Continuous,
    MultiLabel,
    Objective,
    OutputSpec,
    Readout,
    Regression,
    SplitData,
    Task,
    TaskSpec,
    hookimpl,
)
from fpt_bench.cli import main
from fpt_bench.host import manager
from fpt_bench.leaderboard.collect import build_table, load_results
from fpt_bench.leaderboard.render import render
from fpt_bench.leaderboard.validate import check_result_file
from fpt_bench.results.store import read_result

BASE = ["--backbone-args", TINY, "--profile", "smoke", "--device", "cpu", "--no-progress"]


# ----------------------------------------------------------------------------------------- the objectives
def test_classification_metrics_count_every_prediction_and_whole_sequences() -> None:
    out = OutputSpec(n_classes=3, n_predictions=2, readout="last_k", k=2,
                     objective=Classification(primary="exact_match"))
    predictions = torch.tensor([[0, 1], [2, 2], [1, 0]])
    labels = torch.tensor([[0, 1], [2, 1], [0, 0]])
    metrics = out.objective.metrics(predictions, labels)
    assert metrics == {"accuracy": 4 / 6, "exact_match": 1 / 3}
    assert out.objective.higher_is_better and out.objective.percent
    assert out.width == 3 and out.objective.chance(out) is None  # chance is per prediction, not per sequence


def test_multi_label_metrics() -> None:
    objective = MultiLabel()
    predictions = torch.tensor([[True, False, True], [False, False, True]])
    truth = torch.tensor([[1, 0, 1], [1, 0, 0]])  # 2 + 0 true positives, 1 false negative, 1 false positive
    assert objective.metrics(predictions, truth) == {"micro_f1": 4 / 6, "exact_match": 0.5, "label_accuracy": 4 / 6}
    logits = torch.tensor([[[2.0], [-1.0], [0.5]]])
    assert objective.predict(logits).tolist() == [[True, False, True]]
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits[..., 0], torch.tensor([[1.0, 0, 1]]))
    assert objective.loss(logits, torch.tensor([[1, 0, 1]])).item() == pytest.approx(expected.item())


def test_regression_normalises_targets_and_scores_on_their_scale() -> None:
    objective = Regression(normalize=True).fit(torch.tensor([1.0, 3.0, 5.0, 7.0]))
    assert objective.target_mean == 4.0 and objective.target_std == pytest.approx(math.sqrt(20 / 3))
    std = objective.target_std
    outputs = torch.tensor([[[0.0]], [[1.0]]])  # standardised predictions: the mean, and one std above it
    assert objective.predict(outputs).reshape(-1).tolist() == pytest.approx([4.0, 4.0 + std])
    y = torch.tensor([4.0, 4.0])
    assert objective.loss(outputs, y).item() == pytest.approx(0.5)  # on the standardised scale
    metrics = objective.metrics(objective.predict(outputs), y)
    assert metrics == pytest.approx({"mse": std**2 / 2, "mae": std / 2, "rmse": std / math.sqrt(2)})
    assert not objective.higher_is_better and not objective.percent
    assert objective.better(0.1, 0.2) and not objective.better(0.2, 0.1)
    given = Regression(normalize=True, target_mean=1.0, target_std=2.0)
    assert given.fit(torch.tensor([100.0, 200.0])) is given  # stated statistics win
    assert Regression(criterion="mae").loss(torch.tensor([[[1.0]]]), torch.tensor([3.0])).item() == 2.0


def test_an_output_spec_refuses_what_its_objective_cannot_use() -> None:
    with pytest.raises(ValueError, match="classification needs n_classes"):
        OutputSpec()
    with pytest.raises(ValueError, match="regression predicts one value per prediction: leave n_classes out"):
        OutputSpec(n_classes=2, objective=Regression())
    with pytest.raises(ValueError, match="multi-label outputs one logit per label"):
        OutputSpec(n_classes=2, n_predictions=4, objective=MultiLabel())
    assert OutputSpec(n_classes=5).objective == Classification()  # the default: today's tasks are unchanged


def test_labels_are_checked_against_the_objective() -> None:
    reg = OutputSpec(objective=Regression())
    with pytest.raises(ValueError, match=r"y is \(4,\) int64; expected \(4,\) or \(4, 1\) float targets"):
        reg.objective.check_labels(torch.zeros(4, dtype=torch.long), 4, reg)
    multi = OutputSpec(n_predictions=3, objective=MultiLabel())
    with pytest.raises(ValueError, match="labels must be 0 or 1, got values from 0 to 2"):
        multi.objective.check_labels(torch.tensor([[0, 1, 2]]), 1, multi)
    multi.objective.check_labels(torch.tensor([[0.0, 1.0, 1.0]]), 1, multi)


# ------------------------------------------------------------------------------------ tasks that use them
def _bits(generator: torch.Generator, n: int, length: int) -> torch.Tensor:
    return torch.randint(0, 2, (n, length), generator=generator, device=generator.device)


class _Generated(Task):
    def load(self, split: str, options: Any, data_dir: Path) -> SplitData:
        batch = self.sample(48, torch.Generator().manual_seed(5 if split == "val" else 6), options)
        return SplitData(batch.x, batch.y)


class BitsOn(_Generated):
    """Multi-label: which of the 4 bits are on."""

    spec = TaskSpec(name="bits_on", description="which bits are on", input=Continuous(dim=1), max_len=4,
                    output=OutputSpec(n_predictions=4, objective=MultiLabel()), generated=True)

    def sample(self, batch_size, generator, options):  # type: ignore[no-untyped-def]
        bits = _bits(generator, batch_size, 4)
        return Batch(bits.float()[..., None], bits)


class Copy(_Generated):
    """Per-position classification scored per sequence: copy 3 bits, read at the last 3 positions."""

    spec = TaskSpec(name="copy3", description="copy three bits", input=Continuous(dim=1), max_len=3,
                    output=OutputSpec(n_classes=2, n_predictions=3, readout=Readout.LAST_K, k=3,
                                      objective=Classification(primary="exact_match")), generated=True)

    def sample(self, batch_size, generator, options):  # type: ignore[no-untyped-def]
        bits = _bits(generator, batch_size, 3)
        return Batch(bits.float()[..., None], bits)


class Count(_Generated):
    """Regression: how many of 6 bits are on."""

    spec = TaskSpec(name="count_on", description="count the bits that are on", input=Continuous(dim=1), max_len=6,
                    output=OutputSpec(objective=Regression(normalize=True)), generated=True)
    raise_at: ClassVar[int | None] = None  # a sample() call that raises (to leave a checkpoint behind)
    calls: ClassVar[int] = 0

    def sample(self, batch_size, generator, options):  # type: ignore[no-untyped-def]
        type(self).calls += 1
        if type(self).calls == type(self).raise_at:
            raise RuntimeError("stopped on purpose")
        bits = _bits(generator, batch_size, 6)
        return Batch(bits.float()[..., None], bits.sum(1).float())


class WithinHalf(Objective):
    """A task-defined objective: MSE loss, scored by the share of predictions within 0.5 of the target."""

    kind: Literal["within_half"] = "within_half"
    primary: Literal["within_half"] = "within_half"
    FRACTIONS: ClassVar[frozenset[str]] = frozenset({"within_half"})

    def width(self, out: OutputSpec) -> int:
        return 1

    def check_labels(self, y: torch.Tensor, n: int, out: OutputSpec) -> None:
        if tuple(y.shape) != (n,) or not y.is_floating_point():
            raise ValueError(f"y must be ({n},) floats")

    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.mse_loss(outputs.float()[..., 0], y.reshape(-1, 1).float())

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.float()[..., 0]

    def metrics(self, predictions: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        close = (predictions - y.reshape(predictions.shape)).abs() < 0.5
        return {"within_half": close.float().mean().item()}


class CountClose(Count):
    spec = Count.spec.model_copy(update={"name": "count_close", "output": OutputSpec(objective=WithinHalf())})


class Objectives:
    @hookimpl
    def fpt_bench_register_tasks(self, registry):  # type: ignore[no-untyped-def]
        for task in (BitsOn(), Copy(), Count(), CountClose()):
            registry.add(task)


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> manager.Host:
    monkeypatch.setattr(manager, "_HOST", None)
    host = manager.get_host()
    host.register(Objectives(), "objectives")
    Count.calls, Count.raise_at = 0, None
    return host


def run(out: Path, task: str, *extra: str, code: int = 0) -> dict[str, Any]:
    assert main(["run", "--task", task, *BASE, "--output-dir", str(out), "--steps", "6", "--eval-every", "2",
                 *extra]) == code
    results = [json.loads(p.read_text()) for p in result_files(out) if p.suffix == ".json"]
    return results[-1]


@pytest.mark.parametrize(("task", "metric", "higher", "keys"), [
    ("bits_on", "micro_f1", True, {"micro_f1", "exact_match", "label_accuracy"}),
    ("copy3", "exact_match", True, {"accuracy", "exact_match"}),
    ("count_on", "mse", False, {"mse", "mae", "rmse"}),
    ("count_close", "within_half", True, {"within_half"}),
])
def test_each_objective_runs_a_cell_selected_by_its_primary_metric(host, tmp_path: Path, task: str, metric: str,
                                                                   higher: bool, keys: set[str]) -> None:
    data = run(tmp_path, task)
    m = data["metrics"]
    assert data["status"] == "ok", data["error"]
    assert (m["metric"], m["higher_is_better"], set(m["test_metrics"])) == (metric, higher, keys)
    assert m["objective"]["primary"] == metric and m["test_score"] == m["test_metrics"][metric]
    values = [p["val_score"] for p in m["curve"]]
    best = (max if higher else min)(values)
    assert m["val_score"] == best and m["best_step"] == m["curve"][values.index(best)]["step"]
    assert (m["test_accuracy"] is None) == ("accuracy" not in keys)
    check_result_file(next(p for p in result_files(tmp_path)))  # the leaderboard's checks accept it


def test_regression_records_its_fitted_normalisation(host, tmp_path: Path) -> None:
    m = run(tmp_path, "count_on")["metrics"]
    # the mean and std of 1024 sampled counts of 6 fair bits: near 3 and sqrt(1.5)
    assert m["objective"]["normalize"] and abs(m["objective"]["target_mean"] - 3) < 0.15
    assert abs(m["objective"]["target_std"] - math.sqrt(1.5)) < 0.1


def test_a_regression_cell_resumes_from_its_checkpoint(host, tmp_path: Path) -> None:
    Count.raise_at = 7  # calls: load val, load test, the normalisation's sample, the contract check's, steps 1-3
    data = run(tmp_path, "count_on", "--checkpoint-every", "2", code=1)  # a failed cell: exit code 1
    assert data["status"] == "failed" and "stopped on purpose" in data["error"]
    Count.raise_at = None
    again = run(tmp_path, "count_on", "--checkpoint-every", "2")
    assert again["status"] == "ok" and again["timing"]["resumed_from_step"] == 2


def test_a_forged_regression_result_is_refused(host, tmp_path: Path) -> None:
    run(tmp_path, "count_on")
    [path] = result_files(tmp_path)
    data = json.loads(path.read_text())
    worst = max(p["val_score"] for p in data["metrics"]["curve"])
    if worst == data["metrics"]["val_score"]:
        pytest.skip("the curve is flat")  # never with these seeds; kept so the check below means something
    data["metrics"]["val_score"] = worst
    path.write_text(json.dumps(data))
    with pytest.raises(Exception, match=r"metrics.val_score/best_step .* are not the best point"):
        check_result_file(path)


def test_verify_reruns_a_regression_and_compares_its_metric(host, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from fpt_bench.cells.rerun import _numbers, compare

    run(tmp_path, "count_on")
    [path] = [p for p in result_files(tmp_path) if p.suffix == ".json"]
    assert main(["verify", str(path), "--no-record"]) == 0, capsys.readouterr()  # bit for bit, MSE and curve too
    recorded = read_result(path)
    m = recorded.metrics
    forged = recorded.model_copy(update={"metrics": m.model_copy(update={
        "test_score": m.test_score * 1.5, "test_metrics": {**m.test_metrics, "mse": m.test_score * 1.5}})})
    found = compare(forged, recorded)
    assert [d.split(":")[0] for d in found.differences] == ["test_metrics.mse", "test_score"]
    cpu_result = compare(recorded, recorded)
    assert cpu_result.differences == [] and cpu_result.exact
    # the scores a rerun is held to: the primary metric (final and selected), every metric, each curve point's
    assert {"test_score", "test_score_final", "val_score", "val_score_final", "test_metrics.mae",
            "curve[0].val_score"} <= set(_numbers(recorded))


def test_the_leaderboard_ranks_a_regression_by_its_metric(host, tmp_path: Path) -> None:
    for lr in ("1e-4", "3e-3"):
        run(tmp_path / lr, "count_on", "--lr", lr)
    results, refused = load_results([tmp_path])
    assert refused == []
    table = build_table(results)
    [col] = table.columns
    assert (col.metric, col.higher_is_better, col.percent) == ("mse", False, False)
    [stat] = table.cells.values()
    assert stat.val_mean == min(stat.lr_candidates.values())  # the lower validation MSE wins
    chosen = next(r.result for r in results if r.result.cell.hparams["lr"] == stat.lr)
    assert stat.mean == chosen.metrics.test_score  # shown as is, not in %
    text = render(table, "github")
    assert "count\\_on \\[v1, default, mse ↓\\]" in text
    assert f"{stat.mean:.4g} (n=1)" in text


def test_old_results_keep_their_shape(tmp_path: Path) -> None:
    """A committed result (written before objectives) reads as accuracy, its primary metric."""
    from fpt_bench.results.schema import primary_value

    committed = sorted((Path(__file__).resolve().parent.parent / "leaderboard" / "results").rglob("*.json"))[0]
    result = read_result(committed)
    assert result.metrics.metric == "accuracy" and result.metrics.test_score is None
    assert primary_value(result.metrics) == result.metrics.test_accuracy
