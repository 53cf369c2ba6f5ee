"""Weights & Biases logging of cell events (entry point ``example_wandb``).

Off unless ``FPT_BENCH_LOG_WANDB=PROJECT`` is set (``fpt-bench run --log wandb=PROJECT`` sets it). Never needed:
without the ``wandb`` package it warns once and does nothing. Offline by default (``WANDB_MODE=offline``; runs
are synced later with ``wandb sync``); set ``WANDB_MODE=online`` to log live.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from fpt_bench import hookimpl

ENV = "FPT_BENCH_LOG_WANDB"
_runs: dict[str, Any] = {}  # cell config hash -> wandb run
_warned: list[bool] = []


def _wandb() -> Any | None:
    if not os.environ.get(ENV):
        return None
    try:
        import wandb
    except ImportError:
        if not _warned:
            _warned.append(True)
            print(f"fpt-bench-example: {ENV} is set but wandb is not installed "
                  "(pip install 'fpt-bench-example[wandb]'); not logging to W&B", file=sys.stderr)
        return None
    return wandb


@hookimpl
def fpt_bench_cell_started(cell: Any) -> None:
    wandb = _wandb()
    if wandb is None:
        return
    _runs[cell.config_hash()] = wandb.init(
        project=os.environ[ENV], name=cell.label(), group=cell.task, config=cell.model_dump(mode="json"),
        mode=os.environ.get("WANDB_MODE", "offline"), reinit=True,
    )


@hookimpl
def fpt_bench_cell_evaluated(cell: Any, step: int, metrics: dict[str, float]) -> None:
    run = _runs.get(cell.config_hash())
    if run is not None:
        run.log(dict(metrics), step=step)


@hookimpl
def fpt_bench_cell_finished(cell: Any, result: Any) -> None:
    run = _runs.pop(cell.config_hash(), None)
    if run is None:
        return
    m = result.metrics
    run.summary.update({f"test_{name}": value for name, value in m.test_metrics.items()})  # every metric
    run.summary.update({"status": result.status, "test_accuracy": m.test_accuracy, "val_accuracy": m.val_accuracy,
                        "metric": m.metric, "test_score": m.test_score, "best_step": m.best_step,
                        "wall_seconds": result.timing.wall_seconds})
    run.finish()
