"""Executors: how the cells of a run are scheduled (in this process, worker processes, a cluster).

An executor is an object with a ``spec`` (:class:`fpt_bench.ExecutorSpec`), an ``Options`` model (its settings; its
command-line flags are added through the ``fpt_bench_add_run_flags`` hook) and ``run(cells, ctx, report)``. It must
run every cell through :func:`run_claimed`, which claims the cell with a lock next to its result (so two workers or
two users never run it twice, and a finished cell is never rerun), runs it and writes its result; it calls
``report`` with each cell's :class:`CellOutcome`. ``ctx`` (a :class:`RunContext`) pickles, so worker processes and
cluster workers receive it; ``ctx.executor_options`` holds the executor's validated options. A cluster executor
whose workers cannot write where the driver reads hands the returned result to :func:`store_result`.

Worker processes and signals: an executor that starts processes starts them under :func:`signals_blocked`, calls
:func:`worker_signal_handlers` first thing in each worker and runs each cell there inside :func:`worker_cell`. A
signal (Ctrl-C, SIGTERM, SIGHUP) then stops a running cell like Ctrl-C does (lock released, checkpoint kept) by
raising :class:`Stopped` (a ``KeyboardInterrupt``), and an idle worker takes no more cells, without a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Protocol

from pydantic import BaseModel

from fpt_bench.api.cell import CellConfig
from fpt_bench.api.options import Configurable
from fpt_bench.api.specs import ExecutorSpec
from fpt_bench.cells.claim import CellOutcome, Report, run_claimed
from fpt_bench.cells.context import RunContext
from fpt_bench.infra.signals import Stopped, signals_blocked, worker_cell
from fpt_bench.infra.signals import worker_handlers as worker_signal_handlers
from fpt_bench.results.schema import CellResult
from fpt_bench.results.store import write_result

__all__ = ["CellOutcome", "Executor", "ExecutorBase", "Report", "RunContext", "Stopped", "run_claimed",
           "signals_blocked", "store_result", "worker_cell", "worker_signal_handlers"]


class Executor(Protocol):
    spec: ExecutorSpec
    Options: ClassVar[type[BaseModel]]

    def run(self, cells: list[tuple[CellConfig, Path]], ctx: RunContext, report: Report) -> None: ...


class ExecutorBase(Configurable):
    """A base for executors: ``spec``, ``Options`` (default: none) and ``run``."""

    spec: ClassVar[ExecutorSpec]
    component_kind = "executor"
    options_flag = "executor options"

    def run(self, cells: list[tuple[CellConfig, Path]], ctx: RunContext, report: Report) -> None:
        raise NotImplementedError


def store_result(path: Path, result: CellResult) -> None:
    """Write a result that a worker returned (atomically) where the driver keeps results."""
    write_result(path, result)
