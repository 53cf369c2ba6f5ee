"""The speed settings of a cell: how they are applied, and the record the result keeps of them
(``provenance.speed``; every key is documented in ``fpt_bench.results.schema.Speed``).

Switches (hyperparameters, so they are part of a cell's config): ``precision`` (bf16 autocast; ``auto``: the
faster of fp32 and bf16 on the machine, for training and evaluation separately,
``fpt_bench.training.precision_auto``), ``compile`` (``torch.compile``; the backend is
``$FPT_BENCH_COMPILE_BACKEND``, default ``inductor``), ``adam_impl`` (fused / foreach / for-loop Adam),
``feature_cache``; and the backbone's own options (its attention kernel and
activation implementation, recorded as ``attention`` and ``activation``). docs/performance.md describes them all.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch

from fpt_bench.api.hparams import TrainHParams
from fpt_bench.results.schema import Speed

if TYPE_CHECKING:
    from fpt_bench.training.loop import Trainer

COMPILE_BACKEND_ENV = "FPT_BENCH_COMPILE_BACKEND"


def compile_backend() -> str:
    return os.environ.get(COMPILE_BACKEND_ENV) or "inductor"


def compiled(model: torch.nn.Module) -> torch.nn.Module:
    """``torch.compile(model)``: one module for training and evaluation (separate graphs for the two modes)."""
    return torch.compile(model, backend=compile_backend())  # type: ignore[return-value]


def adam(params: list[torch.nn.Parameter], hp: TrainHParams, device: torch.device
         ) -> tuple[torch.optim.Optimizer, str]:
    """Adam with the implementation ``hp.adam_impl`` asks for. ``auto``: fused on CUDA and CPU (on a 2-core CPU
    with FPT's 0.85M trainable parameters it took 19 ms a step against foreach's 250-300 ms and for-loop's 135
    ms, and allocates no temporaries for all parameters at once), foreach on other devices."""
    impl = hp.adam_impl
    if impl == "auto":
        impl = "fused" if device.type in ("cuda", "cpu") else "foreach"
    kwargs: dict[str, Any] = {"lr": hp.lr, "weight_decay": hp.weight_decay}
    if impl == "fused":
        kwargs["fused"] = True
    else:
        kwargs["foreach"] = impl == "foreach"
    return torch.optim.Adam(params, **kwargs), impl


def record(trainer: Trainer, adam_impl: str) -> Speed:
    """What the result records about the speed settings (feature-cache fields are set when it is decided)."""
    model, train = trainer.model, trainer.train
    split = getattr(train, "split", None)
    task = getattr(train, "task", None)
    augments = split is not None and task is not None and task.augments(train.options)
    return Speed(
        autocast="bf16" if trainer.precision == "bf16" else None,
        autocast_eval="bf16" if trainer.eval_precision == "bf16" else None,
        compile=bool(trainer.hp.compile),
        compile_backend=compile_backend() if trainer.hp.compile else None,
        attention=getattr(model.backbone, "attention", None),
        activation=getattr(model.backbone, "activation", None),
        optimizer=f"Adam ({adam_impl})",
        data_on_device=True,
        training_data="generated on the device" if split is None else "split held on the device",
        augmentation="batched on the device" if augments else None,
        bucket_by_length=bool(getattr(train, "bucketed", False)),
        padding="to the batch's longest sequence",
        eval=f"whole splits under inference_mode, batches of {trainer.hp.eval_batch_size}",
        backward_layers=trainer.flops.backward_layers,
        frozen_prefix_no_grad=not any(p.requires_grad for p in model._prefix_parameters()),
        feature_cache=False,
    )


@contextmanager
def threads_for_cached_steps() -> Iterator[None]:
    """On a CPU, once the trainer switches to cached features, its steps run on one thread (every op is tiny:
    more threads only add synchronisation; on a busy 2-core machine a head step took 130 ms on two threads and
    23 ms on one). The thread count is restored when the run ends, however it ends."""
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def cached_steps_started(trainer: Trainer) -> None:
    if trainer.device.type == "cpu":
        trainer.out.speed.cached_step_threads = 1
        torch.set_num_threads(1)
