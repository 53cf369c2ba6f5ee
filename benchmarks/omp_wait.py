"""OpenMP threads that spin vs sleep while they wait (fpt_bench/infra/threads.py): one smoke cell's wall time in
a fresh process under ``OMP_WAIT_POLICY=ACTIVE`` and under ``PASSIVE`` (fpt-bench's default), alternated, with the
load before each. The ratio is what a busy machine gains; on an idle one it should be near 1.

    python benchmarks/omp_wait.py --task bit_xor --backbone-args preset=minilm --rounds 2
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

SMOKE = Path(__file__).with_name("smoke_cells.py")


def one(policy: str, args: argparse.Namespace) -> float:
    env = {**os.environ, "OMP_WAIT_POLICY": policy, "HF_HUB_OFFLINE": "1"}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(SMOKE), "--tasks", args.task, "--backbone", args.backbone,
                    "--backbone-args", args.backbone_args], env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="bit_xor")
    parser.add_argument("--backbone", default="hf_encoder")
    parser.add_argument("--backbone-args", default="preset=minilm")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"ACTIVE": [], "PASSIVE": []}
    for _ in range(args.rounds):
        for policy in times:
            load = os.getloadavg()[0]
            times[policy].append(one(policy, args))
            print(f"{policy:<8} {times[policy][-1]:7.1f} s  (1-min load before: {load:.2f})", flush=True)
    active, passive = min(times["ACTIVE"]), min(times["PASSIVE"])
    print(f"best of {args.rounds}: ACTIVE {active:.1f} s, PASSIVE {passive:.1f} s, ratio {active / passive:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
