"""Throughput of fpt-bench against a naive reference-style loop, in one process, at each task's real shapes.

For GPT-2 base with random init (nothing is downloaded) and each task's shape, it measures training samples/s (the
harness's ``Trainer._step`` against ``naive_loop.NaiveLoop.step``, steps alternating so machine noise hits both
alike; medians), evaluation samples/s (the harness's whole-split ``evaluate`` against the naive loop's ``no_grad``
pass at the training batch size; passes interleaved with the steps, medians), peak memory (CPU: the peak RSS of
each phase, reset through ``/proc/self/clear_refs``; CUDA: ``max_memory_allocated``), model FLOPs utilisation
(``fpt_bench.training.flops`` over a matmul peak measured in this process, in the precision each loop computes in),
whether both compute the same function (the naive model gets the harness's weights; max |logit difference| on one
batch), and, for output-layer-only training, the time of an epoch after the first with and without the feature cache.
Data is synthetic in each task's stored format (uint8 pixels, token ids with lengths; ListOps lengths uniform in [500,
2000], homology lengths log-normal around 250, at most 1024). It prints a table of ratios and writes JSON.

    python benchmarks/throughput.py                       # CPU default: bit_xor, mnist, cifar10
    python benchmarks/throughput.py --tasks all --layers 2 --steps 3   # every shape, shallow, a quick look
    python benchmarks/throughput.py --device cuda --tasks all --batch-size 16 --precision bf16 --compile

With ``--precision auto`` it compares precisions instead of loops: fp32, bf16 and what ``precision=auto`` chooses
after its calibration, per task, in one process (``precision_compare.py``).

    python benchmarks/throughput.py --precision auto --tasks mnist,cifar10 --cache-tasks ""
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import naive_loop  # noqa: E402
import precision_compare  # noqa: E402

ALL = ["bit_xor", "mnist", "cifar10", "bit_memory", "listops", "cifar10_lra", "remote_homology"]
CPU_DEFAULT = ["bit_xor", "mnist", "cifar10"]


@dataclass
class Shape:
    kind: str  # generated | image | tokens
    image: tuple[int, ...] = ()  # stored uint8 layout of one example (harness side)
    lengths: str = ""  # token tasks: the synthetic length distribution


SHAPES = {
    "bit_xor": Shape("generated"), "bit_memory": Shape("generated"),
    "mnist": Shape("image", (28, 28)), "cifar10": Shape("image", (3, 32, 32)),
    "cifar10_lra": Shape("image", (3, 32, 32)),
    "listops": Shape("tokens", lengths="uniform 500-2000"), "remote_homology": Shape("tokens", lengths="lognormal"),
}


# ------------------------------------------------------------------------------------------ memory
def _trim() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def reset_peak(device: torch.device) -> None:
    _trim()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM, the peak RSS
    except OSError:
        pass


def peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------------------------- data
def synthetic(task: str, n: int, spec: Any, seed: int) -> tuple[Any, Any]:
    """(harness SplitData, naive Dataset factory(train: bool)) with the same examples."""
    from fpt_bench import SplitData
    from fpt_bench_plugins.tasks import vision_module

    rng = np.random.default_rng(seed)
    shape = SHAPES[task]
    labels = rng.integers(0, spec.output.n_classes, n)
    if shape.kind == "image":
        images = rng.integers(0, 256, (n, *shape.image), dtype=np.uint8)
        decode = {"mnist": vision_module.decode_mnist, "cifar10": vision_module.decode_cifar,
                  "cifar10_lra": vision_module.decode_gray}[task]
        split = SplitData(torch.from_numpy(images), torch.from_numpy(labels), decode=decode)
        pil = images if images.ndim == 3 else images.transpose(0, 2, 3, 1)  # HWC for PIL
        return split, lambda train: naive_loop.ImageDataset(pil, labels, naive_loop.image_transform(task, train))
    if shape.kind == "tokens":
        if task == "listops":
            lengths = rng.integers(500, 2001, n)
        else:
            lengths = np.clip(rng.lognormal(np.log(250), 0.6, n).astype(int), 30, spec.max_len)
        vocab = spec.input.vocab_size
        seqs = [rng.integers(1, vocab, int(length)).tolist() for length in lengths]
        x = np.zeros((n, int(lengths.max())), dtype=np.uint8 if vocab < 256 else np.int64)
        for i, seq in enumerate(seqs):
            x[i, : len(seq)] = seq
        split = SplitData(torch.from_numpy(x), torch.from_numpy(labels), torch.from_numpy(lengths),
                          decode=lambda t: t.long())
        return split, lambda train: naive_loop.TokenDataset(seqs, labels, spec.max_len)
    return None, lambda train: naive_loop.BitDataset(task, n, seed + train)


# ------------------------------------------------------------------------------------------- builds
def harness(task_name: str, args: argparse.Namespace, device: torch.device, policy: str, split: Any,
            precision: str, compile_: bool = False, feature_cache: str = "off", dropout: float = 0.1,
            eval_precision: str | None = None) -> Any:
    """A Trainer of GPT-2 (random init, seeded: every call gets the same weights) in ``precision`` (fp32 or bf16;
    ``eval_precision``, default the same, for evaluation and the feature cache)."""
    from fpt_bench.api.cell import CellConfig
    from fpt_bench.api.hparams import HParamOverrides
    from fpt_bench.api.model import FPTModel
    from fpt_bench.cells.profiles import resolve_hparams
    from fpt_bench.host.manager import get_host
    from fpt_bench.infra.progress import Progress
    from fpt_bench.training.batches import TrainingData
    from fpt_bench.training.loop import Trainer

    host = get_host()
    task = host.tasks.get(task_name)
    options = task.options({})
    spec = task.resolve_spec(options)
    bargs = {"weights": "random", **({"n_layers": args.layers} if args.layers else {}),
             **({"dropout": dropout} if dropout != 0.1 else {}), "gelu": args.gelu}
    backbone = host.backbones.get("gpt2")
    torch.manual_seed(0)
    model = FPTModel(spec, backbone.build(backbone.options(bargs), spec.max_len), input_dropout=dropout)
    host.policies.get(policy).apply(model, host.policies.get(policy).options({}))
    model.to(device)
    hp = resolve_hparams(spec, "quick", HParamOverrides(
        batch_size=args.batch_size, precision=precision, compile=compile_, eval_batch_size=args.eval_batch_size,
        feature_cache=feature_cache, input_dropout=dropout))
    cell = CellConfig(task=task_name, backbone="gpt2", backbone_args=bargs, policy=policy, seed=0,
                      profile="quick", hparams=hp)
    split = None if split is None else split.to(device)
    data = TrainingData(task, options, split, 0, args.batch_size, device)
    val = split if split is not None else task.load("val", options, Path(".")).to(device)
    return Trainer(cell=cell, model=model, train=data, val=val, tests={}, device=device, precision=precision,
                   eval_precision=eval_precision, checkpoint=None, progress=Progress(enabled=False))


def timed(fn: Any, device: torch.device) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def same_function(trainer: Any, naive_model: Any, x: torch.Tensor) -> float:
    """Give the naive model the harness's weights; max |logit difference| on ``x`` in evaluation mode."""
    model = trainer.model
    naive_model.gpt.load_state_dict(model.backbone.model.state_dict(), strict=False)
    naive_model.inp.load_state_dict(model.input.embed.state_dict())
    naive_model.out.load_state_dict(model.output.state_dict())
    model.eval()
    naive_model.eval()
    with torch.no_grad():
        diff = (model(x) - naive_model(x)).abs().max().item()
    model.train()
    naive_model.train()
    return diff


def measure_task(task_name: str, args: argparse.Namespace, device: torch.device, matmul_peaks: dict[str, float]
                 ) -> dict[str, Any]:
    from fpt_bench.host.manager import get_host
    from fpt_bench.training.inference import evaluate

    task = get_host().tasks.get(task_name)
    spec = task.spec
    layers = args.layers or 12
    bsz = args.batch_size
    split, naive_data = synthetic(task_name, max(bsz * (args.steps + args.warmup + 2), 64), spec, 0)
    eval_split, naive_eval = synthetic(task_name, args.eval_examples, spec, 1)
    if eval_split is None:  # generated tasks: the task's own fixed evaluation set
        eval_split = task.load("val", task.options({"n_val": args.eval_examples}), Path("."))
    eval_split = eval_split.to(device)
    precision = args.precision  # fp32 or bf16 (auto: precision_compare.py)
    variants = {"harness": harness(task_name, args, device, args.policy, split, precision)}
    if args.compile:
        variants["compiled"] = harness(task_name, args, device, args.policy, split, precision, compile_=True)
    naive_model = naive_loop.NaiveFPT(spec, layers, args.policy).to(device)
    naive = naive_loop.NaiveLoop(naive_model, naive_loop.batches(naive_data(True), bsz, True),
                                 patches=task_name in ("mnist", "cifar10"))
    fixed = SHAPES[task_name].kind != "tokens"
    probe = eval_split.batch(torch.arange(min(4, len(eval_split)), device=eval_split.x.device))
    diff = same_function(variants["harness"], naive_model, probe.x) if fixed else None

    steps: dict[str, Any] = {"naive": naive.step, **{k: t._step for k, t in variants.items()}}
    row: dict[str, Any] = {"task": task_name, "batch_size": bsz, "layers": layers, "policy": args.policy,
                           "precision": precision, "gelu": args.gelu, "same_function_max_abs_logit_diff": diff}
    # warm-up steps double as memory phases (naive first); after the timed steps a second round in the other
    # order; each loop's peak is the lower of its two (what one phase leaves behind can inflate the next)
    peaks: dict[str, list[float]] = {name: [] for name in steps}
    next_step = {name: 0 for name in steps}

    def memory_phase(order: list[str], count: int) -> None:
        for name in order:
            reset_peak(device)
            for _ in range(count):
                steps[name]() if name == "naive" else steps[name](next_step[name])
                next_step[name] += 1
            sync(device)
            peaks[name].append(peak_mb(device))

    memory_phase(list(steps), args.warmup)
    times: dict[str, list[float]] = {name: [] for name in steps}
    flops: dict[str, float] = {name: 0.0 for name in steps}
    from fpt_bench.training.flops import step_flops

    formula = step_flops(variants["harness"].model)
    # evaluation: one whole pass over the evaluation split per round, the rounds interleaved with the timed
    # training steps (on a shared machine a pass timed after all the steps can meet other load than the steps
    # did, and the ratio of the two would show that load). Warm-up: one batch of the timed batch size (a
    # compiled model compiles for that shape).
    dataset = naive_eval(False)
    eval_times: dict[str, list[float]] = {name: [] for name in steps}

    def eval_round() -> None:
        for name, trainer in variants.items():
            eval_times[name].append(timed(lambda t=trainer: evaluate(
                t.eval_model, eval_split, args.eval_batch_size, device, precision), device))
        eval_times["naive"].append(timed(lambda: naive.evaluate(dataset, bsz), device))

    for trainer in variants.values():
        evaluate(trainer.eval_model, eval_split.head(min(args.eval_batch_size, len(eval_split))),
                 args.eval_batch_size, device, precision)
    for i in range(max(args.steps, args.eval_rounds)):
        if i < args.eval_rounds:
            eval_round()
        if i >= args.steps:
            continue
        for name, step in steps.items():
            if name == "naive":
                box: list[int] = []
                times[name].append(timed(lambda b=box: b.append(naive.step()[1]), device))
                flops[name] += formula.step(bsz, box[0])
            else:
                before = variants[name].out.train_flops
                times[name].append(timed(lambda s=step, n=next_step[name]: s(n), device))
                next_step[name] += 1
                flops[name] += variants[name].out.train_flops - before
    memory_phase(list(reversed(steps)), 1)
    for name in steps:
        row[f"{name}_peak_mb"] = min(peaks[name])
        med = statistics.median(times[name])
        row[f"{name}_train_samples_per_s"] = bsz / med
        row[f"{name}_step_ms"] = 1000 * med
        # each loop against the peak of the precision it computes in (the naive loop: always fp32)
        row[f"{name}_mfu"] = flops[name] / sum(times[name]) / matmul_peaks["fp32" if name == "naive" else precision]
        row[f"{name}_eval_samples_per_s"] = len(eval_split) / statistics.median(eval_times[name])
    row["train_ratio"] = row["harness_train_samples_per_s"] / row["naive_train_samples_per_s"]
    row["eval_ratio"] = row["harness_eval_samples_per_s"] / row["naive_eval_samples_per_s"]
    row["eval_over_train"] = row["harness_eval_samples_per_s"] / row["harness_train_samples_per_s"]
    row["memory_ratio"] = row["harness_peak_mb"] / row["naive_peak_mb"]
    return row


def measure_cache(task_name: str, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """output_only: an epoch after the first with and without the feature cache, and the uncached step against
    a forward pass alone (no gradient work below the output layer)."""
    from fpt_bench.host.manager import get_host
    from fpt_bench.training import precision_auto, speed

    spec = get_host().tasks.get(task_name).spec
    n, bsz = args.cache_examples, args.batch_size
    per_epoch = n // bsz
    split, _ = synthetic(task_name, n, spec, 2)
    # dropout 0 in both: the frozen part is deterministic, so 'auto' caches and both train the same function
    plain = harness(task_name, args, device, "output_only", split, "fp32", feature_cache="off", dropout=0.0)
    choice = precision_auto.choose(args.precision, device, plain.model, micro_batch=bsz,
                                   eval_batch=args.eval_batch_size, seq_len=spec.max_len)
    precision, eval_precision = choice.train, choice.eval
    plain = harness(task_name, args, device, "output_only", split, precision, feature_cache="off", dropout=0.0,
                    eval_precision=eval_precision)
    cached = harness(task_name, args, device, "output_only", split, precision, feature_cache="auto", dropout=0.0,
                     eval_precision=eval_precision)
    plain._step(0)  # warm-up
    uncached = [timed(lambda s=s: plain._step(s), device) for s in range(1, per_epoch + 1)]
    batch = plain.train.batch(0)
    model = plain.model

    def forward() -> None:
        with torch.inference_mode():
            model(batch.x, batch.lengths)

    forward()
    forward_s = statistics.median(timed(forward, device) for _ in range(3))
    with speed.threads_for_cached_steps():  # as Trainer.run does
        build = timed(cached.use_feature_cache, device)
        assert cached.out.speed.feature_cache, cached.out.speed.feature_cache_reason
        first = timed(lambda: [cached._step(s) for s in range(per_epoch)], device)
        second = timed(lambda: [cached._step(s) for s in range(per_epoch, 2 * per_epoch)], device)
    return {"task": task_name, "examples": n, "batch_size": bsz, "precision": precision,
            "eval_precision": eval_precision, "uncached_epoch_s": sum(uncached),
            "cache_build_s": build, "cached_first_epoch_s": first + build, "cached_epoch_s": second,
            "epoch_speedup": sum(uncached) / second, "output_only_step_over_forward":
            statistics.median(uncached) / forward_s, "cache_mb": cached.out.speed.feature_cache_mb}


# -------------------------------------------------------------------------------------------- report
def machine(device: torch.device, peaks: dict[str, float]) -> dict[str, Any]:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
        try:
            name = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                        if line.startswith("model name"))
        except (OSError, StopIteration):
            pass
    info = {"device": str(device), "name": name, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "peak_gflops": {k: v / 1e9 for k, v in peaks.items()}}
    if hasattr(os, "getloadavg"):
        info["load_average_at_start"] = os.getloadavg()[0]
    return info


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> str:
    head = [title for _, title, _ in columns]
    body = [[("-" if r.get(key) is None else format(r[key], fmt)) if fmt else str(r.get(key, "-"))
             for key, _, fmt in columns] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    line = lambda cells: "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)) + " |"  # noqa: E731
    return "\n".join([line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, body)])


TRAIN_COLUMNS = [("task", "task", ""), ("batch_size", "B", ""), ("layers", "layers", ""),
                 ("harness_train_samples_per_s", "train/s harness", ".2f"),
                 ("naive_train_samples_per_s", "train/s naive", ".2f"), ("train_ratio", "train ×", ".2f"),
                 ("harness_eval_samples_per_s", "eval/s harness", ".2f"),
                 ("naive_eval_samples_per_s", "eval/s naive", ".2f"), ("eval_ratio", "eval ×", ".2f"),
                 ("eval_over_train", "eval/train harness", ".2f"), ("harness_peak_mb", "peak MB harness", ".0f"),
                 ("naive_peak_mb", "peak MB naive", ".0f"), ("harness_mfu", "MFU harness", ".1%"),
                 ("naive_mfu", "MFU naive", ".1%"), ("same_function_max_abs_logit_diff", "max |Δlogit|", ".1e")]
CACHE_COLUMNS = [("task", "task", ""), ("examples", "examples", ""), ("batch_size", "B", ""),
                 ("uncached_epoch_s", "epoch s, no cache", ".2f"), ("cache_build_s", "cache build s", ".2f"),
                 ("cached_epoch_s", "epoch s, cached (2nd)", ".4f"), ("epoch_speedup", "epoch ×", ".0f"),
                 ("output_only_step_over_forward", "output_only step / forward", ".2f")]


def positive(text: str) -> int:
    """argparse type: an integer of at least 1 (argparse turns the ValueError into a usage error, exit 2)."""
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default=None, help=f"comma-separated, or 'all' ({', '.join(ALL)}); "
                        f"default: {','.join(CPU_DEFAULT)} on a CPU, all on CUDA")
    parser.add_argument("--layers", type=positive, default=None, help="keep the first N GPT-2 blocks (default 12)")
    parser.add_argument("--steps", type=positive, default=5, help="timed training steps per loop (after warm-up)")
    parser.add_argument("--warmup", type=positive, default=2, help="untimed steps per loop (also the memory phase)")
    parser.add_argument("--batch-size", type=positive, default=8)
    parser.add_argument("--eval-batch-size", type=positive, default=64)
    parser.add_argument("--eval-examples", type=positive, default=64)
    parser.add_argument("--eval-rounds", type=positive, default=3,
                        help="timed evaluation passes per loop, interleaved with the timed steps (median)")
    parser.add_argument("--policy", default="fpt", choices=["fpt", "full", "output_only"])
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"],
                        help="the harness's precision; auto: compare fp32, bf16 and what precision=auto chooses "
                             "(precision_compare.py) instead of the naive loop")
    parser.add_argument("--bf16-frozen", action="store_true",
                        help="with --precision auto: also time bf16 with the frozen backbone matrices stored in bf16")
    parser.add_argument("--gelu", default="fused", choices=["fused", "composite"],
                        help="the harness's GPT-2 MLP activation (the naive loop always runs gelu_new, composite)")
    parser.add_argument("--compile", action="store_true", help="also time a torch.compile'd harness")
    parser.add_argument("--cache-tasks", default="mnist", help="tasks for the feature-cache epoch timing ('' none)")
    parser.add_argument("--cache-examples", type=positive, default=64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    tasks = (ALL if args.tasks == "all" else args.tasks.split(",")) if args.tasks else (
        ALL if device.type == "cuda" else CPU_DEFAULT)
    from fpt_bench.training.flops import measure_peak_flops

    peaks = {"fp32": measure_peak_flops(device, "fp32"), "bf16": measure_peak_flops(device, "bf16")}
    info = machine(device, peaks)
    print(json.dumps(info), flush=True)
    rows, cache_rows = [], []
    t0 = time.perf_counter()
    compare = args.precision == "auto"
    for task in tasks:
        rows.append(precision_compare.measure_precisions(task, args, device, sys.modules[__name__]) if compare
                    else measure_task(task, args, device, peaks))
        print(json.dumps(rows[-1]), flush=True)
        _trim()
    for task in [t for t in args.cache_tasks.split(",") if t]:
        cache_rows.append(measure_cache(task, args, device))
        print(json.dumps(cache_rows[-1]), flush=True)
    report = {"machine": info, "args": {k: str(v) for k, v in vars(args).items()}, "precision" if compare else
              "training": rows,
              "feature_cache": cache_rows, "seconds": time.perf_counter() - t0}
    print()
    print(table(rows, precision_compare.COLUMNS if compare else TRAIN_COLUMNS))
    if compare and args.bf16_frozen:
        print()
        print(table(rows, precision_compare.FROZEN_COLUMNS))
    if cache_rows:
        print()
        print(table(cache_rows, CACHE_COLUMNS))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
