"""Objectives: how a task's outputs are trained and scored (``OutputSpec.objective``).

An objective says how many values the output layer emits per prediction, what labels look like, the training
loss, and the metrics; one of them, ``primary``, selects the parameters (validation) and ranks the leaderboard,
in its direction (``higher_is_better``). The built-in ones:

- ``Classification()`` (the default): ``n_classes`` logits per prediction, int64 labels, cross-entropy;
  ``accuracy`` over every prediction, and with several predictions per example ``exact_match`` (every
  prediction of the example right). ``Classification(primary="exact_match")`` ranks by the latter: per-position
  classification scored per sequence.
- ``MultiLabel()``: one logit per label (``n_predictions`` labels), 0/1 labels, binary cross-entropy;
  ``micro_f1`` (primary by default), ``exact_match``, ``label_accuracy``.
- ``Regression()``: one value per prediction, float targets, ``mse`` / ``mae`` / ``huber`` loss;
  ``mse`` (primary by default), ``mae``, ``rmse``. ``normalize=True`` trains on standardised targets (mean and
  standard deviation of the training targets, or ``target_mean`` / ``target_std`` when given) and scores the
  predictions mapped back to the targets' scale.

A task-defined objective subclasses :class:`Objective` (a pydantic model: its fields are its options) and
implements ``width``, ``check_labels``, ``loss``, ``predict`` and ``metrics``; ``LOWER_IS_BETTER`` names its
metrics where lower is better, ``FRACTIONS`` those that are fractions (shown as percentages).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from fpt_bench.api.options import Strict

if TYPE_CHECKING:  # torch is imported where a tensor is met: specs and listings load without it
    import torch

    from fpt_bench.api.specs import OutputSpec


def _shape(t: torch.Tensor) -> str:
    return f"{tuple(t.shape)} {str(t.dtype).removeprefix('torch.')}"


def _label_shapes(n: int, out: OutputSpec) -> list[tuple[int, ...]]:
    return [(n,), (n, 1)] if out.n_predictions == 1 else [(n, out.n_predictions)]


class Objective(Strict):
    """Base class of objectives (see the module docstring). Subclass it for a task-defined loss and metrics."""

    kind: str = Field(description="the objective's name, recorded in results")
    primary: str = Field(description="the metric that selects parameters and ranks results")
    LOWER_IS_BETTER: ClassVar[frozenset[str]] = frozenset()
    FRACTIONS: ClassVar[frozenset[str]] = frozenset()

    @property
    def higher_is_better(self) -> bool:
        return self.primary not in self.LOWER_IS_BETTER

    @property
    def percent(self) -> bool:
        """Whether the primary metric is a fraction in [0, 1] (shown as a percentage)."""
        return self.primary in self.FRACTIONS

    def better(self, value: float, than: float) -> bool:
        """Is ``value`` of the primary metric strictly better than ``than``?"""
        return value > than if self.higher_is_better else value < than

    def validate_output(self, out: OutputSpec) -> None:
        """Raise ValueError when ``out`` does not fit this objective (called when an OutputSpec is made)."""

    def width(self, out: OutputSpec) -> int:
        """Values the output layer emits per prediction."""
        raise NotImplementedError

    def describe(self, out: OutputSpec) -> str:
        return f"{out.n_predictions} x {self.kind}, {self.primary}"

    def chance(self, out: OutputSpec) -> float | None:
        """The primary metric reached without solving the task, when the objective alone says (else None)."""
        return None

    def check_labels(self, y: torch.Tensor, n: int, out: OutputSpec) -> None:
        """Raise ValueError saying what is wrong when ``y`` (labels of ``n`` examples) breaks the contract."""
        raise NotImplementedError

    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The training loss of ``outputs`` (B, n_predictions, width) against labels ``y``: a scalar."""
        raise NotImplementedError

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        """Per example, what ``metrics`` needs (B, ...), computed batch by batch during evaluation."""
        return outputs

    def metrics(self, predictions: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """Every metric over a whole split (``predictions`` of all examples, in order); includes ``primary``."""
        raise NotImplementedError

    def fit(self, targets: torch.Tensor) -> Objective:
        """This objective ready for a cell whose training targets are ``targets`` (default: unchanged)."""
        return self

    def needs_targets(self) -> bool:
        """Whether ``fit`` looks at the training targets (generated tasks then draw a sample of them)."""
        return False


class Classification(Objective):
    kind: Literal["classification"] = "classification"
    primary: Literal["accuracy", "exact_match"] = "accuracy"
    FRACTIONS: ClassVar[frozenset[str]] = frozenset({"accuracy", "exact_match"})

    def validate_output(self, out: OutputSpec) -> None:
        if out.n_classes is None:
            raise ValueError("classification needs n_classes (classes per label)")

    def width(self, out: OutputSpec) -> int:
        return int(out.n_classes)  # type: ignore[arg-type]

    def describe(self, out: OutputSpec) -> str:
        return f"{out.n_predictions} x {out.n_classes}-way ({out.readout.value}), {self.primary}"

    def chance(self, out: OutputSpec) -> float | None:
        return 1.0 / out.n_classes if self.primary == "accuracy" and out.n_classes else None

    def check_labels(self, y: torch.Tensor, n: int, out: OutputSpec) -> None:
        import torch

        expected = _label_shapes(n, out)
        if tuple(y.shape) not in expected or y.dtype != torch.long:
            raise ValueError(f"y is {_shape(y)}; expected {' or '.join(map(str, expected))} int64 labels")
        low, high = int(y.min()), int(y.max())
        if low < 0 or high >= out.n_classes:  # type: ignore[operator]
            raise ValueError(f"labels span {low}..{high}, outside 0..{out.n_classes - 1}")  # type: ignore[operator]

    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        from torch.nn import functional as F

        return F.cross_entropy(outputs.float().flatten(0, 1), y.reshape(-1))

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.argmax(-1)

    def metrics(self, predictions: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        correct = predictions == y.reshape(predictions.shape)
        out = {"accuracy": correct.sum().item() / max(correct.numel(), 1)}
        if correct.dim() > 1 and correct.shape[1] > 1:
            out["exact_match"] = correct.all(dim=1).sum().item() / max(correct.shape[0], 1)
        return out


class MultiLabel(Objective):
    kind: Literal["multi_label"] = "multi_label"
    primary: Literal["micro_f1", "exact_match", "label_accuracy"] = "micro_f1"
    FRACTIONS: ClassVar[frozenset[str]] = frozenset({"micro_f1", "exact_match", "label_accuracy"})

    def validate_output(self, out: OutputSpec) -> None:
        if out.n_classes is not None:
            raise ValueError("multi-label outputs one logit per label: give n_predictions (the number of labels), "
                             "not n_classes")

    def width(self, out: OutputSpec) -> int:
        return 1

    def describe(self, out: OutputSpec) -> str:
        return f"{out.n_predictions} labels, multi-label, {self.primary}"

    def check_labels(self, y: torch.Tensor, n: int, out: OutputSpec) -> None:
        expected = _label_shapes(n, out)
        if tuple(y.shape) not in expected or y.is_complex():
            raise ValueError(f"y is {_shape(y)}; expected {' or '.join(map(str, expected))} 0/1 labels")
        if not bool(((y == 0) | (y == 1)).all()):
            raise ValueError(f"labels must be 0 or 1, got values from {float(y.min()):g} to {float(y.max()):g}")

    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        from torch.nn import functional as F

        logits = outputs.float()[..., 0]
        return F.binary_cross_entropy_with_logits(logits, y.reshape(logits.shape).float())

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs[..., 0] > 0

    def metrics(self, predictions: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        truth = y.reshape(predictions.shape).bool()
        tp = (predictions & truth).sum().item()
        wrong = (predictions != truth).sum().item()  # false positives + false negatives
        return {"micro_f1": 2 * tp / (2 * tp + wrong) if tp + wrong else 1.0,
                "exact_match": (predictions == truth).all(dim=1).sum().item() / max(truth.shape[0], 1),
                "label_accuracy": (truth.numel() - wrong) / max(truth.numel(), 1)}


class Regression(Objective):
    kind: Literal["regression"] = "regression"
    primary: Literal["mse", "mae", "rmse"] = "mse"
    criterion: Literal["mse", "mae", "huber"] = Field(default="mse", description="the training loss")
    normalize: bool = Field(default=False, description="train on standardised targets (scores stay on the "
                                                       "targets' scale)")
    target_mean: float | None = Field(default=None, allow_inf_nan=False,
                                      description="the mean to standardise with (default: the training targets')")
    target_std: float | None = Field(default=None, gt=0, allow_inf_nan=False,
                                     description="the standard deviation to standardise with (default: the "
                                                 "training targets')")
    LOWER_IS_BETTER: ClassVar[frozenset[str]] = frozenset({"mse", "mae", "rmse"})

    def validate_output(self, out: OutputSpec) -> None:
        if out.n_classes is not None:
            raise ValueError("regression predicts one value per prediction: leave n_classes out")

    def width(self, out: OutputSpec) -> int:
        return 1

    def describe(self, out: OutputSpec) -> str:
        norm = ", normalised targets" if self.normalize or self.target_std is not None else ""
        return f"{out.n_predictions} value(s), regression ({self.criterion} loss{norm}), {self.primary}"

    def _scale(self) -> tuple[float, float]:
        return (self.target_mean or 0.0, self.target_std or 1.0)

    def check_labels(self, y: torch.Tensor, n: int, out: OutputSpec) -> None:
        import torch

        expected = _label_shapes(n, out)
        if tuple(y.shape) not in expected or not y.is_floating_point():
            raise ValueError(f"y is {_shape(y)}; expected {' or '.join(map(str, expected))} float targets")
        if not bool(torch.isfinite(y).all()):
            raise ValueError("targets are not all finite (NaN or infinity)")

    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        from torch.nn import functional as F

        mean, std = self._scale()
        values = outputs.float()[..., 0]
        target = (y.reshape(values.shape).float() - mean) / std
        if self.criterion == "mae":
            return F.l1_loss(values, target)
        if self.criterion == "huber":
            return F.huber_loss(values, target)
        return F.mse_loss(values, target)

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        mean, std = self._scale()
        return outputs.float()[..., 0] * std + mean

    def metrics(self, predictions: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        error = predictions.double() - y.reshape(predictions.shape).double()
        mse = error.square().mean().item()
        return {"mse": mse, "mae": error.abs().mean().item(), "rmse": math.sqrt(mse)}

    def needs_targets(self) -> bool:
        return self.normalize and (self.target_mean is None or self.target_std is None)

    def fit(self, targets: torch.Tensor) -> Regression:
        if not self.needs_targets():
            return self
        values = targets.double().reshape(-1)
        std = values.std().item() if values.numel() > 1 else 0.0
        mean = self.target_mean if self.target_mean is not None else values.mean().item()
        return self.model_copy(update={"target_mean": mean,
                                       "target_std": self.target_std or (std if std > 0 else 1.0)})


def objective_record(objective: Objective) -> dict[str, Any]:
    """What a result records of the objective it ran under."""
    return {"kind": objective.kind, **objective.model_dump(mode="json", exclude={"kind"})}
