"""Results that prove themselves: what a result file states must agree with itself, and a published cell counts
each seed once.

What can be cross-checked inside one result (the runner writes every one of these relations; a hand-edited or
forged number breaks at least one of them unless it was forged consistently everywhere -- ``fpt-bench verify``
is what reruns a cell):

- every number is finite (a NaN or infinity anywhere refuses the file);
- the learning curve's steps are multiples of ``hparams.eval_every`` (or the last step), strictly increasing and
  within the steps run; an ``ok`` result's curve is exactly every evaluation up to ``hparams.steps`` (it covers
  the budget, its last point is the last step);
- the primary metric (``metrics.metric``: accuracy, or the ``*_score`` keys for another metric):
  ``val_accuracy``/``val_score`` is the curve's best value in the metric's direction and ``best_step`` the first
  step reaching it; ``val_*_final`` is the last point's value; ``train_loss`` the last training loss the curve
  records; ``metrics.metric`` is the recorded objective's primary metric;
- ``test_accuracy``/``test_score`` is the mean of ``test_splits`` when a task has several (and ``test_splits`` is
  empty or has several); when the selected step is the last one, it equals its ``*_final`` (one test pass serves
  both); an ``ok`` result has every value of its primary metric (a ``failed`` one's numbers are never counted);
- ``provenance.saved_backbone`` is a plain file name (``*.backbone.safetensors``) in the result's folder.

Test accuracies at other steps are not in the curve (the test split is evaluated at the end only), so a forged
``test_accuracy`` of a cell whose best step is not the last is caught only by rerunning it.

One result per (cell, seed): two results whose options differ only in spelling -- a default written out, say --
are the same experiment. :func:`cell_key` normalises task, backbone and policy options against each component's
``Options`` (defaults filled in) and the hyperparameters against ``TrainHParams``.
"""

from __future__ import annotations

import json
import math
from typing import Any

from pydantic import BaseModel

from fpt_bench.api.backbone_checkpoint import SUFFIX
from fpt_bench.infra.safe_read import is_plain_name
from fpt_bench.results.schema import CellResult

TOLERANCE = 1e-9  # a mean of floats, recomputed


def non_finite(value: Any, where: str = "") -> list[str]:
    """Paths of the non-finite floats in ``value`` (a result's ``model_dump()``)."""
    if isinstance(value, float):
        return [] if math.isfinite(value) else [where or "(value)"]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in non_finite(v, f"{where}.{k}" if where else str(k))]
    if isinstance(value, list | tuple):
        return [p for i, v in enumerate(value) for p in non_finite(v, f"{where}[{i}]")]
    return []


def consistency_problems(result: CellResult) -> list[str]:
    """What in ``result`` contradicts the rest of it, beyond the schema (empty when consistent)."""
    problems: list[str] = []
    bad = non_finite(result.model_dump())
    if bad:
        problems.append(f"numbers that are not finite: {', '.join(bad[:5])}")
    m, hp = result.metrics, result.cell.hparams
    steps, every = hp.get("steps"), hp.get("eval_every")
    points = [p.step for p in m.curve]
    if isinstance(steps, int) and isinstance(every, int) and every > 0:
        off = [s for s in points if s % every and s != steps]
        if off:
            problems.append(f"learning curve steps {off[:3]} are not evaluation steps (every {every}, and {steps})")
        count = steps // every + (1 if steps % every else 0)  # evaluations up to the budget (never listed: a
        expected = [min((i + 1) * every, steps) for i in range(len(points))]  # forged budget may be 10^18 steps)
        if result.status == "ok" and (len(points) != count or points != expected):
            problems.append(f"an ok result's learning curve must have every evaluation up to step {steps} "
                            f"({count} points), it has {len(points)}"
                            + (f" ending at step {points[-1]}" if points else ""))
    problems += _metric_relations(result)
    name = result.provenance.saved_backbone
    if name is not None and not (is_plain_name(name) and name.endswith(SUFFIX)):
        problems.append(f"provenance.saved_backbone {name!r} is not a file name in the result's folder")
    return problems


def _metric_relations(result: CellResult) -> list[str]:
    m = result.metrics
    problems = []
    losses = [p.train_loss for p in m.curve if p.train_loss is not None]
    if losses and m.train_loss != losses[-1]:
        problems.append("metrics.train_loss is not the last training loss of the learning curve")
    if len(m.test_splits) == 1:
        problems.append("metrics.test_splits has one split (a single test split is reported as test_accuracy)")
    key = "accuracy" if m.metric == "accuracy" else "score"
    if m.objective and m.objective.get("primary") != m.metric:
        problems.append(f"metrics.metric {m.metric!r} is not the objective's primary metric "
                        f"{m.objective.get('primary')!r}")
    if result.status == "ok":
        lacking = [k for k in (f"test_{key}", f"test_{key}_final", f"val_{key}", f"val_{key}_final", "best_step")
                   if getattr(m, k) is None]
        test, final = getattr(m, f"test_{key}"), getattr(m, f"test_{key}_final")
        if lacking:
            problems.append(f"an ok result lacks {', '.join(lacking)}")
        elif m.best_step == result.cell.hparams.get("steps") and abs(test - final) > 0:
            problems.append(f"metrics.test_{key} ({test}) differs from test_{key}_final ({final}), though the "
                            f"selected step is the last one (one test pass gives both)")
    return problems


# ---------------------------------------------------------------------------------------- one per seed
def _options(registry: Any, name: str, args: dict[str, Any]) -> Any:
    """``args`` with the component's defaults filled in (as given when the component is not installed here or
    refuses them: then only identical spellings match)."""
    try:
        component = registry.get(name)
        options = component.options(dict(args))
    except Exception:  # noqa: BLE001 - unknown component or bad options: compare the arguments as given
        return args
    return options.model_dump(mode="json") if isinstance(options, BaseModel) else args


def cell_key(result: CellResult, host: Any = None) -> str:
    """What makes two results the same experiment and seed, with options normalised (see the module docstring).
    ``host``: the plugins whose ``Options`` normalise (default: this process's)."""
    from fpt_bench.api.hparams import TrainHParams

    if host is None:
        from fpt_bench.host.manager import get_host

        host = get_host()
    c = result.cell
    try:
        hparams: Any = TrainHParams(**c.hparams).model_dump(mode="json")
    except Exception:  # noqa: BLE001 - the validator reports bad hyperparameters; here they are only compared
        hparams = c.hparams
    # the harness reads a missing protocol as "default" (CellInfo.protocol): spelling it out changes nothing, even
    # for a task whose options do not list it
    task_args = {k: v for k, v in c.task_args.items() if not (k == "protocol" and v == "default")}
    key = {"task": c.task, "task_version": c.task_version, "protocol": c.protocol,
           "task_args": _options(host.tasks, c.task, task_args),
           "backbone": c.backbone, "backbone_args": _options(host.backbones, c.backbone, c.backbone_args),
           "policy": c.policy, "policy_args": _options(host.policies, c.policy, c.policy_args),
           "profile": c.profile, "seed": c.seed, "hparams": hparams}
    return json.dumps(key, sort_keys=True, separators=(",", ":"), default=str)


def options_given(result: CellResult) -> int:
    """How many options a result's cell spells out (of twins, the one with fewest is kept)."""
    c = result.cell
    return len(c.task_args) + len(c.backbone_args) + len(c.policy_args)
