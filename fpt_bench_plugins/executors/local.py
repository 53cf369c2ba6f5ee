"""The ``local`` executor: cells one after another in this process, or in N worker processes (``--workers N``),
one per device: CUDA devices round-robin, or the CPU with its threads split between the workers."""

from __future__ import annotations

import multiprocessing as mp
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from pydantic import Field

from fpt_bench import CellConfig, ExecutorSpec, Strict
from fpt_bench.api.executor import CellOutcome, ExecutorBase, Report, RunContext, run_claimed


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
        with ProcessPoolExecutor(max_workers=len(devices), mp_context=spawn, initializer=_init_worker,
                                 initargs=(slots, len(devices))) as pool:
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
    cell = CellConfig.model_validate(cell_data)
    return run_claimed(cell, Path(path), ctx.model_copy(update={"device": _WORKER_DEVICE, "progress": False}))
