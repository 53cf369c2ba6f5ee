"""``throughput.py --precision auto``: what ``precision=auto`` chooses per task, and its samples/s next to fp32's and
bf16's, measured in the same process.

Per task: two harnesses with the same weights, one in fp32 and one under bf16 autocast (and, with
``--bf16-frozen``, a third under bf16 autocast whose frozen backbone matrices are stored in bf16), warm-up steps,
then training steps and whole evaluation passes interleaved, the variants in turn and their order alternating
(load from elsewhere on a shared machine meets every variant alike); medians. ``auto``'s calibration
(``fpt_bench.training.precision_auto``) runs on the fp32 harness's model against a fresh cache, so its cost is
measured every time. ``auto``'s samples/s are those of the variant it chose (the same code path; not timed a third
time), and ``auto / best`` compares them with the faster variant of this run — the target is at least 0.95, for
training and for evaluation — by medians and, as ``(fastest)``, by each variant's fastest step or pass (on a
machine shared with other jobs the medians carry their load; the fastest is closest to what a variant can do).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

MATRIX_ROLES = ("attention", "feedforward", "recurrent", "other")


def cast_frozen_matrices(trainer: Any) -> int:
    """Store the backbone's frozen matrices (2-D+, not position or token tables) in bf16, once; the rest stays
    fp32. Returns the number of parameters cast. (Autocast then skips their per-product cast.)"""
    model = trainer.model
    roles = model.parameter_roles()
    cast = 0
    for name, param in model.named_parameters():
        if name.startswith("backbone.") and not param.requires_grad and param.ndim >= 2 and \
                roles[name].value in MATRIX_ROLES:
            param.data = param.data.to(torch.bfloat16)
            cast += param.numel()
    return cast


def measure_precisions(task_name: str, args: argparse.Namespace, device: torch.device, bench: ModuleType
                       ) -> dict[str, Any]:
    """One row: auto's choice and calibration, and training / evaluation samples/s of each variant."""
    from fpt_bench.host.manager import get_host
    from fpt_bench.training import precision_auto as precision
    from fpt_bench.training.inference import evaluate

    task = get_host().tasks.get(task_name)
    spec = task.spec
    bsz = args.batch_size
    split, _ = bench.synthetic(task_name, max(bsz * (args.steps + args.warmup + 2), 64), spec, 0)
    eval_split, _ = bench.synthetic(task_name, args.eval_examples, spec, 1)
    if eval_split is None:  # generated tasks: the task's own fixed evaluation set
        eval_split = task.load("val", task.options({"n_val": args.eval_examples}), Path("."))
    eval_split = eval_split.to(device)
    variants = {p: bench.harness(task_name, args, device, args.policy, split, p) for p in ("fp32", "bf16")}
    if args.bf16_frozen:
        variants["bf16_frozen"] = bench.harness(task_name, args, device, args.policy, split, "bf16")
        cast = cast_frozen_matrices(variants["bf16_frozen"])
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        choice = precision.choose("auto", device, variants["fp32"].model, micro_batch=bsz,
                                  eval_batch=args.eval_batch_size, seq_len=spec.max_len,
                                  path=Path(tmp) / "precision.json")
        calibration_s = time.perf_counter() - t0

    names = list(variants)
    step = {name: 0 for name in names}
    times: dict[str, list[float]] = {name: [] for name in names}
    eval_times: dict[str, list[float]] = {name: [] for name in names}
    peaks: dict[str, list[float]] = {name: [] for name in names}

    def run_step(name: str) -> float:
        seconds = bench.timed(lambda: variants[name]._step(step[name]), device)
        step[name] += 1
        return seconds

    def run_eval(name: str) -> float:
        trainer = variants[name]
        return bench.timed(lambda: evaluate(trainer.eval_model, eval_split, args.eval_batch_size, device,
                                            trainer.eval_precision), device)

    # warm-up steps double as memory phases; a second round in the other order; each variant's peak is the lower
    # of its two (what one phase leaves behind can inflate the next)
    for order, count in ((names, args.warmup), (names[::-1], 1)):
        for name in order:
            bench.reset_peak(device)
            for _ in range(count):
                run_step(name)
            evaluate(variants[name].eval_model, eval_split.head(min(args.eval_batch_size, len(eval_split))),
                     args.eval_batch_size, device, variants[name].eval_precision)
            bench.sync(device)
            peaks[name].append(bench.peak_mb(device))
    for i in range(max(args.steps, args.eval_rounds)):
        order = names if i % 2 == 0 else names[::-1]
        if i < args.eval_rounds:
            for name in order:
                eval_times[name].append(run_eval(name))
        if i < args.steps:
            for name in order:
                times[name].append(run_step(name))

    row: dict[str, Any] = {
        "task": task_name, "batch_size": bsz, "eval_batch_size": args.eval_batch_size, "layers": args.layers or 12,
        "policy": args.policy, "auto_train": choice.train, "auto_eval": choice.eval, "auto_source": choice.source,
        "calibration_s": calibration_s, "calibration_rounds": choice.rounds, "calibration_row_scale": choice.row_scale,
        "calibrated_bf16_speedup_train": choice.bf16_speedup_train,
        "calibrated_bf16_speedup_eval": choice.bf16_speedup_eval, "workload": choice.workload,
    }
    for name in variants:
        row[f"{name}_train_samples_per_s"] = bsz / statistics.median(times[name])
        row[f"{name}_eval_samples_per_s"] = len(eval_split) / statistics.median(eval_times[name])
        # the fastest step / pass: on a machine shared with other jobs, closest to what the variant can do
        row[f"{name}_train_samples_per_s_fastest"] = bsz / min(times[name])
        row[f"{name}_eval_samples_per_s_fastest"] = len(eval_split) / min(eval_times[name])
        row[f"{name}_peak_mb"] = min(peaks[name])
        row[f"{name}_parameters_mb"] = sum(p.numel() * p.element_size() for p in variants[name].model.parameters()
                                           ) / 2**20
        row[f"{name}_step_times"] = times[name]
        row[f"{name}_eval_times"] = eval_times[name]
    if args.bf16_frozen:
        row["bf16_frozen_params_cast"] = cast
    for mode in ("train", "eval"):
        fp32, bf16 = row[f"fp32_{mode}_samples_per_s"], row[f"bf16_{mode}_samples_per_s"]
        row[f"measured_bf16_speedup_{mode}"] = bf16 / fp32
        row[f"auto_{mode}_samples_per_s"] = row[f"{choice.train if mode == 'train' else choice.eval}_{mode}"
                                                f"_samples_per_s"]
        row[f"auto_over_best_{mode}"] = row[f"auto_{mode}_samples_per_s"] / max(fp32, bf16)
        chosen = choice.train if mode == "train" else choice.eval
        fastest = {p: row[f"{p}_{mode}_samples_per_s_fastest"] for p in ("fp32", "bf16")}
        row[f"auto_over_best_{mode}_fastest"] = fastest[chosen] / max(fastest.values())
    return row


COLUMNS = [("task", "task", ""), ("auto_train", "auto train", ""), ("auto_eval", "auto eval", ""),
           ("fp32_train_samples_per_s", "train/s fp32", ".2f"), ("bf16_train_samples_per_s", "train/s bf16", ".2f"),
           ("auto_train_samples_per_s", "train/s auto", ".2f"), ("auto_over_best_train", "train auto/best", ".2f"),
           ("auto_over_best_train_fastest", "(fastest)", ".2f"),
           ("fp32_eval_samples_per_s", "eval/s fp32", ".2f"), ("bf16_eval_samples_per_s", "eval/s bf16", ".2f"),
           ("auto_eval_samples_per_s", "eval/s auto", ".2f"), ("auto_over_best_eval", "eval auto/best", ".2f"),
           ("auto_over_best_eval_fastest", "(fastest) ", ".2f"),
           ("calibrated_bf16_speedup_train", "calib. bf16× train", ".2f"),
           ("measured_bf16_speedup_train", "step bf16× train", ".2f"),
           ("calibrated_bf16_speedup_eval", "calib. bf16× eval", ".2f"),
           ("measured_bf16_speedup_eval", "pass bf16× eval", ".2f"), ("calibration_s", "calib. s", ".2f"),
           ("fp32_peak_mb", "peak MB fp32", ".0f"), ("bf16_peak_mb", "peak MB bf16", ".0f")]
FROZEN_COLUMNS = [("task", "task", ""), ("bf16_train_samples_per_s", "train/s bf16", ".2f"),
                  ("bf16_frozen_train_samples_per_s", "train/s bf16 frozen-cast", ".2f"),
                  ("bf16_eval_samples_per_s", "eval/s bf16", ".2f"),
                  ("bf16_frozen_eval_samples_per_s", "eval/s bf16 frozen-cast", ".2f"),
                  ("bf16_peak_mb", "peak MB bf16", ".0f"), ("bf16_frozen_peak_mb", "peak MB bf16 frozen-cast", ".0f"),
                  ("bf16_parameters_mb", "params MB bf16", ".0f"),
                  ("bf16_frozen_parameters_mb", "params MB frozen-cast", ".0f")]
