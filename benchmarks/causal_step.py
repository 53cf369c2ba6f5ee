"""Training-step time of a tiny model of every hf_decoder / hf_ssm family and of timm ViTs, beside GPT-2's tiny
model at the same shape (layers x width, heads).

    python benchmarks/causal_step.py                          # CPU, fp32, 1 thread, 2 x 128, 64 tokens
    python benchmarks/causal_step.py --width 256 --tokens 256 --threads 2

One step = forward, backward and Adam under ``--policy`` (default fpt: input layer, output layer, norms and
position tables train, the rest is frozen) for a batch of ``--batch`` sequences of ``--tokens`` tokens of 16
values, read at the last token. Every model is built with ``weights=random`` from its family's default config
resized to the shape (nothing is downloaded); feed-forward widths follow each family's rule for ``n_embd``
(4 x width; timm: its mlp_ratio). Mamba runs transformers' reference scan (no CUDA kernels on a CPU). All rows
share the process and thread count: compare them as ratios to the GPT-2 row, not with other days' numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from importlib.util import find_spec
from typing import Any

import torch

from fpt_bench import Continuous, OutputSpec, TaskSpec
from fpt_bench.api.model import FPTModel
from fpt_bench.host.manager import get_host

DECODERS = ["gpt_neox", "llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi", "phi3",
            "gptj", "opt"]
SSMS = ["mamba", "mamba2"]
TIMM = ["vit_tiny_patch16_224", "vit_small_patch14_dinov2", "eva02_tiny_patch14_224", "beit_base_patch16_224"]


def rows(layers: int, width: int, heads: int) -> list[tuple[str, str, dict[str, Any]]]:
    shape = {"weights": "random", "n_layers": layers, "n_embd": width, "n_head": heads}
    out = [("gpt2 (reference)", "gpt2", {**shape, "dropout": 0.0})]
    out += [(family, "hf_decoder", {**shape, "family": family, "dropout": 0.0}) for family in DECODERS]
    out += [(family, "hf_ssm", {**shape, "family": family}) for family in SSMS]
    if find_spec("timm"):
        out += [(f"timm {model}", "timm_vit", {**shape, "model": model, "dropout": 0.0}) for model in TIMM]
    return out


def time_steps(model: FPTModel, x: torch.Tensor, y: torch.Tensor, steps: int, warmup: int) -> list[float]:
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y).backward()
        optimizer.step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def machine() -> str:
    flags = subprocess.run("lscpu | grep -o 'avx[^ ]*\\|amx[^ ]*' | sort -u | tr '\\n' ' '", shell=True,
                           capture_output=True, text=True).stdout.strip()
    return f"CPU flags: {flags or 'unknown'}; load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--policy", default="fpt")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    host = get_host()
    spec = TaskSpec(name="bench", description="benchmark", input=Continuous(dim=16), max_len=args.tokens,
                    output=OutputSpec(n_classes=10))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, args.tokens, 16, generator=g)
    y = torch.randint(0, 10, (args.batch,), generator=g)
    print(machine())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.layers} x {args.width}, "
          f"{args.heads} heads, batch {args.batch} x {args.tokens} tokens, policy {args.policy}, fp32, "
          f"median of {args.steps} steps after {args.warmup} warm-up")
    print(f"| {'family':<34} | trainable | backbone params | ms/step (median) | min | max | vs gpt2 |")
    print(f"|{'-' * 36}|-----------|-----------------|------------------|-----|-----|---------|")
    reference = None
    for label, name, options in rows(args.layers, args.width, args.heads):
        plugin = host.backbones.get(name)
        torch.manual_seed(0)
        model = FPTModel(spec, plugin.build(plugin.options(options), args.tokens))
        freeze = host.policies.get(args.policy)
        freeze.apply(model, freeze.options({}))
        model.train()
        times = time_steps(model, x, y, args.steps, args.warmup)
        median = statistics.median(times)
        reference = reference or median
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        backbone = sum(p.numel() for p in model.backbone.parameters())
        print(f"| {label:<34} | {trainable:>9,} | {backbone:>15,} | {1000 * median:>16,.2f} | {1000 * min(times):,.2f} "
              f"| {1000 * max(times):,.2f} | {median / reference:>6.2f}x |", flush=True)
        del model
    print(machine())


if __name__ == "__main__":
    main()
