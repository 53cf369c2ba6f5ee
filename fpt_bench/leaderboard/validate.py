"""Checks on result files before they are trusted: the schema (through ``read_result``) and their provenance.

A result file may come from anywhere (``fpt-bench leaderboard --add``). Beyond the schema, its parts must agree:
the config hash recorded in it must be the hash of the cell config it states, the seeds must derive from the cell
seed, and the metrics must be consistent with the learning curve. Each failed check is named in the refusal.
"""

from __future__ import annotations

import math
from pathlib import Path

from pydantic import ValidationError

from fpt_bench.api.cell import CellConfig
from fpt_bench.api.errors import CorruptFileError
from fpt_bench.api.hparams import TrainHParams
from fpt_bench.api.options import brief_validation_error
from fpt_bench.api.seeding import derive_seed
from fpt_bench.leaderboard.consistency import consistency_problems
from fpt_bench.results.schema import CellResult, primary_value
from fpt_bench.results.store import read_result

MAX_BYTES = 5_000_000  # a result file is a few kB; a larger one is not a result file


def check_result_file(path: Path) -> CellResult:
    """Read ``path`` and return its result, or raise CorruptFileError saying exactly why it is refused."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise CorruptFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if size > MAX_BYTES:
        raise CorruptFileError(f"{path}: {size} bytes; a result file is under {MAX_BYTES} bytes")
    result = read_result(path)
    problems = provenance_problems(result)
    if problems:
        raise CorruptFileError(f"{path}: refused: {'; '.join(problems)}")
    return result


def cell_config(result: CellResult) -> CellConfig:
    """The cell config a result states (raises ValidationError when its hyperparameters are not valid)."""
    c = result.cell
    return CellConfig(task=c.task, task_args=c.task_args, backbone=c.backbone, backbone_args=c.backbone_args,
                      policy=c.policy, policy_args=c.policy_args, seed=c.seed, profile=c.profile,
                      hparams=TrainHParams(**c.hparams))


def provenance_problems(result: CellResult) -> list[str]:
    """Everything in ``result`` that contradicts the rest of it (empty when consistent)."""
    problems: list[str] = []
    cell, prov = result.cell, result.provenance
    try:
        expected = cell_config(result).config_hash()
        if prov.config_hash != expected:
            problems.append(f"provenance.config_hash is {prov.config_hash!r} but the cell config hashes to "
                            f"{expected!r} (the config or the hash was edited after the run)")
    except ValidationError as exc:
        problems.append(f"cell.hparams are not valid hyperparameters ({brief_validation_error(exc)})")
    except (ValueError, RecursionError) as exc:  # e.g. options nested hundreds deep: pydantic will not serialise
        problems.append(f"the cell config cannot be hashed ({exc})")
    seeds = {"cell": cell.seed, "python": derive_seed(cell.seed, "python"),
             "numpy": derive_seed(cell.seed, "numpy") % 2**32, "torch": derive_seed(cell.seed, "torch"),
             "data": derive_seed(cell.seed, "data")}
    wrong = sorted(k for k, v in seeds.items() if prov.seeds.get(k) != v)
    if wrong:
        problems.append(f"provenance.seeds ({', '.join(wrong)}) do not derive from cell seed {cell.seed}")
    protocol = str(cell.task_args.get("protocol", "default"))
    if cell.protocol != protocol:
        problems.append(f"cell.protocol is {cell.protocol!r} but task_args say {protocol!r}")
    problems += _metric_problems(result)
    problems += consistency_problems(result)  # every number finite, the curve covers the budget, ...
    if result.status == "failed" and not result.error:
        problems.append("status is 'failed' but no error is recorded")
    p = result.parameters
    if p is not None and (p.trainable > p.total or not math.isclose(p.trainable_fraction, p.trainable / max(p.total, 1),
                                                                   rel_tol=1e-6, abs_tol=1e-12)):
        problems.append("parameters: trainable count and fraction disagree with the total")
    return problems


def _metric_problems(result: CellResult) -> list[str]:
    m = result.metrics
    problems = []
    values = {"test_accuracy": m.test_accuracy, "test_accuracy_final": m.test_accuracy_final,
              "val_accuracy": m.val_accuracy, "val_accuracy_final": m.val_accuracy_final,
              **({f"test_splits.{k}": v for k, v in m.test_splits.items()} if m.metric == "accuracy" else {}),
              **{f"curve[{i}].val_accuracy": p.val_accuracy for i, p in enumerate(m.curve)}}
    bad = [k for k, v in values.items() if v is not None and not (math.isfinite(v) and 0 <= v <= 1)]
    if bad:
        problems.append(f"accuracies outside [0, 1]: {', '.join(bad[:5])}")
    steps = [p.step for p in m.curve]
    if any(b <= a for a, b in zip(steps, steps[1:], strict=False)) or any(s > result.timing.steps for s in steps):
        problems.append("the learning curve's steps are not increasing within the steps run")
    if result.status == "ok" and result.timing.steps != result.cell.hparams.get("steps"):
        problems.append(f"status is 'ok' after {result.timing.steps} steps, but the cell asks for "
                        f"{result.cell.hparams.get('steps')}")
    return problems + _primary_problems(result)


def _primary_problems(result: CellResult) -> list[str]:
    """The primary metric (accuracy, or the ``*_score`` keys): selected at the curve's best point in its
    direction, its final value the curve's last, the test value the mean of the test splits'."""
    m = result.metrics
    problems = []
    key = "accuracy" if m.metric == "accuracy" else "score"
    vals = [(p.step, getattr(p, f"val_{key}")) for p in m.curve if getattr(p, f"val_{key}") is not None]
    selected, final, test = primary_value(m, "val"), primary_value(m, "val_final"), primary_value(m)
    if key == "score" and m.percent:
        bad = [k for k, v in (("val_score", selected), ("test_score", test)) if v is not None and not 0 <= v <= 1]
        if bad:
            problems.append(f"{m.metric} is a fraction, but {', '.join(bad)} lie outside [0, 1]")
    if vals and selected is not None:
        best = (max if m.higher_is_better else min)(v for _, v in vals)
        first = next(s for s, v in vals if v == best)
        if not math.isclose(selected, best, abs_tol=1e-12) or m.best_step != first:
            problems.append(f"metrics.val_{key}/best_step ({selected}, step {m.best_step}) are not the "
                            f"best point of the learning curve ({best}, step {first})")
    if vals and final is not None and getattr(m.curve[-1], f"val_{key}") is not None \
            and not math.isclose(final, getattr(m.curve[-1], f"val_{key}"), abs_tol=1e-12):
        problems.append(f"metrics.val_{key}_final is not the last point of the learning curve")
    if m.test_splits and test is not None:
        mean = sum(m.test_splits.values()) / len(m.test_splits)
        if not math.isclose(mean, test, abs_tol=1e-9):
            problems.append(f"metrics.test_{key} is not the mean of metrics.test_splits")
    return problems
