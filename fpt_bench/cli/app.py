"""The ``fpt-bench`` command: parse, call the core, print. User errors exit with code 2 and one message."""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fpt_bench.api.errors import UserError
from fpt_bench.cli import authoring as cli_plugins
from fpt_bench.cli import data as cli_data
from fpt_bench.cli import leaderboard as cli_leaderboard

LIST_KINDS = {"tasks": "task", "backbones": "backbone", "policies": "policy", "suites": "suite",
              "executors": "executor"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fpt-bench", description="Benchmark frozen pretrained transformers.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", help="run cells (task x backbone x policy x seed)")
    what = run.add_argument_group("what to run")
    what.add_argument("--task", action="append", dest="tasks", metavar="NAME",
                      help="a task (repeatable); with --suite, that task's cells of the suite")
    what.add_argument("--all", action="store_true", dest="all_tasks", help="every registered task")
    what.add_argument("--suite", help="a named grid of cells (see `fpt-bench ls suites`)")
    what.add_argument("--task-args", metavar="K=V,...", help="task options")
    what.add_argument("--backbone", help="backbone (default gpt2, pretrained base)")
    what.add_argument("--backbone-args", metavar="K=V,...", help="e.g. weights=random,n_layers=2")
    what.add_argument("--policy", help="freeze policy (default fpt)")
    what.add_argument("--policy-args", metavar="K=V,...", help="freeze policy options")
    what.add_argument("--seeds", metavar="S,S,...", help="cell seeds (default 0)")
    how = run.add_argument_group("how to run")
    how.add_argument("--profile", help="smoke | quick | paper (default: paper on CUDA, quick otherwise)")
    how.add_argument("--device", help="auto | cpu | cuda | cuda:N (default auto)")
    how.add_argument("--config", type=Path, metavar="FILE", help="a TOML file with the same keys as these flags")
    how.add_argument("--output-dir", type=Path, help="where result files go (default results/)")
    how.add_argument("--data-dir", type=Path, help="where task data lives (default $FPT_BENCH_DATA or cache)")
    how.add_argument("--overwrite", choices=["missing", "never", "always"],
                     help="rerun finished cells? missing (default): only failed or absent ones")
    how.add_argument("--executor", help="how cells are scheduled: local (default), ray, ...")
    how.add_argument("--workers", type=int, help="local executor: worker processes, one per device (default 1)")
    how.add_argument("--ray-address", help="ray executor: auto | HOST:PORT (default: start a local cluster)")
    how.add_argument("--gpus-per-cell", type=float, help="ray executor: GPUs per cell, fractions allowed")
    how.add_argument("--cpus-per-cell", type=float, help="ray executor: CPUs per cell (default 1)")
    how.add_argument("--keep-checkpoints", action="store_true", help="keep checkpoints of finished cells")
    how.add_argument("--save-backbone", action="store_true", default=None,
                     help="save each finished cell's trained backbone next to its result (safetensors); "
                          "another cell loads it with --backbone-args weights=result:RESULT_JSON")
    how.add_argument("--deterministic", action="store_true", default=None, help="deterministic algorithms "
                     "(CUDA kernels that sum in a fixed order; slower); recorded in each result")
    progress = how.add_mutually_exclusive_group()
    progress.add_argument("--progress", action="store_true", default=None, help="always show the progress bar")
    progress.add_argument("--no-progress", action="store_false", dest="progress", help="never show it")
    hp = run.add_argument_group("training overrides (win over the profile)")
    hp.add_argument("--steps", type=int)
    hp.add_argument("--batch-size", type=int)
    hp.add_argument("--lr", metavar="LR[,LR...]", help="learning rate; several (comma-separated) sweep it: "
                    "one cell per rate, selected by validation accuracy in the leaderboard")
    hp.add_argument("--grad-accum", type=int)
    hp.add_argument("--eval-every", type=int)
    hp.add_argument("--checkpoint-every", type=int)
    hp.add_argument("--precision", choices=["auto", "fp32", "bf16"])
    hp.add_argument("--input-dropout", type=float, help="dropout after the input layer (paper: 0.1)")
    hp.add_argument("--compile", action=argparse.BooleanOptionalAction, help="torch.compile the model")
    hp.add_argument("--feature-cache", choices=["auto", "on", "off"],
                    help="output-layer-only policies: train on backbone features computed once (default auto)")
    hp.add_argument("--adam-impl", choices=["auto", "foreach", "fused", "for_loop"], help="Adam implementation")
    cli_plugins.add_log_flag(how)

    plugins = sub.add_parser("plugins", help="list plugins with their distribution, version and errors")
    plugins.add_argument("--json", action="store_true")

    ls = sub.add_parser("ls", help="list registered components")
    ls.add_argument("kind", choices=[*LIST_KINDS, "profiles", "cells"])
    ls.add_argument("--json", action="store_true")
    ls.add_argument("--options", action="store_true",
                    help="tasks, backbones, policies: also each one's options (--task-args etc.) with defaults")
    cli_leaderboard.add_ls_arguments(ls)
    cli_leaderboard.add_parser(sub)

    schema = sub.add_parser("schema", help="print (or write) the JSON Schema of result files")
    schema.add_argument("--output", type=Path)
    cli_plugins.add_parser(sub)
    cli_data.add_parser(sub)
    return parser


HPARAM_FLAGS = ("steps", "batch_size", "lr", "grad_accum", "eval_every", "checkpoint_every", "precision",
                "input_dropout", "compile", "feature_cache", "adam_impl")


def _cli_values(args: argparse.Namespace) -> dict[str, Any]:
    from fpt_bench.cells.config import parse_kv

    values: dict[str, Any] = {}
    for key in ("tasks", "suite", "backbone", "policy", "profile", "device", "output_dir", "data_dir",
                "overwrite", "executor", "progress", "workers", "ray_address", "gpus_per_cell", "cpus_per_cell",
                "save_backbone", "deterministic"):
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
    if args.all_tasks:
        values["all_tasks"] = True
    for key, flag in (("task_args", "--task-args"), ("backbone_args", "--backbone-args"),
                      ("policy_args", "--policy-args")):
        if getattr(args, key) is not None:
            values[key] = parse_kv(getattr(args, key), flag)
    if args.seeds is not None:
        try:
            values["seeds"] = [int(s) for s in args.seeds.split(",") if s.strip()]
        except ValueError:
            raise UserError(f"--seeds: expected integers separated by commas, got {args.seeds!r}") from None
    values["hparams"] = {k: getattr(args, k) for k in HPARAM_FLAGS if getattr(args, k) is not None}
    if args.lr is not None:
        try:
            values["hparams"]["lr"] = [float(s) for s in args.lr.split(",") if s.strip()]
        except ValueError:
            raise UserError(f"--lr: expected numbers separated by commas, got {args.lr!r}") from None
    return values


@contextlib.contextmanager
def _naming_config_file(path: Path | None) -> Iterator[None]:
    """Add the config file to a user error raised inside (a value in it may be the cause)."""
    try:
        yield
    except UserError as exc:
        if path is not None:
            exc.args = (f"{exc} (the run's settings come from {path} and the command line)",)
        raise


def cmd_run(args: argparse.Namespace) -> int:
    from fpt_bench.cells.config import build_run_config, expand_cells, load_config_file, resolve_device
    from fpt_bench.cells.profiles import default_profile
    from fpt_bench.cells.runner import RunContext
    from fpt_bench.cells.summary import print_run_summary
    from fpt_bench.cells.sweep import run_sweep
    from fpt_bench.datastore.files import resolve_data_dir
    from fpt_bench.host.manager import get_host
    from fpt_bench.host.requirements import check_required_plugins
    from fpt_bench.training import distributed
    from fpt_bench.training.determinism import prepare_environment

    cli_plugins.apply_log_flags(args.log)
    file_values = load_config_file(args.config) if args.config else {}
    config = build_run_config(file_values, _cli_values(args), str(args.config or ""))
    with _naming_config_file(args.config):  # a bad value from the file: say which file
        host = get_host()
        host.warn_errors()
        check_required_plugins(config.required_plugins, host)
        prepare_environment(config.deterministic)  # before any CUDA work: cuBLAS reads it once
        device = resolve_device(config.device)
        if distributed.launched():  # under torchrun: one data-parallel process per device
            if config.executor != "local" or config.workers != 1:
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
        ctx = RunContext(device=device, data_dir=resolve_data_dir(config.data_dir), output_dir=config.output_dir,
                         progress=config.progress, keep_checkpoints=args.keep_checkpoints, overwrite=config.overwrite,
                         workers=config.workers, ray_address=config.ray_address, gpus_per_cell=config.gpus_per_cell,
                         cpus_per_cell=config.cpus_per_cell, deterministic=config.deterministic,
                         save_backbone=config.save_backbone)
    print(f"{len(cells)} cell(s) on {device} ({config.executor} executor), results in {config.output_dir}/",
          flush=True)
    try:
        summary = run_sweep(cells, ctx, executor)
    finally:
        distributed.shutdown()
    failed = [o for o in summary.outcomes if o.result is not None and o.result.status == "failed"]
    print(f"done: {summary.count('ok')} ok, {summary.count('diverged')} diverged, {len(failed)} failed, "
          f"{summary.skipped} skipped")
    for o in failed:
        lines = (o.result.error or "").splitlines() if o.result else []
        shown = lines if o.result and o.result.error_kind == "user" else lines[:1]  # user errors: the whole fix
        print(f"  failed: {o.cell.label()}: " + "\n    ".join(shown), file=sys.stderr)
    print_run_summary(summary.outcomes, config.suite, host, config.output_dir)  # fpt_bench.cells.summary
    if any(o.result and o.result.error_kind == "internal" for o in failed):
        return 1
    return 2 if failed else 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from fpt_bench.host.manager import get_host

    host = get_host()
    infos = [p.as_dict() for p in host.plugins.values()]
    if args.json:
        print(json.dumps(infos, indent=2))
        return 0
    for p in infos:
        where = f"{p['distribution']} {p['version']}" if p["distribution"] else "(not from a distribution)"
        print(f"{p['name']:<20} {p['status']:<8} {where}")
        for kind, names in p["registered"].items():
            print(f"    {kind}: {', '.join(names)}")
        if p["error"]:
            print(f"    error: {p['error']}")
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    from fpt_bench.cells.profiles import PROFILES
    from fpt_bench.host.manager import get_host
    from fpt_bench.host.registry import describe

    if args.kind == "cells":
        return cli_leaderboard.ls_cells(args)
    if args.kind == "profiles":
        rows = [{"name": n, "origin": "core", "description": d} for n, (d, _) in PROFILES.items()]
    else:
        registry = get_host().registries[LIST_KINDS[args.kind]]
        rows = [{"name": e.name, "origin": e.origin, "description": describe(e.component)} for e in registry]
        if args.options:
            for row, entry in zip(rows, registry, strict=True):
                row["options"] = option_rows(getattr(entry.component, "Options", None))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max((len(r["name"]) for r in rows), default=4)
    for r in rows:
        print(f"{r['name']:<{width}}  {r['description']}  [{r['origin']}]")
        for o in r.get("options", []):
            default = "(required)" if o["required"] else f"={o['default']}"
            print(f"    {o['name']}{default}  {o['description']}".rstrip())
    return 0


def option_rows(model: type | None) -> list[dict[str, Any]]:
    """A component's options (its pydantic ``Options`` model): name, default, whether required, description."""
    from pydantic import BaseModel

    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return []
    rows = []
    for name, field in model.model_fields.items():
        default = None if field.is_required() else field.get_default(call_default_factory=True)
        if not isinstance(default, str | int | float | bool | type(None)):
            default = str(default)
        rows.append({"name": name, "default": default, "required": field.is_required(),
                     "description": field.description or ""})
    return rows


def cmd_schema(args: argparse.Namespace) -> int:
    from fpt_bench.infra.atomic import atomic_write
    from fpt_bench.results.export import result_schema_json

    text = result_schema_json()
    if args.output:
        atomic_write(args.output, lambda handle: handle.write(text.encode()))
    else:
        print(text, end="")
    return 0


COMMANDS = {"run": cmd_run, "plugins": cmd_plugins, "ls": cmd_ls, "schema": cmd_schema, "data": cli_data.run,
            **dict.fromkeys(cli_leaderboard.COMMANDS, cli_leaderboard.run),
            "check-plugin": cli_plugins.run, "new-plugin": cli_plugins.run}


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.version:
        from fpt_bench import __version__

        print(f"fpt-bench {__version__}")
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return COMMANDS[args.command](args)
    except UserError as exc:
        print(f"fpt-bench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("fpt-bench: interrupted (finished cells are kept; a rerun resumes the rest)", file=sys.stderr)
        return 130
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f" writing {exc.filename}" if exc.filename else ""
        print(f"fpt-bench: error: no space left on the device{where} ({exc.strerror}); files are written "
              "atomically, so what was there before is intact. Free some space and run the command again",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
