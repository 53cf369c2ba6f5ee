"""Executors schedule cells; each cell is a pure function writing one result file, so cells parallelise.

``local`` runs cells in this process, or in N worker processes (one per device) with ``--workers N``. Other
executors (Ray, a site's scheduler) register through the ``fpt_bench_register_executors`` hook. Whatever the
executor, a cell runs through :func:`run_claimed`: it is claimed with a lock next to its result, so two workers
or two users never run it twice, and a finished cell is never rerun.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fpt_bench.api.backbone_checkpoint import backbone_path
from fpt_bench.api.errors import UserError
from fpt_bench.api.specs import BackboneSpec, CellConfig
from fpt_bench.cells.locks import CellLock, check_cell_paths
from fpt_bench.cells.runner import RunContext, run_cell
from fpt_bench.results.schema import CellResult
from fpt_bench.results.store import checkpoint_path, read_result, remove_leftovers, result_path, should_run
from fpt_bench.training import distributed

ExecutorSpec = BackboneSpec  # name + description + citation is all an executor needs


@dataclass
class CellOutcome:
    cell: CellConfig
    path: Path
    result: CellResult | None  # None: skipped (finished earlier, or being run by another worker) or not runnable
    note: str = ""
    error: str = ""  # why the cell could not run at all (e.g. a folder where its lock belongs); nothing written


Report = Callable[[CellOutcome], None]


class Executor(Protocol):
    spec: ExecutorSpec

    def run(self, cells: list[tuple[CellConfig, Path]], ctx: RunContext, report: Report) -> None: ...


def needs_run(path: Path, ctx: RunContext) -> bool:
    """Whether a cell must run: no finished result (per ``--overwrite``), or ``--save-backbone`` asks for a
    backbone file that an ok cell did not save (a diverged cell saves none, so it is not rerun for one)."""
    if should_run(path, ctx.overwrite):
        return True
    if not ctx.save_backbone or ctx.overwrite == "never" or backbone_path(path).exists():
        return False
    return read_result(path).status == "ok"  # readable: should_run has rerun a corrupt one


def run_claimed(cell: CellConfig, path: Path, ctx: RunContext) -> CellOutcome:
    """Claim ``cell``, run it unless it finished meanwhile, release. Safe to call from any worker.
    Under torchrun, rank 0 claims and every rank follows its decision."""
    lock = CellLock(path)
    note = error = ""
    if distributed.is_main():
        try:
            check_cell_paths({"result": path, "lock": lock.path, "checkpoint": checkpoint_path(path)})
            claimed = lock.acquire()
        except UserError as exc:  # a folder where the lock belongs, say: this cell fails, the sweep goes on
            claimed, error = False, str(exc)
        if error:
            note = "cannot run"
        elif not claimed:
            note = "running elsewhere"
        elif ctx.overwrite != "always" and not needs_run(path, ctx):
            note = "finished elsewhere"
            remove_leftovers(path, keep_checkpoint=ctx.keep_checkpoints)
        else:
            remove_leftovers(path)  # temporary files of a writer that was killed: ours now, under the lock
    note, error = distributed.broadcast((note, error))
    try:
        if note:
            return CellOutcome(cell, path, None, note, error)
        return CellOutcome(cell, path, run_cell(cell, path, ctx))
    finally:
        lock.release()


class LocalExecutor:
    spec = ExecutorSpec(name="local", description="run cells in this process, or in N worker processes (--workers)")

    def run(self, cells: list[tuple[CellConfig, Path]], ctx: RunContext, report: Report) -> None:
        if ctx.workers <= 1:
            for cell, path in cells:
                report(run_claimed(cell, path, ctx))
            return
        devices = worker_devices(ctx.device, ctx.workers)
        slots: mp.Queue = mp.get_context("spawn").Queue()
        for device in devices:
            slots.put(device)
        with ProcessPoolExecutor(max_workers=len(devices), mp_context=mp.get_context("spawn"),
                                 initializer=_init_worker, initargs=(slots, len(devices))) as pool:
            pending = {pool.submit(_worker_run, cell.model_dump(mode="json"), str(path), ctx): (cell, path)
                       for cell, path in cells}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    cell, path = pending.pop(future)
                    try:
                        report(future.result())
                    except Exception as exc:  # noqa: BLE001 - a worker that died: its cell stays missing
                        report(CellOutcome(cell, path, None, f"worker died: {type(exc).__name__}: {exc}"))


def worker_devices(device: str, workers: int) -> list[str]:
    """One device per worker: CUDA devices round-robin, or the CPU (threads split between workers)."""
    if device.startswith("cuda"):
        import torch

        if ":" in device:
            return [device] * workers
        count = torch.cuda.device_count()
        return [f"cuda:{i % count}" for i in range(workers)]
    return ["cpu"] * workers


_WORKER_DEVICE = "cpu"


def _init_worker(slots: Any, workers: int) -> None:
    global _WORKER_DEVICE
    import torch

    _WORKER_DEVICE = slots.get()
    if _WORKER_DEVICE == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def _worker_run(cell_data: dict[str, Any], path: str, ctx: RunContext) -> CellOutcome:
    from dataclasses import replace

    cell = CellConfig.model_validate(cell_data)
    outcome = run_claimed(cell, Path(path), replace(ctx, device=_WORKER_DEVICE, progress=False))
    return outcome


def _tidy(path: Path) -> None:
    """A finished cell whose checkpoint is still there (its writer was killed after writing the result): remove
    the leftovers, under the cell's lock (skipped when someone else holds it)."""
    lock = CellLock(path)
    try:
        claimed = lock.acquire()
    except UserError:  # a folder where the lock belongs: nothing to tidy now (a run of the cell says so)
        return
    if claimed:
        try:
            remove_leftovers(path, keep_checkpoint=False)
        finally:
            lock.release()


@dataclass
class SweepSummary:
    outcomes: list[CellOutcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.result is not None and o.result.status == status)

    @property
    def skipped(self) -> int:
        return sum(1 for o in self.outcomes if o.result is None)


def run_sweep(cells: list[CellConfig], ctx: RunContext, executor: Any, out: Any = None) -> SweepSummary:
    out = out or sys.stdout
    summary = SweepSummary()
    paths = [result_path(ctx.output_dir, cell) for cell in cells]
    runnable = distributed.broadcast([needs_run(p, ctx) for p in paths])  # rank 0 decides
    todo = []
    for cell, path, run in zip(cells, paths, runnable, strict=True):
        if run:
            todo.append((cell, path))
        else:
            summary.outcomes.append(CellOutcome(cell, path, None, "done"))
            print(f"skip  {cell.label()}  (done: {path})", file=out)
            if distributed.is_main() and not ctx.keep_checkpoints and checkpoint_path(path).exists():
                _tidy(path)
    total, started = len(todo), time.perf_counter()

    def report(outcome: CellOutcome) -> None:
        summary.outcomes.append(outcome)
        finished = len(summary.outcomes) - (len(cells) - total)
        elapsed = time.perf_counter() - started
        eta = elapsed / finished * (total - finished) if finished else 0.0
        head = f"[{finished}/{total}, {elapsed:.0f}s, ~{eta:.0f}s left]"
        r = outcome.result
        if outcome.error:
            print(f"{head} failed   {outcome.cell.label()}  {outcome.error}", file=out, flush=True)
            return
        if r is None:
            print(f"{head} skip     {outcome.cell.label()}  ({outcome.note})", file=out, flush=True)
            return
        acc = r.metrics.test_accuracy
        shown = f"test {acc:.4f}" if acc is not None else ((r.error or "").splitlines() or [""])[0]
        print(f"{head} {r.status:8s} {outcome.cell.label()}  {shown}  ({r.timing.wall_seconds:.1f}s) -> "
              f"{outcome.path}", file=out, flush=True)

    if todo:
        executor.run(todo, ctx, report)
    return summary

