"""Does bf16 autocast reach fp32's accuracy? The same cells, trained in both precisions, over several seeds.

Runs one cell grid twice through the real command line, ``fpt-bench run ... --precision fp32`` and
``... --precision bf16`` (finished cells are skipped, so a rerun only reads the results), then reads the result
files and prints each precision's test accuracy per seed, mean +- sample std, the difference of the means with
its standard error (Welch), and whether that difference is within seed noise (|difference| <= 2 standard
errors). Wall time per cell is printed too: on a CPU without bf16 units autocast is emulated and slow, which says
nothing about accuracy.

    python benchmarks/bf16_accuracy.py                       # tiny random-init GPT-2 on Fashion-MNIST, quick
    python benchmarks/bf16_accuracy.py --task mnist --backbone-args weights=random,n_layers=4 --seeds 0,1,2,3,4
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from fpt_bench.api.errors import UserError
from fpt_bench.cells.config import expand_cells
from fpt_bench.cli import app as cli
from fpt_bench.host.manager import get_host
from fpt_bench.results.store import read_result, result_path

PRECISIONS = ("fp32", "bf16")


def run_args(args: argparse.Namespace, precision: str) -> list[str]:
    """The ``fpt-bench`` arguments that run the grid at one precision."""
    return ["run", "--task", args.task, "--backbone", args.backbone, "--backbone-args", args.backbone_args,
            "--policy", args.policy, "--seeds", args.seeds, "--profile", args.profile, "--device", args.device,
            "--precision", precision, "--output-dir", str(args.output_dir)]


def run_grid(args: argparse.Namespace, precision: str) -> None:
    command = run_args(args, precision)
    print("$ fpt-bench", " ".join(command), flush=True)
    code = subprocess.run([sys.executable, "-m", "fpt_bench", *command]).returncode
    if code:  # fpt-bench has said why (a bad option: exit code 2)
        raise SystemExit(code)


def cells(args: argparse.Namespace, precision: str) -> list[Any]:
    """The grid's cells at one precision, read from the same arguments by fpt-bench's own command line (so the
    same config hashes as the run)."""
    command = run_args(args, precision)
    assert command[0] == "run"
    return expand_cells(cli.run_config(command[1:]), get_host(), args.device)


def collect(args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    """The finished results of the grid's cells, by precision."""
    found: dict[str, list[dict[str, Any]]] = {p: [] for p in PRECISIONS}
    for precision in PRECISIONS:
        for cell in cells(args, precision):
            path = result_path(args.output_dir, cell)
            result = read_result(path) if path.exists() else None
            if result is not None and result.status == "ok":
                found[precision].append({"seed": cell.seed, "test_accuracy": 100 * result.metrics.test_accuracy,
                                         "wall_seconds": result.timing.wall_seconds, "file": str(path)})
    return found


def summarise(found: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per-precision statistics and the Welch comparison; every precision has at least one result."""
    stats = {}
    for precision, rows in found.items():
        acc = [r["test_accuracy"] for r in rows]
        stats[precision] = {"n": len(acc), "mean": statistics.mean(acc),
                            "std": statistics.stdev(acc) if len(acc) > 1 else math.nan,
                            "per_seed": {r["seed"]: round(r["test_accuracy"], 2) for r in rows},
                            "wall_seconds": [round(r["wall_seconds"], 1) for r in rows]}
    a, b = stats["fp32"], stats["bf16"]
    difference = b["mean"] - a["mean"]
    stderr = math.sqrt(a["std"] ** 2 / a["n"] + b["std"] ** 2 / b["n"])
    return {"precisions": stats, "difference": difference, "stderr": stderr,
            "within_seed_noise": abs(difference) <= 2 * stderr}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="fashion_mnist")
    parser.add_argument("--backbone", default="gpt2")
    parser.add_argument("--backbone-args", default="weights=random,n_layers=2,n_embd=128,n_head=4")
    parser.add_argument("--policy", default="fpt")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--output-dir", type=Path, default=Path("results/bf16-accuracy"))
    parser.add_argument("--json", type=Path, help="also write the summary here")
    parser.add_argument("--report-only", action="store_true", help="run nothing, summarise the results found")
    args = parser.parse_args(argv)
    for precision in () if args.report_only else PRECISIONS:
        run_grid(args, precision)
    try:
        found = collect(args)
    except (UserError, ValueError) as exc:  # a bad option or seed list, or an unreadable result file
        print(f"bf16_accuracy: error: {exc}", file=sys.stderr)
        return 2
    if not all(found.values()):
        print(f"no finished results of both precisions under {args.output_dir}", file=sys.stderr)
        return 2
    summary = summarise(found)
    print(f"\n{args.task}, {args.backbone} ({args.backbone_args}), {args.policy}, {args.profile}: test accuracy %")
    print("| precision | n | mean ± std | per seed | wall s per cell |")
    print("|---|---|---|---|---|")
    for precision, s in summary["precisions"].items():
        seeds = ", ".join(f"{v:.2f}" for v in s["per_seed"].values())
        walls = ", ".join(f"{w:.0f}" for w in s["wall_seconds"])
        print(f"| {precision} | {s['n']} | {s['mean']:.2f} ± {s['std']:.2f} | {seeds} | {walls} |")
    verdict = "within" if summary["within_seed_noise"] else "NOT within"
    print(f"\nbf16 - fp32: {summary['difference']:+.2f} points, standard error {summary['stderr']:.2f}: "
          f"{verdict} seed noise (|difference| <= 2 standard errors)")
    if args.json:
        args.json.write_text(json.dumps(dict(summary, config=vars(args)), indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
