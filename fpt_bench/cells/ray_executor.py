"""The ``ray`` executor: each cell is a Ray task on an existing cluster (``--ray-address auto|HOST:PORT``) or on
a local one started for the sweep. Ray is optional: ``pip install "fpt-bench[ray]"``.

Cells still run through :func:`fpt_bench.cells.sweep.run_claimed`, so a cell is claimed with a lock next to its
result and never runs twice; a task whose worker died is retried by Ray (``max_retries``) and the retry resumes
from the cell's last checkpoint. A worker writes the result itself when the result directory is shared storage,
and also returns it to the driver, which writes it there when the driver cannot see it yet.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fpt_bench.api.errors import UserError
from fpt_bench.api.specs import CellConfig
from fpt_bench.cells.runner import RunContext
from fpt_bench.cells.sweep import CellOutcome, ExecutorSpec, Report, run_claimed
from fpt_bench.results.schema import CellResult
from fpt_bench.results.store import write_result

MAX_RETRIES = 3


def _remote_cell(cell_data: dict[str, Any], path: str, ctx: RunContext) -> tuple[str | None, str]:
    """Runs on a Ray worker. Returns (result JSON or None, note)."""
    from dataclasses import replace

    import torch

    device = ctx.device
    if device.startswith("cuda"):
        import ray

        ids = ray.get_gpu_ids()
        device = "cuda:0" if ids else "cpu"  # Ray sets CUDA_VISIBLE_DEVICES to the task's GPUs
    else:
        torch.set_num_threads(max(1, int(ctx.cpus_per_cell)))
    outcome = run_claimed(CellConfig.model_validate(cell_data), Path(path), replace(ctx, device=device, progress=False))
    return (outcome.result.model_dump_json() if outcome.result else None), outcome.note, outcome.error


class RayExecutor:
    spec = ExecutorSpec(name="ray", description="each cell a Ray task, on an existing or a local Ray cluster")

    def run(self, cells: list[tuple[CellConfig, Path]], ctx: RunContext, report: Report) -> None:
        try:
            import ray
        except ImportError:
            raise UserError('the ray executor needs Ray: pip install "fpt-bench[ray]"') from None
        started_here = False
        if not ray.is_initialized():
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # stay on loopback when local
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if ctx.ray_address:
                kwargs["address"] = ctx.ray_address
            else:
                kwargs["num_cpus"] = max(1, ctx.workers) if ctx.workers > 1 else os.cpu_count()
            try:
                ray.init(**kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise UserError(f"could not connect to Ray at {ctx.ray_address or 'a local cluster'}: {exc}") from None
            started_here = True
        gpus = ctx.gpus_per_cell if ctx.gpus_per_cell is not None else (1.0 if ctx.device.startswith("cuda") else 0)
        task = ray.remote(num_cpus=ctx.cpus_per_cell, num_gpus=gpus, max_retries=MAX_RETRIES)(_remote_cell)
        pending = {task.remote(cell.model_dump(mode="json"), str(path), ctx): (cell, path) for cell, path in cells}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                cell, path = pending.pop(done[0])
                try:
                    blob, note, error = ray.get(done[0])
                except Exception as exc:  # noqa: BLE001 - retries exhausted: the cell stays missing
                    report(CellOutcome(cell, path, None, f"lost after {MAX_RETRIES} retries: {type(exc).__name__}"))
                    continue
                result = CellResult.model_validate_json(blob) if blob else None
                if result is not None and not path.exists():
                    write_result(path, result)  # the worker's file system is not ours
                report(CellOutcome(cell, path, result, note, error))
        finally:
            if started_here:
                ray.shutdown()
