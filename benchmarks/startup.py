"""How long the command line takes to answer before any real work: ``--help``, ``--version``, ``ls suites``,
``plugins`` and ``run --help``, each against a bare ``python -c pass`` and ``python -c 'import torch'``.

    python benchmarks/startup.py [--repeat N]

Prints, per command, the median wall and CPU seconds over N runs (default 5, interleaved so that load from elsewhere
meets every command alike) and its ratio to importing torch. None of them imports torch (ratio well under 1): ``ls``,
``plugins`` and ``run --help`` load every plugin, whose registrations are light (tensor code is imported when a cell
runs; ``tests/test_startup_imports.py`` checks that no torch is imported, this script what the rest costs).
Record the machine's CPU flags and load with the numbers (printed at the end).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    "fpt-bench --help": ["fpt-bench", "--help"],
    "fpt-bench --version": ["fpt-bench", "--version"],
    "fpt-bench run --help": ["fpt-bench", "run", "--help"],
    "fpt-bench ls suites": ["fpt-bench", "ls", "suites"],
    "fpt-bench plugins": ["fpt-bench", "plugins"],
}
BASELINE = "python -c 'import torch'"


def timed(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU (user + system of the child) seconds of one run; the command must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return "unknown"
    return " ".join(sorted(f for f in flags if f.startswith(("avx", "amx")))) or "no AVX"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per command (median reported)")
    args = parser.parse_args()
    if shutil.which("fpt-bench") is None:
        raise SystemExit("fpt-bench is not on PATH: activate the environment it is installed in")
    env_note = {k: os.environ[k] for k in ("HF_HUB_OFFLINE", "OMP_NUM_THREADS") if k in os.environ}
    for argv in COMMANDS.values():  # warm the file cache once, untimed
        timed(argv)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in COMMANDS}
    for _ in range(args.repeat):
        for name, argv in COMMANDS.items():
            samples[name].append(timed(argv))
    base = statistics.median(w for w, _ in samples[BASELINE])
    print(f"{'command':<28} {'wall s':>7} {'cpu s':>7} {'wall / import torch':>20}")
    for name, runs in samples.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(f"{name:<28} {wall:7.2f} {cpu:7.2f} {wall / base:20.2f}")
    print(f"\nmedian of {args.repeat} interleaved runs; CPU flags: {cpu_flags()}; load average: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; cores: {os.cpu_count()}; env: {env_note or 'default'}")


if __name__ == "__main__":
    main()
