"""The harness's training step against a plain hand-written loop, in one process, same shapes and freezing.

The plain loop is what a researcher would write: HF ``GPT2Model`` called with ``inputs_embeds``, a linear input
layer and output layer, the FPT parameters unfrozen by hand, Adam, clipping 1.0, fp32. The harness step is
``fpt_bench.training.loop.Trainer._step`` on a model assembled through the plugin registries. Steps alternate between
the two so machine noise hits both alike; the median of each is reported, and their ratio.

    python benchmarks/step_vs_plain.py --task bit_memory --batch-size 8 --steps 10
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F


def plain_setup(seq: int, dim: int, k: int, out_dim: int, layers: int | None):
    from transformers import GPT2Config, GPT2Model

    config = GPT2Config(n_layer=layers or 12)
    gpt = GPT2Model(config)
    inp, out = nn.Linear(dim, 768), nn.Linear(768, out_dim)
    for name, p in gpt.named_parameters():
        p.requires_grad_("ln" in name or "wpe" in name)  # the reference code's substring rule
    params = [p for m in (inp, gpt, out) for p in m.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-3)
    gpt.train()

    def step(x: torch.Tensor, y: torch.Tensor) -> float:
        opt.zero_grad()
        hidden = gpt(inputs_embeds=inp(x)).last_hidden_state[:, -k:]
        logits = out(hidden).reshape(x.shape[0], -1, 2 if k > 1 else out_dim)
        loss = F.cross_entropy(logits.flatten(0, 1), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return loss.item()

    return step


def harness_setup(task_name: str, batch_size: int, precision: str, layers: int | None):
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
    args = {"weights": "random", **({"n_layers": layers} if layers else {})}
    backbone = host.backbones.get("gpt2")
    model = FPTModel(task.spec, backbone.build(backbone.options(args), task.spec.max_len))
    policy = host.policies.get("fpt")
    policy.apply(model, policy.options({}))
    hp = resolve_hparams(task.spec, "quick", HParamOverrides(batch_size=batch_size, precision=precision))
    cell = CellConfig(task=task_name, backbone="gpt2", backbone_args=args, policy="fpt", seed=0, profile="quick",
                      hparams=hp)
    device = torch.device("cpu")
    val = task.load("val", options, Path("."))
    trainer = Trainer(cell=cell, model=model, train=TrainingData(task, options, None, 0, batch_size, device),
                      val=val, tests={}, device=device, precision=precision, checkpoint=None,
                      progress=Progress(enabled=False))
    return trainer._step, task, options


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", default="bit_memory", choices=["bit_memory", "bit_xor"])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--layers", type=int, default=None, help="fewer GPT-2 blocks for a faster check")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    harness_step, task, options = harness_setup(args.task, args.batch_size, "fp32", args.layers)
    spec = task.spec
    out_dim = spec.output.per_position * spec.output.n_classes
    plain_step = plain_setup(spec.max_len, spec.input.dim, spec.output.k, out_dim, args.layers)
    from fpt_bench.api.seeding import generator

    timings: dict[str, list[float]] = {"plain": [], "harness": []}
    for i in range(args.steps + 2):
        batch = task.sample(args.batch_size, generator(i), options)
        for name in ("plain", "harness"):
            t0 = time.perf_counter()
            if name == "plain":
                plain_step(batch.x, batch.y)
            else:
                harness_step(i)
            if i >= 2:  # warm-up steps are not counted
                timings[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) * 1000 for k, v in timings.items()}
    row = {
        "task": args.task, "batch_size": args.batch_size, "layers": args.layers or 12, "steps": args.steps,
        "plain_ms": round(med["plain"], 1), "harness_ms": round(med["harness"], 1),
        "harness_speedup": round(med["plain"] / med["harness"], 3), "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
    }
    print(json.dumps(row))
    if args.json:
        args.json.write_text(json.dumps(row, indent=2) + "\n")


if __name__ == "__main__":
    main()
