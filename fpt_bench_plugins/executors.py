"""Built-in executors: local (in-process or worker processes) and ray (optional extra)."""

from __future__ import annotations

from fpt_bench import hookimpl
from fpt_bench.cells.ray_executor import RayExecutor
from fpt_bench.cells.sweep import LocalExecutor


@hookimpl
def fpt_bench_register_executors(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(LocalExecutor())
    registry.add(RayExecutor())
