"""``fpt-bench check-plugin`` and ``fpt-bench new-plugin``, and the ``run --log KIND=TARGET`` flag."""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
from pathlib import Path
from typing import Any

from fpt_bench.api.errors import UserError, did_you_mean

LOG_ENV_PREFIX = "FPT_BENCH_LOG_"


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    check = subparsers.add_parser(
        "check-plugin", help="check an installed plugin's components against fpt-bench's contracts",
        description="Build each component of an installed plugin at smoke size and check its contracts; "
                    "prints a pass/fail table. Exit code 0: all passed, 1: a check failed, 2: usage error.")
    check.add_argument("name", help="entry-point name (see `fpt-bench plugins`) or distribution name")
    check.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    check.add_argument("--data-dir", type=Path, help="data of the plugin's file-based tasks (else not loaded)")
    check.add_argument("--steps", type=int, default=2, help="training steps of each smoke cell (default 2)")
    check.add_argument("--task-args", metavar="K=V,...", help="options for the plugin's tasks")
    check.add_argument("--backbone-args", metavar="K=V,...",
                       help="options for the plugin's backbones (default: their smoke_args)")
    check.add_argument("--policy-args", metavar="K=V,...", help="options for the plugin's policies")
    check.add_argument("--json", action="store_true", help="print the results as JSON")

    new = subparsers.add_parser(
        "new-plugin", help="write a ready-to-install plugin project (pyproject, a task, a test)",
        description="Write fpt-bench-NAME/: a plugin distribution with one generated task named NAME, its entry "
                    "point and a test that checks `fpt-bench plugins` lists it and `check-plugin` passes.")
    new.add_argument("name", help="plugin name, e.g. parity (lowercase, digits, - or _)")
    new.add_argument("--dir", type=Path, default=Path("."), help="where to create the project (default .)")


def add_log_flag(run_parser: argparse.ArgumentParser) -> None:
    run_parser.add_argument(
        "--log", action="append", metavar="KIND=TARGET", default=None,
        help="log run events: jsonl=FILE, csv=FILE, tensorboard=DIR (built-in), or a plugin's kind "
             "(sets FPT_BENCH_LOG_<KIND>; repeatable)")


def apply_log_flags(values: list[str] | None) -> None:
    """``--log jsonl=events.jsonl`` -> ``FPT_BENCH_LOG_JSONL=events.jsonl`` for the loggers (and worker processes).
    A kind no loaded logger reads is a user error (with the closest known kind): it would log nothing."""
    pairs = []
    for value in values or []:
        kind, sep, target = value.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", kind.strip()) or not target.strip():
            raise UserError(f"--log {value!r}: expected KIND=TARGET, e.g. --log jsonl=events.jsonl")
        pairs.append((value, kind.strip(), target.strip()))
    if pairs:
        from fpt_bench.host.manager import get_host

        known = log_kinds(get_host())
        for value, kind, _ in pairs:
            if kind.lower() not in known:
                raise UserError(
                    f"--log {value!r}: no installed logger reads {kind!r}{did_you_mean(kind.lower(), known)} "
                    f"(loggers here: {', '.join(sorted(known)) or 'none'}). A plugin's logger declares its kinds in "
                    f"a module-level LOG_KINDS or reads {LOG_ENV_PREFIX}<KIND>; see `fpt-bench plugins` for plugins "
                    f"that failed to load")
    for _, kind, target in pairs:
        os.environ[LOG_ENV_PREFIX + kind.upper()] = target


RUN_EVENT_HOOKS = ("fpt_bench_cell_started", "fpt_bench_cell_evaluated", "fpt_bench_cell_finished")
_LOG_VARIABLE = re.compile(LOG_ENV_PREFIX + r"([A-Z][A-Z0-9_]*)")


def log_kinds(host: Any) -> set[str]:
    """The ``--log`` kinds the loaded plugins' loggers read (lower case): each module implementing a run-event hook
    lists them in ``LOG_KINDS``, or else names its variables ``FPT_BENCH_LOG_<KIND>`` in its source (the
    convention docs/writing-plugins.md describes)."""
    kinds: set[str] = set()
    for hook in RUN_EVENT_HOOKS:
        for impl in getattr(host.pm.hook, hook).get_hookimpls():
            module = inspect.getmodule(impl.function)
            declared = getattr(module, "LOG_KINDS", None) or getattr(impl.plugin, "LOG_KINDS", None)
            if declared:
                kinds |= {str(k).lower() for k in declared}
                continue
            try:
                source = inspect.getsource(module) if module is not None else ""
            except (OSError, TypeError):
                continue
            kinds |= {name.lower() for name in _LOG_VARIABLE.findall(source)}
    return kinds


def run(args: argparse.Namespace) -> int:
    if args.command == "check-plugin":
        return _check_plugin(args)
    return _new_plugin(args)


def _check_plugin(args: argparse.Namespace) -> int:
    from fpt_bench.cells.config import parse_kv, resolve_device
    from fpt_bench.conformance.check import check_plugin
    from fpt_bench.host.manager import Host

    if args.steps < 1:
        raise UserError("--steps must be at least 1")
    host = Host(strict=False).load_entry_points()  # a broken plugin is a failed check, not a crash
    report = check_plugin(
        args.name, host, device=resolve_device(args.device), data_dir=args.data_dir, steps=args.steps,
        task_args=parse_kv(args.task_args, "--task-args") if args.task_args else None,
        backbone_args=parse_kv(args.backbone_args, "--backbone-args") if args.backbone_args else None,
        policy_args=parse_kv(args.policy_args, "--policy-args") if args.policy_args else None,
    )
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        for p in report.plugins:
            print(f"check-plugin {p['name']} ({p['distribution'] or 'no distribution'} {p['version'] or ''})".rstrip())
        print()
        print(report.table())
    return 0 if report.passed else 1


def _new_plugin(args: argparse.Namespace) -> int:
    from fpt_bench.cli.scaffold import write_project
    from fpt_bench.host.manager import get_host

    root, names = write_project(args.name, args.dir, get_host())
    print(f"created {root}/ (distribution {names.dist}, entry point and task {names.entry!r})")
    print("next:")
    print(f"  cd {root}")
    print("  pip install -e .")
    print(f"  fpt-bench plugins                  # {names.entry!r} is listed")
    print(f"  fpt-bench check-plugin {names.entry}")
    print("  pytest")
    return 0
