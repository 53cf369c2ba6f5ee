"""Built-in executors."""

from __future__ import annotations

from fpt_bench import hookimpl
from fpt_bench.executors import LocalExecutor


@hookimpl
def fpt_bench_register_executors(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(LocalExecutor())
