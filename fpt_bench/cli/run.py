"""``fpt-bench run``: its flags are generated from the run settings (``RunConfig``: what to run, how, the training
overrides) and from the executors' options (the ``fpt_bench_add_run_flags`` hook)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fpt_bench.api.errors import UserError
from fpt_bench.cells.config import RunConfig
from fpt_bench.cli.flags import ModelFlags, RunFlags
from fpt_bench.cli.logs import apply_log_flags

WHAT = frozenset({"tasks", "all_tasks", "suite", "task_args", "backbone", "backbone_args", "policy", "policy_args",
                  "seeds", "sweep"})


def add_parser(sub: Any, host: Any = None) -> None:
    """The ``run`` subcommand; with ``host``, also its plugins' flags (the executors' options)."""
    run = sub.add_parser("run", help="run cells (task x backbone x policy x seed)")
    flags = ModelFlags(run)
    flags.add_model(RunConfig, into=run.add_argument_group("what to run"), only=WHAT)
    how = run.add_argument_group("how to run")
    how.add_argument("--config", type=Path, metavar="FILE", help="a TOML file with the same keys as these flags")
    flags.add_model(RunConfig, into=how, only=frozenset(RunConfig.model_fields) - WHAT - {"hparams"})
    flags.add_model(RunConfig, only=frozenset({"hparams"}))
    if host is not None:
        host.add_run_flags(RunFlags(flags))
    run.set_defaults(run_flags=flags)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The run configuration: the config file's values, then the flags given (they win)."""
    from fpt_bench.cells.config import build_run_config, load_config_file

    values, owners = args.run_flags.values(args)
    file_values = load_config_file(args.config) if args.config else {}
    config = build_run_config(file_values, values, str(args.config or ""))
    for option, owner in owners.items():
        if owner != config.executor:
            raise UserError(f"{option} is an option of the {owner} executor, but this run uses the "
                            f"{config.executor} executor; add --executor {owner} or drop {option}")
    return config


@contextmanager
def _naming_config_file(path: Path | None) -> Iterator[None]:
    """Add the config file to a user error raised inside (a value in it may be the cause)."""
    try:
        yield
    except UserError as exc:
        if path is not None:
            exc.args = (f"{exc} (the run's settings come from {path} and the command line)",)
        raise


def cmd_run(args: argparse.Namespace) -> int:
    from fpt_bench.cells.config import expand_cells, resolve_device
    from fpt_bench.cells.context import RunContext
    from fpt_bench.cells.profiles import default_profile
    from fpt_bench.cells.summary import print_run_summary
    from fpt_bench.cells.sweep import run_sweep
    from fpt_bench.datastore.files import resolve_data_dir
    from fpt_bench.host.manager import get_host
    from fpt_bench.host.requirements import check_required_plugins
    from fpt_bench.infra.destination import writable_folder
    from fpt_bench.training import distributed
    from fpt_bench.training.determinism import prepare_environment

    config = config_from_args(args)
    apply_log_flags(config.log)
    with _naming_config_file(args.config):  # a bad value from the file: say which file
        host = get_host()
        host.warn_errors()
        check_required_plugins(config.required_plugins, host)
        prepare_environment(config.deterministic)  # before any CUDA work: cuBLAS reads it once
        device = resolve_device(config.device)
        if distributed.launched():  # under torchrun: one data-parallel process per device
            if config.executor != "local" or config.executor_args.get("workers", 1) != 1:
                raise UserError("under torchrun use the local executor with one worker (each cell is data-parallel)")
            device = distributed.init(device)
            if not distributed.is_main():
                sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - rank 0 alone reports
        if config.profile is None:
            print(f"profile: {default_profile(device)} (default on {device}; choose with --profile)")
        unavailable: list[str] = []
        cells = expand_cells(config, host, device, unavailable)
        for line in unavailable:
            print(f"skip  {line}", file=sys.stderr)
        if not cells:
            raise UserError(f"no cell of suite {config.suite!r} can run here (see the reasons above)")
        executor = host.executors.get(config.executor)
        writable_folder(config.output_dir)  # a file there, a read-only disk: say so now, not after the first cell
        ctx = RunContext.from_config(config, device=device, data_dir=resolve_data_dir(config.data_dir),
                                     executor_options=executor.options(config.executor_args))
    print(f"{len(cells)} cell(s) on {device} ({config.executor} executor), results in {config.output_dir}/",
          flush=True)
    try:
        summary = run_sweep(cells, ctx, executor)
    finally:
        distributed.shutdown()
    failed = [o for o in summary.outcomes if o.error or (o.result is not None and o.result.status == "failed")]
    print(f"done: {summary.count('ok')} ok, {summary.count('diverged')} diverged, {len(failed)} failed, "
          f"{summary.skipped - sum(1 for o in failed if o.error)} skipped")
    for o in failed:
        if o.error:  # the cell could not even be claimed: nothing was written
            print(f"  failed: {o.cell.label()}: {o.error}", file=sys.stderr)
            continue
        lines = (o.result.error or "").splitlines() if o.result else []
        shown = lines if o.result and o.result.error_kind == "user" else lines[:1]  # user errors: the whole fix
        print(f"  failed: {o.cell.label()}: " + "\n    ".join(shown), file=sys.stderr)
    print_run_summary(summary.outcomes, config.suite, host, config.output_dir)  # fpt_bench.cells.summary
    if any(o.result and o.result.error_kind == "internal" for o in failed):
        return 1
    return 2 if failed else 0

