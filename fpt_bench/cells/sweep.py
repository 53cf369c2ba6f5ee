"""Sweeping a grid: skip the finished cells, hand the rest to the executor, report each outcome as it arrives.

Executors are plugins (``fpt_bench_plugins.executors``: ``local``, ``ray``); each cell still runs through
:func:`fpt_bench.cells.claim.run_claimed`, so every cell runs exactly once whatever schedules it.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

from fpt_bench.api.cell import CellConfig
from fpt_bench.api.executor import Executor
from fpt_bench.api.specs import TaskSpec
from fpt_bench.cells.claim import CellOutcome, needs_run, tidy
from fpt_bench.cells.context import RunContext
from fpt_bench.cells.estimate import SweepClock, cell_cost
from fpt_bench.cells.profiles import cell_spec
from fpt_bench.infra.progress import clock as clock_text
from fpt_bench.results.schema import primary_value
from fpt_bench.results.store import checkpoint_path, result_path
from fpt_bench.training import distributed


@dataclass
class SweepSummary:
    outcomes: list[CellOutcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.result is not None and o.result.status == status)

    @property
    def skipped(self) -> int:
        return sum(1 for o in self.outcomes if o.result is None)


def distinct_labels(cells: list[CellConfig]) -> dict[str, str]:
    """config hash -> the cell's label, followed by the settings that tell it from cells of the same label (a swept
    learning rate: ``... / quick · lr=0.0001``), so the lines of a sweep can be told apart."""
    groups: dict[str, list[CellConfig]] = {}
    for cell in cells:
        groups.setdefault(cell.label(), []).append(cell)
    labels = {}
    for label, group in groups.items():
        settings = [{**c.hparams.model_dump(), **{f"task.{k}": v for k, v in c.task_args.items()},
                     **{f"policy.{k}": v for k, v in c.policy_args.items()}} for c in group]
        differ = sorted({k for s in settings for k in s if any(t.get(k) != s.get(k) for t in settings)})
        for cell, these in zip(group, settings, strict=True):
            shown = ", ".join(f"{k}={these.get(k)}" for k in differ)
            labels[cell.config_hash()] = f"{label} · {shown}" if shown else label
    return labels


def run_sweep(cells: list[CellConfig], ctx: RunContext, executor: Executor, out: TextIO | None = None
              ) -> SweepSummary:
    out = out or sys.stdout
    summary = SweepSummary()
    paths = [result_path(ctx.output_dir, cell) for cell in cells]
    labels = distinct_labels(cells)
    runnable = distributed.broadcast([needs_run(p, ctx) for p in paths])  # rank 0 decides
    todo = []
    for cell, path, run in zip(cells, paths, runnable, strict=True):
        if run:
            todo.append((cell, path))
        else:
            summary.outcomes.append(CellOutcome(cell, path, None, "done"))
            print(f"skip  {labels[cell.config_hash()]}  (done: {path})", file=out)
            if distributed.is_main() and not ctx.keep_checkpoints and checkpoint_path(path).exists():
                tidy(path)
    total, started = len(todo), time.perf_counter()
    specs = {cell.config_hash(): _spec(ctx, cell) for cell, _ in todo}
    clock = SweepClock({cell.config_hash(): cell_cost(cell, specs[cell.config_hash()]) for cell, _ in todo},
                       {key: spec.max_len for key, spec in specs.items()})
    pending = {cell.config_hash(): cell for cell, _ in todo}

    def report(outcome: CellOutcome) -> None:
        summary.outcomes.append(outcome)
        pending.pop(outcome.cell.config_hash(), None)
        clock.finished(outcome.cell, outcome.result)
        finished = len(summary.outcomes) - (len(cells) - total)
        eta = clock.eta(list(pending.values()))
        left = "ETA after the first cell" if eta is None else f"ETA ~{clock_text(eta)}"
        head = f"[{finished}/{total}, {clock_text(time.perf_counter() - started)}, {left}]"
        r = outcome.result
        label = labels[outcome.cell.config_hash()]
        if outcome.error:
            print(f"{head} failed   {label}  {outcome.error}", file=out, flush=True)
            return
        if r is None:
            print(f"{head} skip     {label}  ({outcome.note})", file=out, flush=True)
            return
        value = primary_value(r.metrics)
        metric = "test" if r.metrics.metric == "accuracy" else f"test {r.metrics.metric}"
        shown = f"{metric} {value:.4f}" if value is not None else ((r.error or "").splitlines() or [""])[0]
        print(f"{head} {r.status:8s} {label}  {shown}  ({r.timing.wall_seconds:.1f}s) -> "
              f"{outcome.path}", file=out, flush=True)

    if todo:
        executor.run(todo, ctx, report)
    return summary


def _spec(ctx: RunContext, cell: CellConfig) -> TaskSpec:
    return cell_spec(ctx.host.tasks.get(cell.task), cell)
