"""What attention dropout costs a long-sequence training step on a CPU.

With ``dropout_p > 0`` PyTorch's ``scaled_dot_product_attention`` on a CPU leaves its fused kernels for the math
path: it materialises every attention score and draws a dropout mask for each one. At ListOps lengths that
dominates the step. This times one ``fpt``-style step (LayerNorms trainable, gradients through every block) of a
MiniLM-sized BERT (6 layers, width 384, 12 heads; random weights: only the shapes matter) with attention dropout
0.1 (the model's default) and 0, and prints the ratio.

    python benchmarks/attention_dropout.py --seq-len 1500 --batch-size 4 --steps 2
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch
from transformers import BertConfig, BertModel


def step_seconds(dropout: float, seq_len: int, batch_size: int, steps: int) -> tuple[float, float]:
    """Median wall and system seconds of a forward + backward step (after one warm-up step)."""
    torch.manual_seed(0)
    config = BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536,
                        max_position_embeddings=max(512, seq_len), attention_probs_dropout_prob=dropout,
                        hidden_dropout_prob=0.1, attn_implementation="sdpa")
    model = BertModel(config).train()
    for name, param in model.named_parameters():
        param.requires_grad_("LayerNorm" in name)
    embeds = torch.randn(batch_size, seq_len, 384, requires_grad=True)
    mask = torch.ones(batch_size, seq_len, dtype=torch.long)
    mask[0, -seq_len // 10:] = 0  # one padded sequence, as a length bucket has
    walls, systems = [], []
    for _ in range(steps + 1):
        before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        model(inputs_embeds=embeds, attention_mask=mask).last_hidden_state[:, -1].sum().backward()
        walls.append(time.perf_counter() - start)
        systems.append(resource.getrusage(resource.RUSAGE_SELF).ru_stime - before.ru_stime)
    return statistics.median(walls[1:]), statistics.median(systems[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; MiniLM-sized BERT, "
          f"batch {args.batch_size} x {args.seq_len} tokens, fpt-style step")
    times = {}
    for dropout in (0.1, 0.0):
        wall, system = step_seconds(dropout, args.seq_len, args.batch_size, args.steps)
        times[dropout] = wall
        print(f"attention dropout {dropout}: {wall:6.2f} s per step ({system:5.2f} s of it in the kernel)")
    print(f"ratio (dropout 0.1 / 0): {times[0.1] / times[0.0]:.2f}x")


if __name__ == "__main__":
    main()
