"""A cell's memory, checked against its device before the first step.

``--batch-size 100000000`` or ``--eval-batch-size`` far beyond the machine would otherwise allocate until an
allocation fails (a traceback from deep inside a task's sampler) or, on a CPU, until the kernel kills the process.
Before the model moves to its device, the runner asks :func:`check_cell_fits` for what the cell needs at the least:

- the parameters (on a CPU they are already built and so already out of the free memory), their gradients,
  Adam's two moments and the best parameters kept for model selection: ``4 x trainable`` bytes (+ all parameters
  on an accelerator);
- a training batch's inputs, whole: ``batch_size x length x`` the bytes of one input token (a task's sampler makes
  the whole batch before it is cut into accumulation chunks);
- the activations of one forward pass, at least the input and output of one layer at the backbone's width:
  ``2 x micro-batch x length x width`` values. On a CPU the micro-batch is the configured one (``batch_size /
  grad_accum``): out of memory there may end in the kernel's OOM killer rather than an error to back off from. On an
  accelerator out of memory is an error the training loop backs off from (halving the micro-batch), so one example
  must fit;
- an evaluation batch's activations the same way (evaluation does not back off).

These are lower bounds (the real need is larger), so a cell refused here could never have run; what passes may
still run out of memory, which the training loop handles. ``length`` is the task's ``max_len``, or the longest
training sequence when lengths vary.
"""

from __future__ import annotations

import torch

from fpt_bench.api.errors import UserError
from fpt_bench.api.hparams import TrainHParams
from fpt_bench.api.model import FPTModel
from fpt_bench.api.specs import Continuous, TaskSpec
from fpt_bench.api.task import SplitData
from fpt_bench.infra.memory import device_free_memory, gib


def _bytes(tensors: list[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in {id(t): t for t in tensors}.values())


def _length(spec: TaskSpec, train: SplitData | None) -> int:
    if train is not None and train.lengths is not None and len(train):
        return max(1, min(int(train.lengths.max()), spec.max_len))
    return spec.max_len


def cell_needs(model: FPTModel, spec: TaskSpec, hp: TrainHParams, device: torch.device, train: SplitData | None,
               eval_examples: int) -> list[tuple[str, int, str]]:
    """What the cell needs at the least, as (what, bytes, how to need less)."""
    params = list(model.parameters())
    trainable = _bytes([p for p in params if p.requires_grad])
    static = 4 * trainable + (_bytes(params) if device.type != "cpu" else 0)
    length = _length(spec, train)
    width = int(getattr(model.backbone, "hidden_size", 1) or 1)
    value = 2 if hp.precision == "bf16" else 4
    token = 4 * spec.input.dim if isinstance(spec.input, Continuous) else 8
    micro = -(-hp.batch_size // hp.grad_accum) if device.type == "cpu" else 1
    eval_batch = max(1, min(hp.eval_batch_size, eval_examples))
    return [
        ("parameters, gradients and optimizer state", static, "choose a smaller backbone or freeze more of it"),
        (f"a training batch's inputs ({hp.batch_size} examples x {length} positions)",
         hp.batch_size * length * token, "lower --batch-size"),
        (f"the activations of a micro-batch of {micro} example(s) ({length} positions x width {width})",
         2 * micro * length * width * value,
         "lower --batch-size or raise --grad-accum" if micro > 1 else "choose a smaller backbone or task length"),
        (f"the activations of an evaluation batch of {eval_batch} example(s)",
         2 * eval_batch * length * width * value + eval_batch * length * token, "lower --eval-batch-size"),
    ]


def check_cell_fits(model: FPTModel, spec: TaskSpec, hp: TrainHParams, device: torch.device,
                    train: SplitData | None, eval_examples: int) -> None:
    """A UserError when the cell cannot fit on ``device`` even at its least (see the module docstring)."""
    free = device_free_memory(device)
    if free is None:
        return
    static, batch, active, evaluation = cell_needs(model, spec, hp, device, train, eval_examples)
    for parts in ((static, batch, active), (static, evaluation)):  # alive together: training, then evaluation
        need = sum(size for _, size, _ in parts)
        if need > free:
            culprit = max(parts, key=lambda part: part[1])
            listed = "; ".join(f"{what}: {gib(size)}" for what, size, _ in parts)
            raise UserError(f"this cell needs at least {gib(need)} on {device} ({listed}), more than the "
                            f"{gib(free)} free there; {culprit[2]}")
