"""Claiming a cell: whatever the executor, a cell runs through ``run_claimed``, under a lock next to its result, so
two workers or two users never run it twice and a finished cell is never rerun."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fpt_bench.api.backbone_checkpoint import backbone_path
from fpt_bench.api.cell import CellConfig
from fpt_bench.api.errors import UserError
from fpt_bench.cells.context import RunContext
from fpt_bench.cells.locks import CellLock, check_cell_paths
from fpt_bench.results.schema import CellResult
from fpt_bench.results.store import checkpoint_path, read_result, remove_leftovers, should_run


@dataclass
class CellOutcome:
    cell: CellConfig
    path: Path
    result: CellResult | None  # None: skipped (finished earlier, or being run by another worker) or not runnable
    note: str = ""
    error: str = ""  # why the cell could not run at all (e.g. a folder where its lock belongs); nothing written


Report = Callable[[CellOutcome], None]


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
    from fpt_bench.cells.runner import run_cell  # torch: not for registering executors or listing them
    from fpt_bench.training import distributed

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


def tidy(path: Path) -> None:
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
