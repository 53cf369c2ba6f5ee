"""``fpt-bench data``: status, fetch, import and generate task data in the data directory."""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from fpt_bench.api.errors import UserError


def add_parser(subparsers: Any) -> None:
    data = subparsers.add_parser("data", help="task data: status, fetch, import, generate")
    sub = data.add_subparsers(dest="data_command", metavar="{status,fetch,import,generate}")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", type=Path, help="data directory (default $FPT_BENCH_DATA or the user cache)")
        p.add_argument("--task-args", metavar="K=V,...", help="task options that change the files (e.g. format=json)")

    status = sub.add_parser("status", help="which tasks have their data, and where missing files go")
    status.add_argument("tasks", nargs="*", metavar="TASK", help="tasks (default: all)")
    status.add_argument("--json", action="store_true")
    status.add_argument("-v", "--verbose", action="store_true", help="show every file, present ones too")
    common(status)
    fetch = sub.add_parser("fetch", help="download, verify and extract a task's files")
    fetch.add_argument("tasks", nargs="+", metavar="TASK")
    common(fetch)
    imp = sub.add_parser("import", help="take a task's files from a folder, an archive or a file copied here")
    imp.add_argument("task", metavar="TASK")
    imp.add_argument("path", type=Path, metavar="PATH")
    imp.add_argument("--no-verify", action="store_true",
                     help="keep files whose checksum does not match (recorded as unverified, with their origin)")
    common(imp)
    gen = sub.add_parser("generate", help="write a generated data set (ListOps) in the task's file layout")
    gen.add_argument("task", metavar="TASK")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--out", type=Path, help="output folder (default: where the task looks for it)")
    gen.add_argument("--sizes", metavar="SPLIT=N,...", help="examples per split (default: the task's)")
    common(gen)


def run(args: argparse.Namespace) -> int:
    from fpt_bench.datastore.files import resolve_data_dir
    from fpt_bench.host.manager import get_host

    if args.data_command is None:
        raise UserError("fpt-bench data: give a command: status, fetch, import or generate")
    host = get_host()
    data_dir = resolve_data_dir(args.data_dir)
    return {"status": _status, "fetch": _fetch, "import": _import, "generate": _generate}[args.data_command](
        args, host, data_dir)


def _task_options(host: Any, name: str, args: argparse.Namespace) -> tuple[Any, Any]:
    from fpt_bench.cells.config import parse_kv

    task = host.tasks.get(name)
    values = parse_kv(args.task_args, "--task-args") if args.task_args else {}
    return task, task.options(values)


# ------------------------------------------------------------------------------------------------ status
def task_status(task: Any, options: Any, data_dir: Path) -> dict[str, Any]:
    """One task's data state: ``generated``, ``ready``, ``missing`` or ``corrupt``, with its files."""
    from fpt_bench.datastore.files import check_files, describe_file

    states = check_files(data_dir, task.data_files(options))
    files = [{"path": s.file.path, "state": s.state, "detail": s.detail, "needs": describe_file(s.file),
              "destination": str(data_dir / s.file.path), "url": s.file.url, "md5": s.file.md5,
              "archive": s.file.archive, "archive_md5": s.file.archive_md5} for s in states]
    present = sum(s.usable for s in states)
    if task.spec.generated:
        state, note = "generated", "generated on the fly from the seed (no files)"
    elif any(s.state == "mismatch" for s in states):
        state, note = "corrupt", "a file does not verify (see below)"
    elif present < len(states):
        state, note = "missing", f"{len(states) - present} file(s) missing"
    else:
        kinds = sorted({s.detail.split("; imported from ")[0] for s in states})
        origins = sorted({s.detail.split("; imported from ")[1].rsplit("/", 1)[0]
                          for s in states if "; imported from " in s.detail})
        note = "; ".join(kinds) + (f"; imported from {', '.join(origins)}" if origins else "")
        state = "ready"
    custom = getattr(task, "data_state", None)
    if custom is not None:
        state, note = custom(data_dir, options)
    return {"task": task.spec.name, "state": state, "note": note, "present": present, "files": files}


def _status(args: argparse.Namespace, host: Any, data_dir: Path) -> int:
    names = args.tasks or host.tasks.names()
    rows = []
    for name in names:
        task, options = _task_options(host, name, args)
        rows.append(task_status(task, options, data_dir))
    if args.json:
        print(json.dumps({"data_dir": str(data_dir), "tasks": rows}, indent=2))
        return 0
    print(f"data directory: {data_dir}  (set with --data-dir or $FPT_BENCH_DATA)")
    width = max(len(r["task"]) for r in rows) if rows else 4
    print(f"\n{'task':<{width}}  {'state':<9}  {'files':>5}  note")
    for r in rows:
        files = f"{r['present']}/{len(r['files'])}" if r["files"] else "-"
        print(f"{r['task']:<{width}}  {r['state']:<9}  {files:>5}  {r['note']}")
    lacking = [r for r in rows if any(f["state"] in ("missing", "mismatch") for f in r["files"])]
    for r in lacking:
        _print_missing(r, args.verbose)
    if args.verbose:
        for r in rows:
            if r not in lacking and r["files"]:
                print(f"\n{r['task']}:")
                for f in r["files"]:
                    print(f"  {f['destination']}  {f['state']}  {f['detail']}")
    if lacking:
        print("\nget them with `fpt-bench data fetch TASK` (network), or copy them here from a machine that has "
              "them and run `fpt-bench data import TASK PATH` (a folder, an archive or a file)")
    return 0


def _print_missing(row: dict[str, Any], verbose: bool) -> None:
    print(f"\n{row['task']}: {row['note']}")
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for f in row["files"]:
        if f["state"] in ("missing", "mismatch") or verbose:
            key = (f["archive"], f["url"], f["archive_md5"]) if f["archive"] else ("", "", "")
            groups[key].append(f)
    for (archive, url, md5), files in groups.items():
        if archive:
            sums = f"md5 {md5}" if md5 else "no published checksum"
            print(f"  inside {archive} ({sums})\n    from {url}")
        folders: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for f in files:
            folders[str(Path(f["destination"]).parent)].append(f)
        for folder, members in folders.items():
            print(f"  goes in {folder}/")
            for f in members:
                what = "" if f["state"] == "missing" else f"  [{f['state']}: {f['detail']}]"
                checksum = f"md5 {f['md5']}" if f["md5"] else "no published checksum"
                where = "" if archive or not f["url"] else f"  {f['url']}"
                print(f"    {Path(f['path']).name}  {checksum}{where}{what}")


# ------------------------------------------------------------------------------------------ fetch/import
def _fetch(args: argparse.Namespace, host: Any, data_dir: Path) -> int:
    for name in args.tasks:
        task, options = _task_options(host, name, args)
        if task.spec.generated:
            print(f"{name}: generated on the fly, nothing to fetch")
            continue
        task.prepare(data_dir, True, options)
        print(f"{name}: ready in {data_dir}")
    return 0


def _import(args: argparse.Namespace, host: Any, data_dir: Path) -> int:
    from fpt_bench.datastore.importer import import_files

    task, options = _task_options(host, args.task, args)
    files = task.data_files(options)
    if not files:
        raise UserError(f"task {args.task!r} reads no files (it is generated); nothing to import")
    states = import_files(args.task, data_dir, files, args.path, verify=not args.no_verify)
    for s in states:
        print(f"  {s.file.path}: {s.state} ({s.detail})" if s.state != "missing" else f"  {s.file.path}: not in "
              f"{args.path}")
    imported = sum(s.usable for s in states)
    print(f"{args.task}: imported {imported} of {len(files)} file(s) into {data_dir}")
    return 0 if imported == len(files) else 2


def _generate(args: argparse.Namespace, host: Any, data_dir: Path) -> int:
    from fpt_bench.cells.config import parse_kv

    task, options = _task_options(host, args.task, args)
    generate = getattr(task, "generate_data", None)
    if generate is None:
        raise UserError(f"task {args.task!r} has no data generator")
    sizes = None
    if args.sizes:
        try:
            sizes = {k: int(v) for k, v in parse_kv(args.sizes, "--sizes").items()}
        except ValueError:
            raise UserError(f"--sizes: expected SPLIT=N pairs, got {args.sizes!r}") from None
    paths = generate(data_dir, args.seed, args.out, sizes)
    for split, path in paths.items():
        print(f"{split}: {path}")
    return 0
