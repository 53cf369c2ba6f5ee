"""``fpt-bench leaderboard``, ``fpt-bench attention`` and ``fpt-bench ls cells``: reading result files."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fpt_bench.api.errors import UserError
from fpt_bench.cells.profiles import PROFILES

COMMANDS = ("leaderboard", "attention")
FORMATS = ("github", "latex", "html", "csv", "json")
LAYOUTS = ("paper", "long")
DEFAULT_FOLDER = Path("leaderboard")


def _add_overrides(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("suite cells as they were run (the same flags `run --suite` was given)")
    group.add_argument("--task-args", metavar="K=V,...", help="task options merged onto every suite cell")
    group.add_argument("--backbone-args", metavar="K=V,...", help="backbone options merged onto every suite cell")
    group.add_argument("--policy-args", metavar="K=V,...", help="policy options merged onto every suite cell")
    group.add_argument("--profile", choices=list(PROFILES), help="only results of this profile")


def add_parser(sub: Any) -> None:
    lb = sub.add_parser("leaderboard", help="tables, plots and the published page from result files",
                        description="Aggregate result files (mean ± std over seeds) beside the paper's numbers.")
    lb.add_argument("result_dirs", nargs="*", type=Path, metavar="RESULT_DIR",
                    help="result folders or files (default: results/)")
    lb.add_argument("--suite", help="lay the results out as this suite's table (with the paper's numbers)")
    lb.add_argument("--format", choices=FORMATS, default="github", help="output format (default github)")
    lb.add_argument("--layout", choices=LAYOUTS, default="paper",
                    help="paper: tasks as columns; long: one row per configuration (default paper)")
    lb.add_argument("--protocol", help="only results of this evaluation protocol (default or paper-compat)")
    lb.add_argument("--output", type=Path, metavar="FILE", help="write the table here instead of stdout")
    lb.add_argument("--plots", type=Path, metavar="DIR", help="also write the plots (PNG and SVG) to DIR")
    lb.add_argument("--publish", type=Path, metavar="DIR", help="regenerate DIR/LEADERBOARD.md, DIR/index.html, "
                    "DIR/plots/ and DIR/reference.json from DIR/results/, after adding the RESULT_DIRs' result "
                    "files to it (checked); suites from DIR/leaderboard.toml, else those the results belong to")
    lb.add_argument("--add", nargs="+", type=Path, metavar="FILE", help="check result files made elsewhere and "
                    "add the accepted ones to DIR/results/ (DIR from --publish, default leaderboard/), then publish")
    _add_overrides(lb)

    att = sub.add_parser("attention", help="attention maps of a trained cell on one input (PNG and SVG)",
                         description="Needs the cell's trained parameters: run it with --keep-checkpoints.")
    att.add_argument("result", type=Path, metavar="RESULT", help="the cell's result file")
    att.add_argument("--index", type=int, default=0, help="which example of the split (default 0)")
    att.add_argument("--split", help="which split (default: the task's first test split)")
    att.add_argument("--head", type=int, help="one attention head (default: the mean over heads)")
    att.add_argument("--output", type=Path, metavar="STEM", help="output path without suffix "
                     "(default: next to the result, <result>.attention)")
    att.add_argument("--data-dir", type=Path, help="where task data lives (default $FPT_BENCH_DATA or cache)")


def add_ls_arguments(ls: argparse.ArgumentParser) -> None:
    group = ls.add_argument_group("ls cells")
    group.add_argument("--suite", help="the suite whose cells to list (default: every result found)")
    group.add_argument("--output-dir", type=Path, default=Path("results"), help="where the results are")
    group.add_argument("--seeds", metavar="S,S,...", help="seeds expected (default: those found)")
    for flag in ("--task-args", "--backbone-args", "--policy-args"):
        group.add_argument(flag, metavar="K=V,...", help=f"{flag} the suite was run with")
    group.add_argument("--profile", choices=list(PROFILES), help="only results of this profile")


def _overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    from fpt_bench.cells.config import parse_kv

    out = {}
    for key, flag in (("task_args", "--task-args"), ("backbone_args", "--backbone-args"),
                      ("policy_args", "--policy-args")):
        if getattr(args, key, None):
            out[key] = parse_kv(getattr(args, key), flag)
    return out


def ls_cells(args: argparse.Namespace) -> int:
    from fpt_bench.host.manager import get_host
    from fpt_bench.leaderboard.cells import format_statuses, result_statuses, suite_cell_statuses

    if args.suite:
        seeds = None
        if args.seeds:
            try:
                seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
            except ValueError:
                raise UserError(f"--seeds: expected integers separated by commas, got {args.seeds!r}") from None
        host = get_host()
        rows, refused = suite_cell_statuses(host.suites.get(args.suite), host, args.output_dir, args.profile,
                                            seeds, _overrides(args))
    else:
        rows, refused = result_statuses(args.output_dir)
    _warn(refused)
    if args.json:
        print(json.dumps([r.as_dict() for r in rows], indent=2))
    else:
        print(format_statuses(rows), end="")
    return 0


def _warn(refused: list[str]) -> None:
    for reason in refused:
        print(f"fpt-bench: warning: not counted: {reason}", file=sys.stderr)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from fpt_bench.host.manager import get_host
    from fpt_bench.leaderboard import build_table, load_results, render

    if args.add or args.publish:
        return _publish(args)
    paths = args.result_dirs or [Path("results")]
    results, refused = load_results(paths)
    _warn(refused)
    suite = get_host().suites.get(args.suite) if args.suite else None
    if not results and suite is None:
        raise UserError(f"no result files in {', '.join(map(str, paths))}")
    table = build_table(results, suite, _overrides(args), args.profile, args.protocol, layout=args.layout)
    table.refused = refused
    text = render(table, args.format, args.layout)
    if args.output:
        from fpt_bench.infra.atomic import atomic_write

        atomic_write(args.output, lambda handle: handle.write(text.encode("utf-8")))
    else:
        sys.stdout.write(text)
    if args.plots:
        from fpt_bench.analysis import plots

        stem = args.plots / (table.suite or "results")
        made = plots.figure1(table, stem.with_name(f"{stem.name}-figure1")) + plots.learning_curves(
            table, stem.with_name(f"{stem.name}-curves")) + (plots.steps_plot(table, stem.with_name(
                f"{stem.name}-steps")) or [])
        print("plots: " + ", ".join(map(str, made)), file=sys.stderr)
    return 0


def _result_files(paths: list[Path]) -> list[Path]:
    """The result files under folders (``*.json``) and the files named; links out of a folder are refused."""
    from fpt_bench.leaderboard.collect import result_files

    files, refused = result_files(paths)
    for reason in refused:
        print(f"refused    {reason}", file=sys.stderr)
    return files


def _publish(args: argparse.Namespace) -> int:
    from fpt_bench.host.manager import get_host
    from fpt_bench.infra.destination import check_writable
    from fpt_bench.leaderboard.add import add_results
    from fpt_bench.leaderboard.page import NothingToPublish, publish

    folder = args.publish or DEFAULT_FOLDER
    check_writable(folder)  # a file there, a read-only disk: say so before checking a single result
    code = 0
    named = list(args.add or [])
    from_dirs = _result_files(args.result_dirs) if args.publish and args.result_dirs else []
    if named or from_dirs:
        report = add_results(named + from_dirs, folder / "results", frozenset(map(Path, from_dirs)))
        listed = len(report.added) + len(report.unchanged) <= 10  # a folder of results: counts, not every file
        for path in report.added if listed else []:
            print(f"added      {path}")
        for path in report.unchanged if listed else []:
            print(f"unchanged  {path} (already published)")
        if not listed:
            print(f"added {len(report.added)} result file(s) to {folder / 'results'} ({len(report.unchanged)} "
                  f"already there)")
        for reason in report.refused:
            print(f"refused    {reason}", file=sys.stderr)
        code = 2 if report.refused else 0
    try:
        written = publish(folder, get_host())
    except NothingToPublish as exc:
        print(f"fpt-bench: warning: {exc}", file=sys.stderr)
        return code or exc.exit_code  # refused files are the user's error (2) whatever else there is
    print(f"published {folder}/: " + ", ".join(p.name for p in written if p.suffix in (".md", ".html", ".json")))
    return code


def cmd_attention(args: argparse.Namespace) -> int:
    from fpt_bench.analysis import plots
    from fpt_bench.analysis.attention import attention_maps, load_example, load_trained
    from fpt_bench.datastore.files import resolve_data_dir
    from fpt_bench.host.manager import get_host

    rebuilt = load_trained(args.result, get_host())
    batch = load_example(rebuilt, resolve_data_dir(args.data_dir), args.split, args.index)
    maps = attention_maps(rebuilt, batch.x, batch.lengths, args.head)
    cell = rebuilt.result.cell
    head = "mean over heads" if args.head is None else f"head {args.head}"
    title = (f"{cell.task} / {cell.backbone} / {cell.policy} / seed {cell.seed}: example {args.index}, {head} "
             f"(parameters of step {rebuilt.step})")
    stem = args.output or args.result.with_suffix(".attention")
    for path in plots.attention_figure([m.numpy() for m in maps], title, stem):
        print(path)
    return 0


def run(args: argparse.Namespace) -> int:
    return {"leaderboard": cmd_leaderboard, "attention": cmd_attention}[args.command](args)
