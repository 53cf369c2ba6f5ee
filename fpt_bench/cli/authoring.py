"""``fpt-bench check-plugin`` and ``fpt-bench new-plugin``: for plugin authors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fpt_bench.api.errors import UserError


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


def run(args: argparse.Namespace) -> int:
    if args.command == "check-plugin":
        return _check_plugin(args)
    return _new_plugin(args)


def _check_plugin(args: argparse.Namespace) -> int:
    from fpt_bench.cells.config import parse_kv, resolve_device
    from fpt_bench.conformance.check import check_plugin
    from fpt_bench.conformance.imports import entry_module, heavy_imports, note
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
    for p in report.plugins:  # what listing the plugin costs (a note, not a check: docs/writing-plugins.md, 9)
        module = entry_module(p["name"], p["distribution"]) if p["status"] == "ok" else None
        p["heavy_imports"] = heavy_imports(module) if module else None
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        for p in report.plugins:
            print(f"check-plugin {p['name']} ({p['distribution'] or 'no distribution'} {p['version'] or ''})".rstrip())
        print()
        print(report.table())
        print()
        for p in report.plugins:
            print(note(p["name"], p["heavy_imports"]))
    return 0 if report.passed else 1


def _new_plugin(args: argparse.Namespace) -> int:
    from fpt_bench.cli.scaffold import write_project
    from fpt_bench.host.manager import get_host

    root, names = write_project(args.name, args.dir, get_host())
    print(f"created {root}/ (distribution {names.dist}, entry point and task {names.entry!r})")
    print("next:")
    print(f"  cd {root}")
    print('  pip install -e ".[test]"           # [test] brings pytest')
    print(f"  fpt-bench plugins                  # {names.entry!r} is listed")
    print(f"  fpt-bench check-plugin {names.entry}")
    print("  pytest")
    return 0
