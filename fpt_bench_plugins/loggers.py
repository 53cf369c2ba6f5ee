"""Built-in loggers of run events: a JSONL event log, a CSV event log and TensorBoard scalars.

Each is off unless its variable names a target; ``fpt-bench run --log KIND=TARGET`` sets the variable
``FPT_BENCH_LOG_<KIND>`` (plugins' loggers use the same convention):

- ``FPT_BENCH_LOG_JSONL=FILE``: one JSON object per event (``cell_started``, ``cell_evaluated``, ``cell_finished``)
- ``FPT_BENCH_LOG_CSV=FILE``: the same events as rows of fixed columns (a header when the file is new)
- ``FPT_BENCH_LOG_TENSORBOARD=DIR``: one TensorBoard run per cell under ``DIR/<task>/<backbone>__<policy>/``;
  needs the optional extra ``pip install 'fpt-bench[tensorboard]'`` (without it: one warning, nothing logged)

Files are appended to, one write per event, so several worker processes can share one log.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

from fpt_bench import hookimpl

ENV_PREFIX = "FPT_BENCH_LOG_"
LOG_KINDS = ("jsonl", "csv", "tensorboard")  # what `fpt-bench run --log KIND=...` accepts for these loggers
CSV_COLUMNS = ["time", "event", "cell", "task", "backbone", "policy", "seed", "profile", "step", "status",
               "train_loss", "val_accuracy", "test_accuracy", "wall_seconds", "error"]
_writers: dict[str, Any] = {}  # cell config hash -> TensorBoard SummaryWriter
_warned: set[str] = set()
_broken: set[str] = set()  # log targets that refused once


def target(kind: str) -> str | None:
    """Where the ``kind`` logger writes, or None when it is off."""
    return os.environ.get(ENV_PREFIX + kind.upper()) or None


def _record(event: str, cell: Any, **fields: Any) -> dict[str, Any]:
    return {
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"), "event": event,
        "cell": cell.config_hash(), "task": cell.task, "backbone": cell.backbone, "policy": cell.policy,
        "seed": cell.seed, "profile": cell.profile, **fields,
    }


def _append(path: str, text: str) -> None:
    """Append to a regular file; a target that cannot be one (a folder, a fifo: opening it for writing would wait
    for a reader) is said once, and then left alone."""
    if path in _broken:
        return
    file = Path(path).expanduser()
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(file, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK, 0o666)
        with os.fdopen(fd, "a", encoding="utf-8") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(f"{file} is not a regular file")
            handle.write(text)
    except OSError as exc:
        _broken.add(path)
        print(f"fpt-bench: cannot log to {file} ({exc.strerror or exc}); not logging there for the rest of this "
              f"run", file=sys.stderr)


def _log(record: dict[str, Any]) -> None:
    jsonl = target("jsonl")
    if jsonl:
        _append(jsonl, json.dumps(record, sort_keys=True, default=str) + "\n")
    csv_path = target("csv")
    if csv_path:
        fresh = not Path(csv_path).expanduser().exists() or Path(csv_path).expanduser().stat().st_size == 0
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
        if fresh:
            writer.writeheader()
        writer.writerow({k: ("" if record.get(k) is None else record[k]) for k in CSV_COLUMNS})
        _append(csv_path, buffer.getvalue())


# ------------------------------------------------------------------------------------- TensorBoard
def _writer_class() -> Any:
    from torch.utils.tensorboard import SummaryWriter  # needs the `tensorboard` package

    return SummaryWriter


def _tensorboard(cell: Any, create: bool) -> Any | None:
    root = target("tensorboard")
    key = cell.config_hash()
    if not root or (not create and key not in _writers):
        return _writers.get(key)
    if key not in _writers:
        try:
            writer_class = _writer_class()
        except ImportError as exc:
            if "tensorboard" not in _warned:
                _warned.add("tensorboard")
                print(f"fpt-bench: --log tensorboard (or {ENV_PREFIX}TENSORBOARD) asks for TensorBoard, which is not "
                      f"importable ({exc}); "
                      "install it with `pip install 'fpt-bench[tensorboard]'`. Not logging to TensorBoard.",
                      file=sys.stderr)
            return None
        log_dir = Path(root).expanduser() / cell.task / f"{cell.backbone}__{cell.policy}" / (
            f"{cell.profile}-seed{cell.seed}-{key}")
        _writers[key] = writer_class(log_dir=str(log_dir))
    return _writers[key]


# ------------------------------------------------------------------------------------------- hooks
@hookimpl
def fpt_bench_cell_started(cell: Any, result_path: Any) -> None:
    _log(_record("cell_started", cell, result_path=str(result_path), config=cell.model_dump(mode="json")))
    writer = _tensorboard(cell, create=True)
    if writer is not None:
        writer.add_text("cell", cell.label())


@hookimpl
def fpt_bench_cell_evaluated(cell: Any, step: int, metrics: dict[str, float]) -> None:
    _log(_record("cell_evaluated", cell, step=step, **metrics))
    writer = _tensorboard(cell, create=True)
    if writer is not None:
        for name, value in metrics.items():
            writer.add_scalar(name, value, step)


@hookimpl
def fpt_bench_cell_finished(cell: Any, result: Any) -> None:
    m = result.metrics
    error = (result.error or "").splitlines()[0] if result.error else None
    # every metric of the task's objective on the test split(s) (results before objectives: accuracy alone)
    tests = {f"test_{k}": v for k, v in m.test_metrics.items()} or (
        {"test_accuracy": m.test_accuracy} if m.test_accuracy is not None else {})
    _log(_record(
        "cell_finished", cell, step=result.timing.steps, status=result.status, val_accuracy=m.val_accuracy,
        train_loss=m.train_loss, best_step=m.best_step, wall_seconds=round(result.timing.wall_seconds, 3),
        error=error, **{**tests, "test_accuracy": m.test_accuracy},
    ))
    writer = _tensorboard(cell, create=False)
    if writer is not None:
        for name, value in tests.items():
            writer.add_scalar(name, value, result.timing.steps)
        writer.close()
        _writers.pop(cell.config_hash(), None)
