"""Executors schedule cells. ``local`` runs them one after another in this process; other executors
(worker processes, Ray) register through the ``fpt_bench_register_executors`` hook."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fpt_bench.backbone_checkpoint import backbone_path
from fpt_bench.result_schema import CellResult
from fpt_bench.results import result_path, should_run
from fpt_bench.runner import RunContext, run_cell
from fpt_bench.specs import BackboneSpec, CellConfig

ExecutorSpec = BackboneSpec  # name + description + citation is all an executor needs


@dataclass
class CellOutcome:
    cell: CellConfig
    path: Path
    result: CellResult | None  # None when skipped (already done)


class Executor(Protocol):
    spec: ExecutorSpec

    def run(self, cells: list[tuple[CellConfig, Path]], ctx: RunContext,
            report: Callable[[CellOutcome], None]) -> list[CellOutcome]: ...


class LocalExecutor:
    spec = ExecutorSpec(name="local", description="run cells one after another in this process")

    def run(self, cells: list[tuple[CellConfig, Path]], ctx: RunContext,
            report: Callable[[CellOutcome], None]) -> list[CellOutcome]:
        outcomes = []
        for cell, path in cells:
            outcome = CellOutcome(cell, path, run_cell(cell, path, ctx))
            report(outcome)
            outcomes.append(outcome)
        return outcomes


@dataclass
class SweepSummary:
    outcomes: list[CellOutcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.result is not None and o.result.status == status)

    @property
    def skipped(self) -> int:
        return sum(1 for o in self.outcomes if o.result is None)


def run_sweep(cells: list[CellConfig], ctx: RunContext, overwrite: str, executor: Any,
              out: Any = None) -> SweepSummary:
    out = out or sys.stdout
    summary = SweepSummary()
    todo = []
    for cell in cells:
        path = result_path(ctx.output_dir, cell)
        missing_backbone = ctx.save_backbone and overwrite != "never" and not backbone_path(path).exists()
        if should_run(path, overwrite) or missing_backbone:
            todo.append((cell, path))
        else:
            summary.outcomes.append(CellOutcome(cell, path, None))
            print(f"skip  {cell.label()}  (done: {path})", file=out)
    total = len(todo)

    def report(outcome: CellOutcome) -> None:
        r = outcome.result
        assert r is not None
        done = sum(1 for o in summary.outcomes if o.result is not None) + 1
        acc = r.metrics.test_accuracy
        shown = f"test {acc:.4f}" if acc is not None else (r.error or "").splitlines()[0] if r.error else ""
        print(f"[{done}/{total}] {r.status:8s} {outcome.cell.label()}  {shown}  "
              f"({r.timing.wall_seconds:.1f}s) -> {outcome.path}", file=out, flush=True)
        summary.outcomes.append(outcome)

    if todo:
        executor.run(todo, ctx, report)
    return summary
