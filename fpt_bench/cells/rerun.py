"""Rerunning a result's cell from its recorded config, and comparing the two (``fpt-bench verify``).

A cell is a pure function of its config: on a CPU, at the same thread count and precision, the rerun must give
the same numbers bit for bit (learning curve included). The rerun runs on the CPU, in a temporary folder, with
the thread count and precision the result records.

A result computed on another device (a GPU) cannot be reproduced bit for bit on a CPU: its kernels add in other
orders, and training carries the last-bit differences forward. Such a result is compared within a tolerance
(:data:`ACCURACY_TOLERANCE` absolute on every accuracy and every other metric in [0, 1], :data:`LOSS_TOLERANCE`
relative on every training loss and every metric on the targets' scale, such as a regression's MSE;
the status, the steps and the shape of the curve must still be equal); docs/reliability.md says how they were
chosen.
"""

from __future__ import annotations

import math
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fpt_bench.api.errors import UserError
from fpt_bench.cells.context import RunContext
from fpt_bench.cells.profiles import cell_spec
from fpt_bench.cells.runner import run_cell
from fpt_bench.leaderboard.validate import cell_config
from fpt_bench.results.schema import CellResult

ACCURACY_TOLERANCE = 0.02  # absolute, for results from another device (docs/reliability.md: how it was chosen)
LOSS_TOLERANCE = 0.02  # relative
_THREADS = re.compile(r"^cpu \(.*, (\d+) threads\)$")


@dataclass
class Comparison:
    """A rerun against the recorded result."""

    differences: list[str] = field(default_factory=list)
    compared: int = 0  # numbers compared
    exact: bool = True  # bit for bit (else within the tolerance)


def from_cpu(result: CellResult) -> bool:
    return result.provenance.device.startswith("cpu")


def recorded_threads(result: CellResult) -> int | None:
    """The CPU thread count the result was computed with (older results: from the device description)."""
    if result.provenance.threads is not None:
        return result.provenance.threads
    match = _THREADS.match(result.provenance.device)
    return int(match.group(1)) if match else None


@contextmanager
def thread_count(threads: int | None) -> Iterator[int]:
    before = torch.get_num_threads()
    if threads is not None and threads != before:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def check_rerunnable(result: CellResult, host: Any) -> list[str]:
    """Why the cell cannot be rerun here (a UserError: a plugin that is not installed, options it refuses, a task
    of another version); returns notes on what differs but need not change the numbers (plugin versions)."""
    cell = cell_config(result)
    try:
        task = host.tasks.get(cell.task)
        backbone, policy = host.backbones.get(cell.backbone), host.policies.get(cell.policy)
    except UserError as exc:
        plugins = ", ".join(f"{k} {v}" for k, v in sorted(result.provenance.plugins.items())) or "none recorded"
        raise UserError(f"{exc}; the result was computed with the plugins: {plugins}. Install the plugin that "
                        "provides it to verify this result") from None
    backbone.options(cell.backbone_args)
    policy.options(cell.policy_args)
    version = cell_spec(task, cell).version
    if version != result.cell.task_version:
        raise UserError(f"task {cell.task!r} is version {version} here, the result was computed with version "
                        f"{result.cell.task_version}: its numbers are not comparable")
    here = host.versions()
    return [f"plugin {name!r} is version {here.get(name)} here, {version_then} in the result"
            for name, version_then in sorted(result.provenance.plugins.items())
            if name in here and here[name] != version_then]


def rerun(result: CellResult, host: Any, data_dir: Path) -> tuple[CellResult, float, int]:
    """Run ``result``'s cell again on the CPU (its thread count and precision); returns the new result, the
    seconds it took and the thread count it ran with. Nothing is written outside a temporary folder."""
    cell = cell_config(result)
    if result.provenance.precision in ("fp32", "bf16") and cell.hparams.precision != result.provenance.precision:
        cell = cell.model_copy(update={"hparams": cell.hparams.model_copy(
            update={"precision": result.provenance.precision})})  # "auto" resolved on its machine: the same here
    with tempfile.TemporaryDirectory(prefix="fpt-bench-verify-") as tmp, \
            thread_count(recorded_threads(result) if from_cpu(result) else None) as threads:
        ctx = RunContext(device="cpu", output_dir=Path(tmp), data_dir=data_dir, progress=False,
                         deterministic=result.provenance.deterministic, plugin_host=host)
        t0 = time.perf_counter()
        again = run_cell(cell, Path(tmp) / "rerun.json", ctx)
        return again, time.perf_counter() - t0, threads


def _numbers(result: CellResult) -> dict[str, Any]:
    """Every number the rerun must reproduce, by name."""
    m = result.metrics
    out: dict[str, Any] = {"status": result.status, "error_kind": result.error_kind, "steps": result.timing.steps,
                           "test_accuracy": m.test_accuracy, "test_accuracy_final": m.test_accuracy_final,
                           "val_accuracy": m.val_accuracy, "val_accuracy_final": m.val_accuracy_final,
                           "best_step": m.best_step, "train_loss": m.train_loss, "curve points": len(m.curve)}
    out.update({f"test_splits.{k}": v for k, v in sorted(m.test_splits.items())})
    if m.metric != "accuracy":  # the task's primary metric (an MSE, a micro-F1) and every metric of its objective
        out.update({"test_score": m.test_score, "test_score_final": m.test_score_final, "val_score": m.val_score,
                    "val_score_final": m.val_score_final})
        out.update({f"test_metrics.{k}": v for k, v in sorted(m.test_metrics.items())})
    for i, point in enumerate(m.curve):
        out.update({f"curve[{i}].step": point.step, f"curve[{i}].train_loss": point.train_loss,
                    f"curve[{i}].val_accuracy": point.val_accuracy})
        if m.metric != "accuracy":
            out[f"curve[{i}].val_score"] = point.val_score
    if result.parameters is not None:
        out.update({"parameters.total": result.parameters.total, "parameters.trainable": result.parameters.trainable})
    return out


def _close(name: str, a: Any, b: Any) -> bool:
    if a is None or b is None or isinstance(a, str) or isinstance(b, str):
        return a == b
    if "accuracy" in name or ("score" in name or "metrics." in name) and 0 <= min(a, b) <= max(a, b) <= 1:
        return abs(a - b) <= ACCURACY_TOLERANCE + 1e-12  # accuracies, and other metrics that are fractions
    if "score" in name or "metrics." in name:  # a metric on the targets' scale (an MSE): relative, as a loss
        return math.isclose(a, b, rel_tol=LOSS_TOLERANCE)
    if "loss" in name:
        return math.isclose(a, b, rel_tol=LOSS_TOLERANCE)
    if name == "best_step":  # the best point may move to a neighbouring evaluation
        return True
    return a == b


def compare(recorded: CellResult, again: CellResult) -> Comparison:
    """The rerun against the recorded result: bit for bit for a CPU result, within the tolerances otherwise."""
    exact = from_cpu(recorded)
    theirs, ours = _numbers(recorded), _numbers(again)
    out = Comparison(exact=exact, compared=len(set(theirs) | set(ours)))
    for name in sorted(set(theirs) | set(ours), key=lambda k: (k.startswith("curve"), k)):
        a, b = theirs.get(name), ours.get(name)
        same = (a == b and type(a) is type(b)) if exact else _close(name, a, b)
        if not same:
            out.differences.append(f"{name}: {a!r} recorded, {b!r} rerun")
    return out
