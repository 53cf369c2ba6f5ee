"""Whether a resume checkpoint fits the cell it would resume (``Trainer._resume``).

A checkpoint lies next to a result and may have been damaged, planted or left by another version. It loads with
``torch.load(weights_only=True)`` (no code runs), then must match :class:`ResumeState` (every key, with its type)
and fit the cell: its step is one the cell checkpoints at and before the end of the budget, its learning curve
has exactly the evaluations done by then (steps that are multiples of ``eval_every``, accuracies in [0, 1]), the
best point is the curve's best (in the direction of the task's primary metric), the parameters are the model's
trainable ones with their shapes, and the optimizer state is Adam's for those parameters with the cell's
hyperparameters. Anything else is ignored with a warning and the cell starts over: a checkpoint only ever saves
time, so refusing one costs nothing but time.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fpt_bench.api.errors import UserError
from fpt_bench.api.hparams import TrainHParams
from fpt_bench.infra.safe_read import open_regular

Tensors = dict[str, torch.Tensor]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, arbitrary_types_allowed=True)


class Point(_Strict):
    step: int = Field(gt=0)
    train_loss: float | None
    val_accuracy: float | None = Field(ge=0, le=1, allow_inf_nan=False)
    val_score: float | None = Field(default=None, allow_inf_nan=False)  # the primary metric when not accuracy

    def value(self) -> float | None:
        return self.val_score if self.val_score is not None else self.val_accuracy


class Best(_Strict):
    val: float = Field(allow_inf_nan=False)
    step: int = Field(gt=0)
    params: Tensors


class ResumeState(_Strict):
    """What ``Trainer._save`` writes."""

    version: int
    config_hash: str
    step: int = Field(gt=0)
    params: Tensors
    optimizer: dict[str, Any]
    best: Best | None
    curve: list[Point]
    loss_sum: float = Field(allow_inf_nan=False)
    loss_n: int = Field(ge=0)
    train_seconds: float = Field(ge=0, allow_inf_nan=False)
    eval_seconds: float = Field(ge=0, allow_inf_nan=False)
    train_samples: int = Field(ge=0)
    train_tokens: int = Field(ge=0)
    eval_samples: int = Field(ge=0)
    grad_chunks: int = Field(ge=1)
    train_flops: float = Field(ge=0, allow_inf_nan=False)
    threads: int | None = Field(default=None, ge=1, le=4096)  # CPU threads it was computed with (older: absent)


def usable_state(path: Path | None, *, version: int, config_hash: str, hparams: TrainHParams,
                 trainable: Tensors, optimizer: torch.optim.Optimizer,
                 higher_is_better: bool = True) -> dict[str, Any] | None:
    """The checkpoint at ``path`` as a dict when it fits the cell (see the module docstring); None when there is
    none, or (with a warning on stderr) when it does not fit. ``higher_is_better``: the direction of the task's
    primary metric (the best point is the curve's best in it)."""
    if path is None or not path.exists():
        return None
    try:
        with open_regular(path, "checkpoint") as handle:
            raw = torch.load(handle, map_location="cpu", weights_only=True)
    except UserError as exc:
        return _ignore(path, str(exc).removeprefix(f"{path}: "))
    except Exception as exc:  # noqa: BLE001 - unreadable (cut short, a payload weights_only refuses): start over
        first = (str(exc).splitlines() or [""])[0][:200]
        return _ignore(path, f"it does not load ({type(exc).__name__}: {first})")
    if not isinstance(raw, dict):
        return _ignore(path, f"it holds a {type(raw).__name__}, not a checkpoint")
    if raw.get("version") != version or raw.get("config_hash") != config_hash:
        return _ignore(path, "it belongs to another cell or another version of fpt-bench")
    try:
        state = ResumeState.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        return _ignore(path, f"{'.'.join(map(str, first['loc']))}: {first['msg']}")
    problems = fit_problems(state, raw["optimizer"], hparams, trainable, optimizer, higher_is_better)
    if problems:
        return _ignore(path, "; ".join(problems[:3]))
    return raw


def _ignore(path: Path, why: str) -> None:
    print(f"fpt-bench: warning: ignoring the checkpoint {path} ({why}); the cell starts over", file=sys.stderr,
          flush=True)
    return None


def fit_problems(state: ResumeState, saved_optimizer: dict[str, Any], hp: TrainHParams, trainable: Tensors,
                 optimizer: torch.optim.Optimizer, higher_is_better: bool = True) -> list[str]:
    """Everything in ``state`` that does not fit the cell (empty when it fits)."""
    step = state.step
    problems: list[str] = []
    if step >= hp.steps or not hp.checkpoint_every or step % hp.checkpoint_every:
        problems.append(f"step {step} is not a checkpoint step of this cell ({hp.steps} steps, a checkpoint every "
                        f"{hp.checkpoint_every})")
    count = step // hp.eval_every  # evaluations done by then (counted, not listed: a forged step may be huge)
    if len(state.curve) != count or [p.step for p in state.curve] != [(i + 1) * hp.eval_every for i in range(count)]:
        problems.append(f"its learning curve has {len(state.curve)} point(s) but {count} evaluation(s) come "
                        f"before step {step} (one every {hp.eval_every})")
    if any(p.train_loss is not None and not math.isfinite(p.train_loss) for p in state.curve):
        problems.append("a training loss in its curve is not finite")
    last = count * hp.eval_every
    if state.loss_n != step - last:
        problems.append(f"loss_n is {state.loss_n}, but {step - last} step(s) follow the last evaluation")
    problems += _best_problems(state, trainable, higher_is_better)
    problems += tensor_problems("params", state.params, trainable)
    if state.grad_chunks % hp.grad_accum or state.grad_chunks > hp.batch_size:
        problems.append(f"grad_chunks {state.grad_chunks} is not a back-off of grad_accum {hp.grad_accum}")
    problems += optimizer_problems(saved_optimizer, optimizer, trainable, step)
    return problems


def _best_problems(state: ResumeState, trainable: Tensors, higher_is_better: bool) -> list[str]:
    if not state.curve:
        return [] if state.best is None else ["it has a best point but no learning curve"]
    if state.best is None:
        return ["it has a learning curve but no best point"]
    values = [p.value() for p in state.curve]
    if any(v is None for v in values):
        return ["a point of its learning curve has no validation value"]
    top = (max if higher_is_better else min)(values)  # type: ignore[type-var]
    first = next(p.step for p, v in zip(state.curve, values, strict=True) if v == top)
    problems = []
    if state.best.val != top or state.best.step != first:
        problems.append(f"its best point ({state.best.val} at step {state.best.step}) is not its curve's "
                        f"({top} at step {first})")
    return problems + tensor_problems("best.params", state.best.params, trainable)


def tensor_problems(what: str, tensors: Tensors, trainable: Tensors) -> list[str]:
    """``tensors`` are exactly the trainable parameters: names, shapes, dtypes, finite values."""
    if set(tensors) != set(trainable):
        extra, lacking = sorted(set(tensors) - set(trainable)), sorted(set(trainable) - set(tensors))
        return [f"{what} are not the model's trainable parameters (unknown {extra[:3]}, lacking {lacking[:3]})"]
    for name, value in tensors.items():
        param = trainable[name]
        if value.shape != param.shape or value.dtype != param.dtype:
            return [f"{what}[{name}] is {value.dtype} {list(value.shape)}, the parameter {param.dtype} "
                    f"{list(param.shape)}"]
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            return [f"{what}[{name}] is not finite"]
    return []


def optimizer_problems(saved: dict[str, Any], optimizer: torch.optim.Optimizer, trainable: Tensors,
                       step: int) -> list[str]:
    """``saved`` is an Adam state of this optimizer's parameters, with the cell's settings, ``step`` steps in."""
    fresh = optimizer.state_dict()
    groups, state = saved.get("param_groups"), saved.get("state")
    if set(saved) != {"state", "param_groups"} or not isinstance(groups, list) or not isinstance(state, dict):
        return ["its optimizer state is not an optimizer's state_dict"]
    if len(groups) != len(fresh["param_groups"]):
        return [f"its optimizer has {len(groups)} parameter group(s), this cell's {len(fresh['param_groups'])}"]
    shapes: dict[int, torch.Tensor] = {}
    amsgrad = False
    params = list(trainable.values())
    for mine, theirs in zip(fresh["param_groups"], groups, strict=True):
        if not isinstance(theirs, dict) or theirs.get("params") != mine["params"]:
            return ["its optimizer's parameter groups do not list this cell's parameters"]
        changed = sorted(k for k in set(mine) | set(theirs) if k != "params" and theirs.get(k) != mine.get(k))
        if changed:  # the cell's hyperparameters (lr, betas, ...) and this device's implementation (fused, ...)
            return [f"its optimizer settings differ from the cell's ({', '.join(map(str, changed[:5]))})"]
        amsgrad = bool(mine.get("amsgrad"))
        shapes.update({index: params[index] for index in mine["params"] if index < len(params)})
    keys = {"step", "exp_avg", "exp_avg_sq", *(("max_exp_avg_sq",) if amsgrad else ())}
    for index, entry in state.items():
        if index not in shapes or not isinstance(entry, dict):
            return [f"its optimizer state names parameter {index!r}, which this cell does not have"]
        if set(entry) != keys:
            return [f"optimizer state {index} holds {sorted(map(str, entry))}, Adam's is {sorted(keys)}"]
        for key, value in entry.items():
            problem = _state_problem(key, value, shapes[index], step)
            if problem:
                return [f"optimizer state {index}.{key} {problem}"]
    return []


def _state_problem(key: str, value: Any, param: torch.Tensor, step: int) -> str:
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        return "is not a float tensor"
    if not bool(torch.isfinite(value).all()):
        return "is not finite"
    if key == "step":
        if value.shape != () or value.dtype != torch.float32 or not 1 <= float(value) <= step:
            return f"is {value.dtype} {value.tolist()}, not a count up to {step}"
    elif value.shape != param.shape or value.dtype != param.dtype:
        return f"is {value.dtype} {list(value.shape)}, the parameter {param.dtype} {list(param.shape)}"
    return ""

