"""The hook contracts. Every hook is called with keyword arguments only, so an implementation may accept
a subset of the arguments. ``docs/hooks.md`` documents each hook with its exact signature (a test checks it).
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("fpt_bench")


@hookspec
def fpt_bench_register_tasks(registry: Any) -> None:
    """Add tasks to ``registry`` with ``registry.add(task)``.

    A task is an instance of :class:`fpt_bench.Task` (or any object with its ``spec``, ``load``,
    ``sample``, ``augment``, ``prepare`` and ``data_files`` members). Names must be unique across plugins.
    """


@hookspec
def fpt_bench_register_backbones(registry: Any) -> None:
    """Add backbones to ``registry`` with ``registry.add(backbone)``.

    A backbone is an instance of :class:`fpt_bench.Backbone`: it has a ``spec`` and ``build(options, max_len)``
    returning a :class:`fpt_bench.BackboneModule` whose every parameter has a role.
    """


@hookspec
def fpt_bench_register_policies(registry: Any) -> None:
    """Add freeze policies to ``registry`` with ``registry.add(policy)``.

    A policy is an instance of :class:`fpt_bench.FreezePolicy`; the default ``apply`` trains the parameters
    whose role is in ``spec.trainable_roles`` (restricted to the layers in ``spec.layer_selection``).
    """


@hookspec
def fpt_bench_register_suites(registry: Any) -> None:
    """Add suites (named grids of cells with the paper's reference numbers) to ``registry``.

    A suite is a :class:`fpt_bench.SuiteSpec`; register it with ``registry.add(spec, name=spec.name)``.
    """


@hookspec
def fpt_bench_register_executors(registry: Any) -> None:
    """Add executors (how cells are scheduled: in-process, worker processes, a cluster) to ``registry``.

    An executor has a ``spec`` (:class:`fpt_bench.ExecutorSpec`), an ``Options`` model and
    ``run(cells, ctx, report)``: ``cells`` is a list of ``(CellConfig, result path)``, ``ctx`` the run's context
    (``ctx.executor_options`` holds its validated options), and ``report`` is called with each cell's outcome. It
    runs every cell through ``fpt_bench.api.executor.run_claimed`` (docs/writing-plugins.md, "Executors").
    """


@hookspec
def fpt_bench_register_model_families(registry: Any) -> None:
    """Add architecture families of Hugging Face models (module layout -> roles) that backbone plugins look up
    by ``config.model_type``, with ``registry.add(family)``.

    The built-in ``hf_decoder`` and ``hf_ssm`` backbones use ``fpt_bench_plugins.backbones.families.ModelFamily``
    entries; a model whose family nobody registered is refused rather than mapped by guessing.
    """


@hookspec
def fpt_bench_add_run_flags(flags: Any) -> None:
    """Add command-line flags to ``fpt-bench run`` for an executor's options (as tox's ``tox_add_option``).

    ``flags.add_options(model, executor=NAME)`` adds one flag per field of the pydantic ``model`` (``--field-name``
    unless the field's :class:`fpt_bench.Flag` says otherwise; typed, with the field's description as its help);
    the values given reach that executor as its ``Options`` (a config file sets them in ``[executor_args]``).
    A flag given with another executor is an error.
    """


@hookspec
def fpt_bench_cell_started(cell: Any, result_path: Any) -> None:
    """Called when a cell starts to run (``cell`` is its :class:`fpt_bench.CellConfig`)."""


@hookspec
def fpt_bench_cell_evaluated(cell: Any, step: int, metrics: dict[str, float]) -> None:
    """Called after each periodic evaluation of a cell with the step and the metrics measured."""


@hookspec
def fpt_bench_cell_finished(cell: Any, result: Any) -> None:
    """Called when a cell has finished (``result`` is its :class:`fpt_bench.CellResult`, any status)."""
