"""Training-step time of the LSTM backbone next to GPT-2, at a tiny and at the base shape.

    python benchmarks/lstm_step.py                     # both shapes, CPU, fp32
    python benchmarks/lstm_step.py --shapes tiny --device cuda --steps 20

One step = forward, backward and Adam on the whole model (input layer, backbone, output layer) for a batch of
``--batch`` sequences of ``--tokens`` tokens of 16 values, read at the last token (10 classes). All rows of one
run share the process, the device and the thread count: compare them as ratios, not with other days' numbers.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch

from fpt_bench import Continuous, OutputSpec, TaskSpec
from fpt_bench.api.model import FPTModel
from fpt_bench.host.manager import get_host

SHAPES = {  # name -> (gpt2 layers, width, heads, paper LSTM layers)
    "tiny": (2, 128, 2, 2),
    "base": (12, 768, 12, 3),
}


def rows(shape: str, compile_cell: bool) -> list[tuple[str, str, dict[str, Any], str]]:
    layers, width, heads, lstm_layers = SHAPES[shape]
    gpt2 = {"weights": "random", "n_layers": layers, "n_embd": width, "n_head": heads, "dropout": 0.0}
    lstm = {"n_layers": lstm_layers, "hidden_size": width}
    out = [
        (f"gpt2 {layers}x{width}", "gpt2", gpt2, "fpt"),
        (f"gpt2 {layers}x{width}", "gpt2", gpt2, "full"),
        (f"lstm {lstm_layers}x{width} layer norm (paper)", "lstm", lstm, "full"),
        (f"lstm {lstm_layers}x{width} no layer norm (nn.LSTM)", "lstm", {**lstm, "layer_norm": False}, "full"),
    ]
    if compile_cell:
        out.append((f"lstm {lstm_layers}x{width} layer norm, compile=true", "lstm", {**lstm, "compile": True},
                    "full"))
    return out


def time_steps(model: FPTModel, x: torch.Tensor, y: torch.Tensor, steps: int, warmup: int) -> list[float]:
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=1e-4)
    times = []
    for i in range(warmup + steps):
        if x.is_cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y)
        loss.backward()
        optimizer.step()
        if x.is_cuda:
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default="tiny,base")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--compile", action="store_true", help="also time the torch.compile'd LSTM cell")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    host = get_host()
    spec = TaskSpec(name="bench", description="benchmark", input=Continuous(dim=16), max_len=args.tokens,
                    output=OutputSpec(n_classes=10))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, args.tokens, 16, generator=g).to(device)
    y = torch.randint(0, 10, (args.batch,), generator=g).to(device)
    print(f"device {args.device}, {torch.get_num_threads()} threads, batch {args.batch} x {args.tokens} tokens, "
          f"median of {args.steps} steps after {args.warmup} warm-up, fp32")
    print(f"| {'backbone':<40} | policy | trainable | ms/step (median) | min | max |")
    print(f"|{'-' * 42}|--------|-----------|------------------|-----|-----|")
    for shape in args.shapes.split(","):
        for label, name, options, policy in rows(shape, args.compile):
            plugin = host.backbones.get(name)
            torch.manual_seed(0)
            model = FPTModel(spec, plugin.build(plugin.options(options), args.tokens))
            freeze = host.policies.get(policy)
            freeze.apply(model, freeze.options({}))
            model.to(device).train()
            times = time_steps(model, x, y, args.steps, args.warmup)
            trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
            print(f"| {label:<40} | {policy:<6} | {trainable:>9,} | {1000 * statistics.median(times):>16,.1f} | "
                  f"{1000 * min(times):,.1f} | {1000 * max(times):,.1f} |", flush=True)
            del model


if __name__ == "__main__":
    main()
