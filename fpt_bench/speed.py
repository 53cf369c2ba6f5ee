"""The speed settings of a cell: how they are applied, and the record the result keeps of them
(``provenance.speed``; every key is documented in ``fpt_bench.result_schema.Speed``).

Switches (hyperparameters, so they are part of a cell's config): ``precision`` (bf16 autocast), ``compile``
(``torch.compile``; the backend is ``$FPT_BENCH_COMPILE_BACKEND``, default ``inductor``), ``adam_impl``
(fused / foreach / for-loop Adam), ``feature_cache``; and the backbone's own options (GPT-2:
``attention=sdpa|eager``). docs/performance.md describes them all.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import torch

from fpt_bench.flops import backward_layers
from fpt_bench.specs import TrainHParams

if TYPE_CHECKING:
    from fpt_bench.train import Trainer

COMPILE_BACKEND_ENV = "FPT_BENCH_COMPILE_BACKEND"


def compile_backend() -> str:
    return os.environ.get(COMPILE_BACKEND_ENV) or "inductor"


def compiled(model: torch.nn.Module) -> torch.nn.Module:
    """``torch.compile(model)``: one module for training and evaluation (separate graphs for the two modes)."""
    return torch.compile(model, backend=compile_backend())  # type: ignore[return-value]


def adam(params: list[torch.nn.Parameter], hp: TrainHParams, device: torch.device
         ) -> tuple[torch.optim.Optimizer, str]:
    """Adam with the implementation ``hp.adam_impl`` asks for (auto: fused on CUDA, foreach elsewhere)."""
    impl = hp.adam_impl
    if impl == "auto":
        impl = "fused" if device.type == "cuda" else "foreach"
    kwargs: dict[str, Any] = {"lr": hp.lr, "weight_decay": hp.weight_decay}
    if impl == "fused":
        kwargs["fused"] = True
    else:
        kwargs["foreach"] = impl == "foreach"
    return torch.optim.Adam(params, **kwargs), impl


def record(trainer: Trainer, adam_impl: str) -> dict[str, Any]:
    """What the result records about the speed settings (feature-cache keys are added when it is decided)."""
    model, train = trainer.model, trainer.train
    split = getattr(train, "split", None)
    task = getattr(train, "task", None)
    augments = split is not None and task is not None and task.augments(train.options)
    return {
        "autocast": "bf16" if trainer.precision == "bf16" else None,
        "compile": bool(trainer.hp.compile),
        "compile_backend": compile_backend() if trainer.hp.compile else None,
        "attention": getattr(model.backbone, "attention", None),
        "optimizer": f"Adam ({adam_impl})",
        "data_on_device": True,
        "training_data": "generated on the device" if split is None else "split held on the device",
        "augmentation": "batched on the device" if augments else None,
        "bucket_by_length": bool(getattr(train, "bucketed", False)),
        "padding": "to the batch's longest sequence",
        "eval": f"whole splits under inference_mode, batches of {trainer.hp.eval_batch_size}",
        "backward_layers": backward_layers(model),
        "frozen_prefix_no_grad": not any(p.requires_grad for p in model._prefix_parameters()),
        "feature_cache": False,
    }
