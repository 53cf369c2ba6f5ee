"""fpt-bench-example: two tasks (one a regression), one backbone and one freeze policy, registered through the
``fpt_bench`` hooks.

fpt-bench imports this module (the entry point ``example`` in pyproject.toml) and calls the ``@hookimpl``
functions below with keyword arguments.
"""

from __future__ import annotations

import fpt_bench
from fpt_bench import hookimpl
from fpt_bench_example.policy import FPTLastLayers
from fpt_bench_example.sine import SineNext
from fpt_bench_example.sorting import SortDigits
from fpt_bench_example.transformer import TorchTransformer

__version__ = "0.1.0"

# This plugin is written against plugin API 1.x (1.2 added objectives): minor versions only add, a major may break.
if fpt_bench.PLUGIN_API.split(".")[0] != "1" or int(fpt_bench.PLUGIN_API.split(".")[1]) < 2:
    raise ImportError(f"fpt-bench-example needs plugin API 1.2 or a later 1.x (objectives such as Regression), "
                      f"this fpt-bench has {fpt_bench.PLUGIN_API}")


@hookimpl
def fpt_bench_register_tasks(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(SortDigits())
    registry.add(SineNext())  # a regression task (objective: fpt_bench.Regression)


@hookimpl
def fpt_bench_register_backbones(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(TorchTransformer())


@hookimpl
def fpt_bench_register_policies(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(FPTLastLayers())
