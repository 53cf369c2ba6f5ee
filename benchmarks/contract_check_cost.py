"""What the runtime plugin-contract checks cost a smoke cell (issue 17's target: under 1 %).

Every check a cell runs before training goes through ``fpt_bench.cells.contract_check._guard`` (the backbone's
sizes and roles, something trainable and reachable after the policy, the task's first batches and every label
against its spec, the backbone's output width on one example). This script times each of those calls inside real
smoke cells run through ``run_cell`` and prints, per cell, the checks' share of the cell:

    python benchmarks/contract_check_cost.py
    python benchmarks/contract_check_cost.py --tasks bit_xor --backbone-args weights=random,n_layers=2,n_embd=32

Both wall and CPU time (``time.thread_time`` of the checking thread for the checks, the process's CPU time for the
cell): on a shared machine wall time measures the neighbours too. The first cell of a process also pays the
imports and warm-up of torch; it is printed but left out of the total. Prints the CPU's flags and the load.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from fpt_bench.cells import contract_check
from fpt_bench.cells.config import build_run_config, expand_cells, parse_kv
from fpt_bench.cells.runner import RunContext, run_cell
from fpt_bench.host.manager import get_host
from fpt_bench.results.store import result_path

SPENT = {"wall": 0.0, "cpu": 0.0, "calls": 0}


def _timed_guard(original: Any) -> Any:
    def guard(*args: Any, **kwargs: Any) -> None:
        w, c = time.perf_counter(), time.thread_time()
        try:
            original(*args, **kwargs)
        finally:
            SPENT["wall"] += time.perf_counter() - w
            SPENT["cpu"] += time.thread_time() - c
            SPENT["calls"] += 1
    return guard


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="bit_xor,bit_memory,listops", help="comma-separated generated tasks "
                        "(or ListOps, whose smoke profile reads an in-memory set)")
    parser.add_argument("--backbone", default="gpt2")
    parser.add_argument("--backbone-args", default="weights=random", help="default: GPT-2 base, random weights")
    parser.add_argument("--seeds", default="0,1")
    args = parser.parse_args()
    contract_check._guard = _timed_guard(contract_check._guard)  # type: ignore[assignment]
    host = get_host()
    config = build_run_config({}, {"tasks": args.tasks.split(","), "backbone": args.backbone, "profile": "smoke",
                                   "backbone_args": parse_kv(args.backbone_args, "--backbone-args"),
                                   "seeds": [int(s) for s in args.seeds.split(",")]})
    flags = subprocess.run("lscpu | grep -o 'avx[^ ]*\\|amx[^ ]*' | sort -u | tr '\\n' ' '", shell=True,
                           capture_output=True, text=True).stdout.strip()
    print(f"cpu flags: {flags}\nload before: {os.getloadavg()}  torch threads: {torch.get_num_threads()}")
    print(f"{'task':<12} {'seed':>4} {'cell wall s':>11} {'cell cpu s':>10} {'checks wall ms':>14} "
          f"{'checks cpu ms':>13} {'share wall':>10} {'share cpu':>9}")
    totals = {"cell_wall": 0.0, "cell_cpu": 0.0, "wall": 0.0, "cpu": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        ctx = RunContext(device="cpu", data_dir=Path(tmp) / "data", output_dir=Path(tmp) / "out", progress=False)
        for i, cell in enumerate(expand_cells(config, host, "cpu")):
            SPENT.update(wall=0.0, cpu=0.0, calls=0)
            t0, c0 = time.perf_counter(), _cpu()
            result = run_cell(cell, result_path(ctx.output_dir, cell), ctx)
            wall, cpu = time.perf_counter() - t0, _cpu() - c0
            if result.status != "ok" or SPENT["calls"] != 4:
                print(f"{cell.task}: {result.status} after {SPENT['calls']} checks: {result.error}", file=sys.stderr)
                return 1
            note = "  (first cell: warm-up, not in the total)" if i == 0 else ""
            print(f"{cell.task:<12} {cell.seed:>4} {wall:11.2f} {cpu:10.2f} {1000 * SPENT['wall']:14.1f} "
                  f"{1000 * SPENT['cpu']:13.1f} {SPENT['wall'] / wall:10.3%} {SPENT['cpu'] / cpu:9.3%}{note}",
                  flush=True)
            if i:
                for key, value in (("cell_wall", wall), ("cell_cpu", cpu), ("wall", SPENT["wall"]),
                                   ("cpu", SPENT["cpu"])):
                    totals[key] += value
    if totals["cell_wall"]:
        print(f"total (cells after the first): checks {totals['wall'] / totals['cell_wall']:.3%} of the wall time, "
              f"{totals['cpu'] / totals['cell_cpu']:.3%} of the CPU time (target: < 1 %)")
    print(f"load after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
