"""The ``ray`` executor: each cell is a Ray task on an existing cluster (``--ray-address auto|HOST:PORT``) or on
a local one started for the sweep. Ray is optional: ``pip install "fpt-bench[ray]"``.

Cells still run through ``run_claimed``, so a cell is claimed with a lock next to its result and never runs twice;
a task whose worker died is retried by Ray (``max_retries``) and the retry resumes from the cell's last checkpoint.
A worker writes the result itself when the result directory is shared storage, and also returns it to the driver,
which writes it there when the driver cannot see it yet.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from fpt_bench import CellConfig, CellResult, ExecutorSpec, Flag, Strict, UserError
from fpt_bench.api.executor import CellOutcome, ExecutorBase, Report, RunContext, run_claimed, store_result

MAX_RETRIES = 3


class RayOptions(Strict):
    ray_address: Annotated[str | None, Flag(metavar="auto|HOST:PORT")] = Field(
        default=None, description="ray executor: an existing cluster (default: start a local one)")
    gpus_per_cell: float | None = Field(default=None, ge=0, description="ray executor: GPUs per cell, fractions "
                                                                        "allowed (default 1 on CUDA, else 0)")
    cpus_per_cell: float = Field(default=1.0, gt=0, description="ray executor: CPUs per cell (default 1)")


def _remote_cell(cell_data: dict[str, Any], path: str, ctx: RunContext) -> tuple[str | None, str]:
    """Runs on a Ray worker. Returns (result JSON or None, note)."""
    import torch

    device = ctx.device
    if device.startswith("cuda"):
        import ray

        ids = ray.get_gpu_ids()
        device = "cuda:0" if ids else "cpu"  # Ray sets CUDA_VISIBLE_DEVICES to the task's GPUs
    else:
        torch.set_num_threads(max(1, int(ctx.executor_options.cpus_per_cell)))
    outcome = run_claimed(CellConfig.model_validate(cell_data), Path(path),
                          ctx.model_copy(update={"device": device, "progress": False}))
    return (outcome.result.model_dump_json() if outcome.result else None), outcome.note, outcome.error


class RayExecutor(ExecutorBase):
    spec = ExecutorSpec(name="ray", description="each cell a Ray task, on an existing or a local Ray cluster")
    Options = RayOptions

    def run(self, cells: list[tuple[CellConfig, Path]], ctx: RunContext, report: Report) -> None:
        try:
            import ray
        except ImportError:
            raise UserError('the ray executor needs Ray: pip install "fpt-bench[ray]"') from None
        options: RayOptions = ctx.executor_options or RayOptions()
        started_here = False
        if not ray.is_initialized():
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # stay on loopback when local
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if options.ray_address:
                kwargs["address"] = options.ray_address
            else:
                kwargs["num_cpus"] = os.cpu_count()
            try:
                ray.init(**kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = options.ray_address or "a local cluster"
                raise UserError(f"could not connect to Ray at {where}: {exc}") from None
            started_here = True
        gpus = options.gpus_per_cell
        if gpus is None:
            gpus = 1.0 if ctx.device.startswith("cuda") else 0
        task = ray.remote(num_cpus=options.cpus_per_cell, num_gpus=gpus, max_retries=MAX_RETRIES)(_remote_cell)
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
                    store_result(path, result)  # the worker's file system is not ours
                report(CellOutcome(cell, path, result, note, error))
        finally:
            if started_here:
                ray.shutdown()
