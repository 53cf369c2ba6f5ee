"""Built-in executors: ``local`` (this process, or worker processes) and ``ray`` (the optional ``ray`` extra).
They use the same public API (``fpt_bench.api.executor``) a site's own scheduler would."""

from __future__ import annotations

from fpt_bench import hookimpl
from fpt_bench_plugins.executors.local import LocalExecutor, LocalOptions
from fpt_bench_plugins.executors.ray import RayExecutor, RayOptions


@hookimpl
def fpt_bench_register_executors(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(LocalExecutor())
    registry.add(RayExecutor())


@hookimpl
def fpt_bench_add_run_flags(flags) -> None:  # type: ignore[no-untyped-def]
    flags.add_options(LocalOptions, executor="local")
    flags.add_options(RayOptions, executor="ray")
