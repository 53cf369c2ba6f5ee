"""The ``local`` executor: cells one after another in this process, or in N worker processes (``--workers N``),
one per device: CUDA devices round-robin, or the CPU with its threads split between the workers.

A signal stops the workers the way Ctrl-C stops one process: Ctrl-C reaches every process of the terminal, and a
SIGTERM or SIGHUP sent to the main process alone is passed on to the workers; each running cell stops with its lock
released and its checkpoint kept, cells not started are not started, and no worker prints a traceback (the
workers start with the signals blocked until their handlers are in place)."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from pydantic import Field

from fpt_bench import CellConfig, ExecutorSpec, Strict
from fpt_bench.api.executor import (
    CellOutcome,
    ExecutorBase,
    Report,
    RunContext,
    Stopped,
    run_claimed,
    signals_blocked,
    worker_cell,
    worker_signal_handlers,
)


class LocalOptions(Strict):
    workers: int = Field(default=1, gt=0, description="local executor: worker processes, one per device (default 1)")


class LocalExecutor(ExecutorBase):
    spec = ExecutorSpec(name="local", description="run cells in this process, or in N worker processes (--workers)")
    Options = LocalOptions

    def run(self, cells: list[tuple[CellConfig, Path]], ctx: RunContext, report: Report) -> None:
        workers = ctx.executor_options.workers if ctx.executor_options is not None else 1
        if workers <= 1:
            for cell, path in cells:
                report(run_claimed(cell, path, ctx))
            return
        devices = worker_devices(ctx.device, workers)
        spawn = mp.get_context("spawn")
        slots = spawn.Queue()
        for device in devices:
            slots.put(device)
        pool: ProcessPoolExecutor | None = None
        pending: dict[Any, tuple[CellConfig, Path]] = {}
        try:
            with signals_blocked():  # workers start with them blocked: no traceback from a half-started worker
                pool = ProcessPoolExecutor(max_workers=len(devices), mp_context=spawn, initializer=_init_worker,
                                           initargs=(slots, len(devices)))
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
        except KeyboardInterrupt as exc:  # here, or a worker's cell stopped by a signal: stop them all
            if pool is not None:
                _stop(pool, pending, exc.signum if isinstance(exc, Stopped) else signal.SIGINT)
            raise
        finally:
            if pool is not None:  # waits for the workers: each running cell unwinds (lock released) first
                pool.shutdown(wait=True, cancel_futures=True)


def _stop(pool: ProcessPoolExecutor, pending: dict[Any, Any], signum: int) -> None:
    """Cells not started are not started; the workers get the signal (those that had it already ignore it)."""
    for future in pending:
        future.cancel()
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        try:
            os.kill(process.pid, signum)
        except (ProcessLookupError, TypeError):
            pass


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

    worker_signal_handlers()
    os.environ["FPT_BENCH_PROGRESS"] = "lines"  # several workers share the terminal: plain lines, not bars
    _WORKER_DEVICE = slots.get()
    if _WORKER_DEVICE == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def _worker_run(cell_data: dict[str, Any], path: str, ctx: RunContext) -> CellOutcome:
    cell = CellConfig.model_validate(cell_data)
    with worker_cell():  # a signal stops this cell like Ctrl-C (lock released, checkpoint kept)
        progress = False if ctx.progress is False else None  # plain lines every 30 s (FPT_BENCH_PROGRESS=lines)
        return run_claimed(cell, Path(path), ctx.model_copy(update={"device": _WORKER_DEVICE, "progress": progress}))
