"""Scores under a task's objective (``fpt_bench.api.objectives``): the objective fitted to a cell's training
targets, learning-curve points, the metrics run-event hooks receive, and the result's metrics.

The primary metric selects the parameters (the best validation value in its direction). A result keeps the
accuracy keys for objectives that report accuracy (classification), and the primary metric in the ``*_score``
keys when it is not accuracy (``fpt_bench.results.schema.Metrics``).
"""

from __future__ import annotations

from typing import Any

from fpt_bench.api.objectives import Objective, objective_record
from fpt_bench.api.seeding import derive_seed, generator

TARGET_SAMPLE = 1024  # training targets a generated task draws to fit target normalisation


def bind(objective: Objective, train: Any) -> Objective:
    """``objective`` fitted to the cell's training targets (target normalisation); ``train``: its TrainingData."""
    if not objective.needs_targets():
        return objective
    if train.split is not None:
        return objective.fit(train.split.y)
    g = generator(derive_seed(train.seed, "targets"), train.device)
    return objective.fit(train.task.sample(TARGET_SAMPLE, g, train.options).y)


def _score_key(objective: Objective) -> bool:
    """Whether the primary metric goes to the ``*_score`` keys (it is not accuracy)."""
    return objective.primary != "accuracy"


def curve_point(step: int, train_loss: float | None, objective: Objective, scores: dict[str, float]
                ) -> dict[str, Any]:
    point: dict[str, Any] = {"step": step, "train_loss": train_loss, "val_accuracy": scores.get("accuracy")}
    if _score_key(objective):
        point["val_score"] = scores[objective.primary]
    return point


def point_value(point: dict[str, Any], objective: Objective) -> float | None:
    """The primary metric of a learning-curve point."""
    return point.get("val_score") if _score_key(objective) else point.get("val_accuracy")


def event_metrics(scores: dict[str, float], train_loss: float | None) -> dict[str, float]:
    """What ``fpt_bench_cell_evaluated`` receives: ``val_<metric>`` for every metric, and ``train_loss``."""
    out = {f"val_{name}": value for name, value in scores.items()}
    return {**out, **({"train_loss": train_loss} if train_loss is not None else {})}


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def split_means(per_split: dict[str, dict[str, float]]) -> dict[str, float]:
    """Each metric's mean over the test splits."""
    names = sorted({k for scores in per_split.values() for k in scores})
    return {k: _mean([s[k] for s in per_split.values() if k in s]) for k in names}  # type: ignore[misc]


def fill_metrics(m: dict[str, Any], objective: Objective, curve: list[dict[str, Any]],
                 best: tuple[float, int] | None, final: dict[str, dict[str, float]] | None,
                 selected: dict[str, dict[str, float]] | None) -> None:
    """The result's metrics in ``m``: ``final``/``selected`` are per test split metrics after the last step and
    with the selected parameters (None: not evaluated, a diverged cell)."""
    score = _score_key(objective)
    m.update(metric=objective.primary, higher_is_better=objective.higher_is_better, percent=objective.percent,
             objective=objective_record(objective))
    last = curve[-1] if curve else {}
    m["val_accuracy_final"] = last.get("val_accuracy")
    m["val_score_final"] = last.get("val_score") if score else None
    m["train_loss"] = next((p["train_loss"] for p in reversed(curve) if p["train_loss"] is not None), None)
    value = None if best is None else best[0]
    m["best_step"] = None if best is None else best[1]
    m["val_accuracy"] = next((p["val_accuracy"] for p in curve if p["step"] == m["best_step"]), None) if score \
        else value
    m["val_score"] = value if score else None
    for key, per_split in (("final", final), ("", selected)):
        means = split_means(per_split or {})
        suffix = f"_{key}" if key else ""
        m[f"test_accuracy{suffix}"] = means.get("accuracy") if per_split is not None else None
        m[f"test_score{suffix}"] = means.get(objective.primary) if per_split is not None and score else None
    chosen = selected or {}
    m["test_metrics"] = split_means(chosen)
    m["test_splits"] = {name: scores[objective.primary] for name, scores in chosen.items()} if len(chosen) > 1 else {}

