"""Training hyperparameters: every setting declared once, in ``TrainHParams``.

``HParamOverrides`` (what a profile, a task's per-profile values, a suite cell or a user may set) is derived from it:
the same fields, each optional. ``fpt-bench run``'s flags (``--steps``, ``--lr``, ...) are generated from it too, so
adding a hyperparameter is one edit here.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, create_model
from pydantic.fields import FieldInfo

from fpt_bench.api.options import Strict

# Upper bounds: far beyond any run (the paper's longest is 40,000 steps of 16 examples), low enough that every count
# fits the integer types the kernels take; whether a batch fits the device is checked before the first step
# (fpt_bench.cells.sizes). Every float is finite.
MAX_STEPS = 10**9
MAX_PER_STEP = 2**31 - 1
MAX_EXAMPLES = 2**63 - 1


class TrainHParams(Strict):
    """Fully resolved training hyperparameters of one cell."""

    steps: int = Field(gt=0, le=MAX_STEPS, description="optimizer steps")
    batch_size: int = Field(gt=0, le=MAX_PER_STEP, description="examples per optimizer step")
    lr: float = Field(gt=0, allow_inf_nan=False, description="Adam's learning rate")
    grad_accum: int = Field(default=1, gt=0, le=MAX_PER_STEP,
                            description="accumulation chunks per step (same effective batch)")
    grad_clip: float = Field(default=1.0, ge=0, allow_inf_nan=False, description="gradient-norm clip (0: none)")
    weight_decay: float = Field(default=0.0, ge=0, allow_inf_nan=False, description="Adam's weight decay")
    input_dropout: float = Field(default=0.1, ge=0, lt=1, description="dropout after the input layer (paper: 0.1)")
    eval_every: int = Field(gt=0, le=MAX_STEPS, description="steps between evaluations on the whole validation split")
    eval_batch_size: int = Field(default=256, gt=0, le=MAX_PER_STEP, description="examples per evaluation batch")
    checkpoint_every: int = Field(default=0, ge=0, le=MAX_STEPS, description="steps between checkpoints (0: none)")
    train_examples: int | None = Field(default=None, gt=0, le=MAX_EXAMPLES,
                                       description="use the first N training examples")
    val_examples: int | None = Field(default=None, gt=0, le=MAX_EXAMPLES,
                                     description="use the first N validation examples")
    test_examples: int | None = Field(default=None, gt=0, le=MAX_EXAMPLES, description="use the first N test examples")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        default="auto", description="bf16 autocast or fp32; auto: what is faster here (docs/performance.md)")
    compile: bool = Field(default=False, description="torch.compile the model (training and evaluation)")
    feature_cache: Literal["auto", "on", "off"] = Field(
        default="auto", description="output-layer-only policies: train the head on backbone features computed once "
                                    "(auto: when that gives the uncached run's result; docs/performance.md)")
    adam_impl: Literal["auto", "foreach", "fused", "for_loop"] = Field(
        default="auto", description="Adam implementation (auto: fused on CUDA and CPU, else foreach)")

    def recorded(self) -> dict[str, Any]:
        """The values a result records (``cell.hparams``): all but the settings of ``NEUTRAL_HPARAMS`` that hold
        their neutral value, so results written before such a setting existed and after compare as the same
        hyperparameters (the leaderboard refuses to mix different ones). ``config_hash`` skips defaults anyway."""
        values = self.model_dump(mode="json")
        return {k: v for k, v in values.items() if not (k in NEUTRAL_HPARAMS and v == NEUTRAL_HPARAMS[k])}


# Settings added after results were first written that do not change a result (beyond floating-point rounding)
# while they hold this value: left out of a result's recorded hparams then (``TrainHParams.recorded``).
NEUTRAL_HPARAMS: dict[str, Any] = {"feature_cache": "auto", "adam_impl": "auto"}


def _optional(info: FieldInfo) -> tuple[Any, FieldInfo]:
    field = FieldInfo.merge_field_infos(info, default=None)
    return info.annotation | None, field  # type: ignore[operator]


HParamOverrides = create_model(  # type: ignore[call-overload]
    "HParamOverrides", __base__=Strict, __module__=__name__,
    __doc__="A partial set of training hyperparameters (what a profile, a task, a suite cell or a user may set): "
            "the fields of TrainHParams, each optional.",
    **{name: _optional(info) for name, info in TrainHParams.model_fields.items()},
)


class PaperHParams(Strict):
    """The paper's (reference code's) hyperparameters for a task: the ``paper`` profile's values."""

    lr: float = Field(default=1e-3, gt=0)
    batch_size: int = Field(default=16, gt=0)
    steps: int = Field(default=10_000, gt=0)
