"""How long one `smoke` cell of each built-in task takes here, with a given backbone (the target: ~30 s or less on
a 2-core CPU with the backbone of the suite that runs it).

Tasks that read files get synthetic splits of their real shapes and decoders instead (random pixels, protein
sequences of TAPE-like lengths): the time of a cell depends on the shapes, not on the values. Generated tasks
(bit_memory, bit_xor) and ListOps's small set (what smoke reads) run as they are.

    python benchmarks/smoke_cells.py --backbone hf_encoder --backbone-args preset=minilm
    python benchmarks/smoke_cells.py --backbone gpt2 --backbone-args weights=random --tasks bit_xor,mnist

Prints one line per cell (wall, train and evaluation seconds, and the CPU seconds the process used: on a shared
machine wall time says more about the neighbours than about the cell; on an idle 2-core CPU a cell's wall time is
about its CPU time / 1.5-2), the CPU's flags and the load.
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

import torch

from fpt_bench.api.task import SplitData
from fpt_bench.cells.config import build_run_config, expand_cells, parse_kv
from fpt_bench.cells.runner import RunContext, run_cell
from fpt_bench.host.manager import get_host
from fpt_bench.results.store import result_path
from fpt_bench_plugins.tasks import vision_module

FILE_TASKS = {"mnist", "fashion_mnist", "cifar10", "cifar10_lra", "remote_homology", "remote_homology_scope"}


def synthetic(name: str, split: str, max_len: int, n: int = 400) -> SplitData:
    """A split of task ``name``'s real storage shape and decoder, with random values."""
    g = torch.Generator().manual_seed(hash((name, split)) % 2**31)
    y = torch.randint(0, 10, (n,), generator=g)
    if name in ("mnist", "fashion_mnist"):
        x = torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8)
        return SplitData(x, y, info={"synthetic": True}, decode=vision_module.decode_mnist)
    if name in ("cifar10", "cifar10_lra"):
        x = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
        return SplitData(x, y, info={"synthetic": True}, decode=vision_module.decode_cifar if name == "cifar10"
                         else vision_module.decode_gray)
    # proteins: TAPE's remote homology lengths are roughly log-normal around 250 residues, cut at max_len
    lengths = torch.exp(torch.randn(n, generator=g) * 0.5 + 5.5).long().clamp(20, max_len)
    x = torch.randint(1, 25, (n, int(lengths.max())), generator=g, dtype=torch.uint8)
    x[torch.arange(x.shape[1])[None, :] >= lengths[:, None]] = 0
    return SplitData(x, y, lengths, info={"synthetic": True}, decode=lambda t: t.long())


def patch_file_tasks() -> None:
    host = get_host()
    for name in FILE_TASKS & set(host.tasks.names()):
        task = host.tasks.get(name)

        def load(split: str, options: object, data_dir: Path, task: object = task, name: str = name) -> SplitData:
            return synthetic(name, split, task.resolve_spec(options).max_len)  # type: ignore[attr-defined]

        task.load = load  # type: ignore[method-assign]
        task.prepare = lambda *args, **kwargs: None  # type: ignore[method-assign]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="hf_encoder")
    parser.add_argument("--backbone-args", default="preset=minilm")
    parser.add_argument("--tasks", default="", help="comma-separated (default: every built-in task)")
    parser.add_argument("--profile", default="smoke")
    args = parser.parse_args()
    host = get_host()
    tasks = [t for t in args.tasks.split(",") if t] or sorted(host.tasks.names())
    patch_file_tasks()
    config = build_run_config({}, {"tasks": tasks, "backbone": args.backbone, "profile": args.profile,
                                   "backbone_args": parse_kv(args.backbone_args, "--backbone-args")})
    flags = subprocess.run("lscpu | grep -o 'avx[^ ]*\\|amx[^ ]*' | sort -u | tr '\\n' ' '", shell=True,
                           capture_output=True, text=True).stdout.strip()
    print(f"cpu flags: {flags}\nload before: {os.getloadavg()}  torch threads: {torch.get_num_threads()}")
    print(f"{'task':<22} {'status':<7} {'wall s':>7} {'cpu s':>6} {'train s':>8} {'eval s':>7} {'steps':>5}  backbone")
    with tempfile.TemporaryDirectory() as tmp:
        ctx = RunContext(device="cpu", data_dir=Path(tmp) / "data", output_dir=Path(tmp) / "out", progress=False)
        for cell in expand_cells(config, host, "cpu"):
            t0, c0 = time.perf_counter(), _cpu()
            result = run_cell(cell, result_path(ctx.output_dir, cell), ctx)
            wall, cpu = time.perf_counter() - t0, _cpu() - c0
            t = result.timing
            print(f"{cell.task:<22} {result.status:<7} {wall:7.1f} {cpu:6.1f} {t.train_seconds:8.1f} "
                  f"{t.eval_seconds:7.1f} {t.steps:5d}  {cell.backbone}[{args.backbone_args}]", flush=True)
            if result.status == "failed":
                print(f"    {(result.error or '').splitlines()[0]}", file=sys.stderr)
    print(f"load after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
