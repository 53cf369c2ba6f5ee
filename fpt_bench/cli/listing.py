"""``fpt-bench plugins``, ``fpt-bench ls`` and ``fpt-bench schema``: what is installed, and the result schema."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from fpt_bench.cli import leaderboard as cli_leaderboard

LIST_KINDS = {"tasks": "task", "backbones": "backbone", "policies": "policy", "suites": "suite",
              "executors": "executor"}


def add_parsers(sub: Any) -> None:
    plugins = sub.add_parser("plugins", help="list plugins with their distribution, version and errors")
    plugins.add_argument("--json", action="store_true")
    ls = sub.add_parser("ls", help="list registered components")
    ls.add_argument("kind", choices=[*LIST_KINDS, "profiles", "cells"])
    ls.add_argument("--json", action="store_true")
    ls.add_argument("--options", action="store_true",
                    help="tasks, backbones, policies, executors: also each one's options with defaults")
    cli_leaderboard.add_ls_arguments(ls)
    schema = sub.add_parser("schema", help="print (or write) the JSON Schema of result files")
    schema.add_argument("--output", type=Path)


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
    from tabulate import tabulate

    if not args.options:
        print(tabulate([(r["name"], r["description"], f"[{r['origin']}]") for r in rows], tablefmt="plain"))
        return 0
    for r in rows:
        print(f"{r['name']}  {r['description']}  [{r['origin']}]")
        options = [("  ", o["name"], "(required)" if o["required"] else f"={o['default']}", o["description"])
                   for o in r.get("options", [])]
        if options:
            print(tabulate(options, tablefmt="plain"))
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
