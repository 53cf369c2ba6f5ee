"""Profiles scale a cell: ``smoke`` (seconds on a CPU), ``quick`` (minutes on a CPU), ``paper`` (a GPU).

Resolution order, later wins: the task's paper hyperparameters, the profile's generic values, the task's
own overrides for that profile, then the user's overrides (config file, then command line).
"""

from __future__ import annotations

from typing import Any

from fpt_bench.api.errors import UserError
from fpt_bench.api.hparams import HParamOverrides, TrainHParams
from fpt_bench.api.specs import TaskSpec

PROFILES: dict[str, tuple[str, HParamOverrides]] = {
    "smoke": (
        "seconds on a CPU: 20 steps, tiny batches and evaluation subsets; proves the pipeline",
        HParamOverrides(
            steps=20, batch_size=4, eval_every=10, eval_batch_size=64, checkpoint_every=10,
            train_examples=256, val_examples=64, test_examples=64, precision="fp32",
        ),
    ),
    "quick": (
        "minutes on a CPU: a few hundred steps, validation subset, the whole test split",
        HParamOverrides(
            steps=300, batch_size=8, eval_batch_size=128, checkpoint_every=100, val_examples=1000,
            precision="auto",
        ),
    ),
    "paper": (
        "the paper's learning rate, batch size and step budget, whole splits; meant for a GPU",
        HParamOverrides(eval_batch_size=512, checkpoint_every=1000, precision="auto"),
    ),
}


def default_profile(device: str) -> str:
    return "paper" if device.startswith("cuda") else "quick"


def task_options(task: Any, task_args: dict[str, Any], profile: str) -> Any:
    """A task's options in a cell: what its spec sets for ``profile`` (``TaskSpec.profile_options``), then the
    cell's own task args."""
    return task.options({**task.spec.profile_options.get(profile, {}), **task_args})


def cell_spec(task: Any, cell: Any) -> Any:
    """The ``TaskSpec`` a cell runs with: its task's spec resolved with the cell's options (profile's, then own)."""
    return task.resolve_spec(task_options(task, cell.task_args, cell.profile))


def check_profile(profile: str) -> None:
    if profile not in PROFILES:
        raise UserError(f"unknown profile {profile!r}; choose one of: {', '.join(PROFILES)}")


def resolve_hparams(task: TaskSpec, profile: str, overrides: HParamOverrides | None = None) -> TrainHParams:
    check_profile(profile)
    values: dict[str, Any] = task.paper.model_dump()
    layers = [PROFILES[profile][1], task.profiles.get(profile), overrides]
    for layer in layers:
        if layer is not None:
            values.update(layer.model_dump(exclude_none=True))
    values.setdefault("eval_every", max(1, values["steps"] // 10))
    if values["eval_every"] > values["steps"]:
        values["eval_every"] = values["steps"]
    return TrainHParams(**values)
