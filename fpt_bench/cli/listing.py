"""``fpt-bench plugins``, ``fpt-bench ls`` and ``fpt-bench schema``: what is installed, and the result schema."""

from __future__ import annotations

import argparse
import json
import sys
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
    """Every plugin with its status; exit code 1 when any failed to load or register (0 otherwise)."""
    from fpt_bench.host.manager import get_host

    host = get_host()
    infos = [{**p.as_dict(), "shared": _shared(host, p.name)} for p in host.plugins.values()]
    failed = any(p["status"] == "error" for p in infos)
    if args.json:
        print(json.dumps(infos, indent=2))
        return 1 if failed else 0
    for p in infos:
        where = f"{p['distribution']} {p['version']}" if p["distribution"] else "(not from a distribution)"
        print(f"{p['name']:<20} {p['status']:<8} {where}")
        for kind, names in p["registered"].items():
            print(f"    {kind}: {', '.join(names)}")
        for kind, shared in p["shared"].items():
            for name, choices in shared.items():
                print(f"    note: {kind} {name!r} is registered by several plugins ({', '.join(choices)}); "
                      f"{_meaning(host.registries[kind], name)}")
        if p["error"]:
            print(f"    error: {p['error']}")
    if failed:
        names = ", ".join(p["name"] for p in infos if p["status"] == "error")
        print(f"\n{sum(p['status'] == 'error' for p in infos)} plugin(s) failed to load: {names} "
              "(exit code 1; their errors are above)")
    return 1 if failed else 0


def _shared(host: Any, origin: str) -> dict[str, dict[str, list[str]]]:
    """kind -> bare name -> qualified names, for the names ``origin`` registered that other plugins register too."""
    return {kind: shared for kind, registry in host.registries.items() if (shared := registry.shared(origin))}


def _meaning(registry: Any, name: str) -> str:
    from fpt_bench.api.errors import UserError

    try:
        return f"{name!r} alone means {registry.qualified(name)} (a built-in keeps its name)"
    except UserError:
        return f"{name!r} alone is ambiguous: give the qualified name"


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
        if args.kind in LIST_KINDS:
            _failed_plugins(sys.stderr)
        return 0
    from tabulate import tabulate

    if not args.options:
        print(tabulate([(r["name"], r["description"], f"[{r['origin']}]") for r in rows], tablefmt="plain"))
    else:
        for r in rows:
            print(f"{r['name']}  {r['description']}  [{r['origin']}]")
            options = [("  ", o["name"], "(required)" if o["required"] else f"={o['default']}", o["description"])
                       for o in r.get("options", [])]
            if options:
                print(tabulate(options, tablefmt="plain"))
    if args.kind in LIST_KINDS:
        _failed_plugins(sys.stdout)
    return 0


def _failed_plugins(stream: Any) -> None:
    """After a listing: the plugins that failed to load, whose components the listing lacks."""
    from fpt_bench.host.manager import get_host

    failed = get_host().errors()
    if failed:
        print(f"\nnot listed: {len(failed)} plugin(s) failed to load (`fpt-bench plugins` shows why):", file=stream)
        for p in failed:
            print(f"  {p.name} ({p.distribution or 'not from a distribution'}): {p.error}", file=stream)


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
