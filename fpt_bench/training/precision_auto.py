"""``precision=auto``: the faster of fp32 and bf16 autocast on the machine a cell runs on, for training and for
evaluation separately (docs/performance.md).

- ``fp32`` / ``bf16`` force both. On CUDA, ``auto`` is bf16 where the GPU supports it (no calibration). On a CPU
  whose oneDNN reports no bf16 (bf16 would be emulated, tens of times slower) it is fp32 without calibration.
  Other devices: fp32.
- On a CPU with bf16, a short **calibration** (``BUDGET_S``, ``fpt_bench.training.precision_workload``) times the
  backbone's own matrix products at the cell's rows in both precisions, for training (forward + the backward
  the freeze policy needs) and for evaluation (forward under ``inference_mode``). bf16 is chosen for a mode
  where it takes at most ``BF16_MARGIN`` of fp32's time (ties go to fp32: exact arithmetic).
- A clear choice (``decide``: every round agreed, the machine was not busy) is cached per machine (CPU model
  and avx/amx flags, torch version, thread count) and workload in ``$FPT_BENCH_PRECISION_CACHE`` or
  ``$XDG_CACHE_HOME/fpt-bench/precision.json``, written atomically under a lock (parallel workers calibrate one
  at a time, the others then read the choice); a corrupt cache is ignored and rewritten. A measurement prints
  one line; a cached choice prints one line the first time a process uses it.

The calibration draws its data from its own generator: a cell's numbers do not depend on whether the cache was
warm.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from fpt_bench.api.errors import CorruptFileError
from fpt_bench.api.hparams import TrainHParams
from fpt_bench.infra.atomic import atomic_write
from fpt_bench.infra.safe_read import read_text
from fpt_bench.training import distributed
from fpt_bench.training.precision_workload import BUDGET_S, MODES, PRECISIONS, Measurement, Workload, measure, signature
from fpt_bench.training.precision_workload import workload as build_workload

CACHE_ENV = "FPT_BENCH_PRECISION_CACHE"
CACHE_VERSION = 1
Timer = Callable[[Workload, torch.device, float], Measurement]
BF16_MARGIN = 0.95  # bf16 must take at most this share of fp32's time to be chosen
BUSY_LOAD = 2.0  # not cached above this load average per core (the calibrating process itself adds ~1 per thread)


@dataclass
class Choice:
    """What ``precision`` resolved to and how (the result's ``provenance.precision_auto``)."""

    train: str
    eval: str
    source: str  # forced | cuda | device | no_bf16 | measured | cache
    reason: str
    bf16_speedup_train: float | None = None  # fp32 time / bf16 time of the backbone's products (>1: bf16 faster)
    bf16_speedup_eval: float | None = None
    calibration_seconds: float | None = None  # what the measurement took (when it was made, for a cached one)
    rounds: int | None = None
    row_scale: float | None = None
    load_average: float | None = None  # the 1-minute load average when it was measured
    machine: str | None = None
    workload: str | None = None
    cache: str | None = None

    def record(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------------------------- decide
def pick(fp32_seconds: float, bf16_seconds: float) -> str:
    """bf16 when it takes at most ``BF16_MARGIN`` of fp32's time, else fp32."""
    return "bf16" if bf16_seconds <= BF16_MARGIN * fp32_seconds else "fp32"


def busy(load: float | None, cores: int | None) -> bool:
    """Is the machine busy with other work: a 1-minute load average above BUSY_LOAD x its cores?"""
    return load is not None and load > BUSY_LOAD * (cores or 1)


def decide(measured: Measurement) -> tuple[dict[str, str], dict[str, float], str | None]:
    """Per mode: the chosen precision and bf16's speed-up (fp32 seconds / bf16 seconds); and why the choice is
    not clear enough to cache (None when it is): a round that picked otherwise in either mode, or a busy machine."""
    chosen, speedup, unclear = {}, {}, None
    for mode in MODES:
        fp32, bf16 = measured.best[mode]["fp32"], measured.best[mode]["bf16"]
        speedup[mode] = fp32 / max(bf16, 1e-12)
        chosen[mode] = pick(fp32, bf16)
        rounds = zip(measured.per_round[mode]["fp32"], measured.per_round[mode]["bf16"], strict=True)
        if not all(pick(a, b) == chosen[mode] for a, b in rounds):
            unclear = "its rounds disagreed"
    if busy(measured.load, os.cpu_count()):
        unclear = f"the machine was busy (load average {measured.load:.1f} on {os.cpu_count()} cores)"
    return chosen, speedup, unclear


# ------------------------------------------------------------------------------------------ machine
def _cpu_model_and_flags() -> tuple[str, str]:
    """The CPU's model name and its avx/amx flags (Linux: /proc/cpuinfo; elsewhere the platform's name)."""
    found: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            found.setdefault(key.strip(), value.strip())
    flags = " ".join(sorted(f for f in found.get("flags", "").split() if f.startswith(("avx", "amx"))))
    return found.get("model name") or platform.processor() or platform.machine(), flags


def machine_key(device: torch.device) -> str:
    """What a cached choice holds for: the CPU model and its avx/amx flags (or the GPU), torch, the threads."""
    if device.type == "cuda":
        hardware = f"cuda {torch.cuda.get_device_name(device)}"
    else:
        name, flags = _cpu_model_and_flags()
        hardware = f"{device.type} {name} [{flags}]"
    return f"{hardware} | torch {torch.__version__} | {torch.get_num_threads()} threads"


# -------------------------------------------------------------------------------------------- cache
def cache_path() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fpt-bench" / "precision.json"


def _read(path: Path) -> dict[str, Any]:
    """The cache's entries; a missing file reads as empty, so does a corrupt one (it is rewritten)."""
    try:  # a regular file of bounded size ($FPT_BENCH_PRECISION_CACHE could name a fifo or /dev/zero)
        data = json.loads(read_text(path, 1 << 20, "precision cache"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, CorruptFileError):
        data = None
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION or not isinstance(data.get("entries"),
                                                                                             dict):
        print(f"fpt-bench: ignoring the unreadable precision cache {path}; it will be rewritten", file=sys.stderr)
        return {}
    return data["entries"]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on a file beside the cache (POSIX; elsewhere none: a concurrent calibration is only
    noisier)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_ENTRY_KEYS = ("train", "eval", "bf16_speedup_train", "bf16_speedup_eval", "calibration_seconds", "rounds",
               "row_scale", "load_average", "workload")


def _cached(entries: dict[str, Any], machine: str, key: str, path: Path) -> Choice | None:
    """The stored choice, or None when there is none or it is malformed (then it is measured and replaced)."""
    entry = entries.get(machine, {}).get(key) if isinstance(entries.get(machine), dict) else None
    if not isinstance(entry, dict) or not set(_ENTRY_KEYS) <= set(entry):
        return None
    numbers = ("bf16_speedup_train", "bf16_speedup_eval", "calibration_seconds", "row_scale")
    if not {entry["train"], entry["eval"]} <= set(PRECISIONS) or not all(
            isinstance(entry[k], int | float) and not isinstance(entry[k], bool) for k in numbers):
        return None
    return Choice(**{k: entry[k] for k in _ENTRY_KEYS}, source="cache", reason=_reason(entry), machine=machine,
                  cache=str(path))


_ANNOUNCED: set[tuple[Path, str]] = set()


def _reason(entry: dict[str, Any]) -> str:
    return (f"bf16 ran this backbone's products {entry['bf16_speedup_train']:.2f}x / {entry['bf16_speedup_eval']:.2f}x "
            f"as fast as fp32 (training / evaluation); bf16 is chosen from {1 / BF16_MARGIN:.2f}x")


def _store(path: Path, entries: dict[str, Any], machine: str, key: str, choice: Choice) -> bool:
    if not isinstance(entries.get(machine), dict):
        entries[machine] = {}
    entries[machine][key] = {k: getattr(choice, k) for k in _ENTRY_KEYS} | {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    blob = (json.dumps({"version": CACHE_VERSION, "entries": entries}, indent=1, sort_keys=True) + "\n").encode()
    try:
        atomic_write(path, lambda handle: handle.write(blob))
    except OSError:
        return False
    return True


# ------------------------------------------------------------------------------------------- choose
def calibrate(device: torch.device, key: str, build: Callable[[], Workload], *, timer: Timer | None = None,
              path: Path | None = None) -> Choice:
    """The machine's cached choice for the workload named ``key``, or a new measurement of ``build()``: announced
    in one line on stderr, and stored when it is clear (``decide``); an unclear one holds for this run only."""
    path = path or cache_path()
    machine = machine_key(device)
    key = hashlib.sha256(key.encode()).hexdigest()[:16]
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(_locked(path))
            writable = True
        except OSError:  # an unwritable cache folder: measure each time
            writable = False
        entries = _read(path) if path.exists() else {}  # a read-only cache is still read
        cached = _cached(entries, machine, key, path)
        if cached is not None:
            if (path, key) not in _ANNOUNCED:  # once per process and workload: a sweep is not a wall of these
                _ANNOUNCED.add((path, key))
                print(f"fpt-bench: precision auto: training {cached.train}, evaluation {cached.eval} (cached in "
                      f"{path}: {cached.reason}; delete the file to measure again)", file=sys.stderr, flush=True)
            return cached
        t0 = time.perf_counter()
        work = build()
        measured = (timer or measure)(work, device, max(BUDGET_S - (time.perf_counter() - t0), BUDGET_S / 2))
        chosen, speedup, unclear = decide(measured)
        choice = Choice(train=chosen["train"], eval=chosen["eval"], source="measured", reason="",
                        bf16_speedup_train=speedup["train"], bf16_speedup_eval=speedup["eval"],
                        calibration_seconds=time.perf_counter() - t0, rounds=measured.rounds,
                        row_scale=measured.scale, load_average=measured.load, machine=machine,
                        workload=work.describe())
        choice.reason = _reason(choice.record())
        if unclear:
            where = f"not cached ({unclear}): the next run measures again"
        elif writable and _store(path, entries, machine, key, choice):
            choice.cache, where = str(path), f"cached in {path}"
            _ANNOUNCED.add((path, key))
        else:
            where = f"not cached ({path} is not writable)"
    print(f"fpt-bench: precision auto: bf16 runs this backbone's products {speedup['train']:.2f}x as fast as fp32 "
          f"for training, {speedup['eval']:.2f}x for evaluation (measured in {choice.calibration_seconds:.1f} s) -> "
          f"training {choice.train}, evaluation {choice.eval}; {where}", file=sys.stderr, flush=True)
    return choice


def cpu_has_bf16() -> bool:
    """Does oneDNN run bf16 natively on this CPU (else it is emulated: tens of times slower than fp32)?"""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def static(precision: str, device: torch.device) -> Choice | None:
    """The choice when nothing needs measuring (a forced precision, CUDA, a CPU without bf16, another device);
    None when ``auto`` calibrates."""
    if precision in PRECISIONS:
        return Choice(train=precision, eval=precision, source="forced", reason=f"precision={precision}")
    if precision != "auto":
        raise ValueError(f"unknown precision {precision!r}")
    if device.type == "cuda":
        chosen = "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        return Choice(train=chosen, eval=chosen, source="cuda",
                      reason="the GPU supports bf16" if chosen == "bf16" else "the GPU has no bf16")
    if device.type != "cpu":
        return Choice(train="fp32", eval="fp32", source="device", reason=f"no bf16 calibration on {device.type}")
    if not cpu_has_bf16():
        return Choice(train="fp32", eval="fp32", source="no_bf16",
                      reason="oneDNN reports no bf16 on this CPU (bf16 would be emulated)")
    return None


def choose(precision: str, device: torch.device, model: torch.nn.Module, *, micro_batch: int, eval_batch: int,
           seq_len: int, timer: Timer | None = None, path: Path | None = None) -> Choice:
    """Training and evaluation precision of a cell of ``model`` on ``device``: forced, static, or calibrated."""
    fixed = static(precision, device)
    if fixed is not None:
        return fixed
    return calibrate(device, signature(model, micro_batch, eval_batch, seq_len),
                     lambda: build_workload(model, micro_batch, eval_batch, seq_len), timer=timer, path=path)


def for_cell(hp: TrainHParams, device: torch.device, model: torch.nn.Module, seq_len: int) -> Choice:
    """``choose`` for a cell's hyperparameters; under torchrun rank 0 decides for all ranks."""
    shard = math.ceil(hp.batch_size / distributed.world())
    micro_batch = math.ceil(shard / hp.grad_accum)
    decided = choose(hp.precision, device, model, micro_batch=micro_batch, eval_batch=hp.eval_batch_size,
                     seq_len=seq_len) if distributed.is_main() else None
    return distributed.broadcast(decided)
