"""Typed metadata of the components: tasks, backbones, freeze policies, executors (pydantic, ``extra="forbid"``: a
typo is an error, not a default)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, SerializeAsAny, model_validator

from fpt_bench.api.hparams import HParamOverrides, PaperHParams
from fpt_bench.api.objectives import Classification, Objective
from fpt_bench.api.options import Strict
from fpt_bench.api.roles import Role


# --------------------------------------------------------------------------------------------- tasks
class Continuous(Strict):
    """Each token is a real vector of ``dim`` values; the harness builds a linear input layer."""

    kind: Literal["continuous"] = "continuous"
    dim: int = Field(gt=0)


class Tokens(Strict):
    """Each token is an integer id below ``vocab_size``; the harness builds an embedding input layer."""

    kind: Literal["tokens"] = "tokens"
    vocab_size: int = Field(gt=0)
    pad_id: int = 0


InputSpec = Annotated[Continuous | Tokens, Field(discriminator="kind")]


class Readout(StrEnum):
    LAST = "last"  # the last position of the (padded) sequence, as the reference code does
    LAST_K = "last_k"  # the last k positions (bit tasks)
    LAST_NONPAD = "last_nonpad"  # the last position that is not padding


class OutputSpec(Strict):
    """What the output layer predicts: ``n_predictions`` labels (of ``n_classes`` each, for classification), and
    how they are trained and scored (``objective``, default single-label classification; ``fpt_bench.api.objectives``).

    With ``readout="last_k"`` the output layer is applied to each of the last ``k`` positions, and each
    position predicts ``n_predictions // k`` labels (bit memory: 20 positions x 50 bits).
    """

    n_classes: int | None = Field(default=None, gt=1, description="classes per label (classification)")
    n_predictions: int = Field(default=1, gt=0)
    readout: Readout = Readout.LAST
    k: int = Field(default=1, gt=0)
    objective: SerializeAsAny[Objective] = Field(default_factory=Classification)

    @model_validator(mode="after")
    def _check_k(self) -> OutputSpec:
        if self.readout != Readout.LAST_K and self.k != 1:
            raise ValueError("k only applies to readout 'last_k'")
        if self.n_predictions % self.k:
            raise ValueError(f"n_predictions ({self.n_predictions}) must be divisible by k ({self.k})")
        self.objective.validate_output(self)
        return self

    @property
    def width(self) -> int:
        """Values the output layer emits per prediction (``n_classes`` for classification)."""
        return self.objective.width(self)

    @property
    def per_position(self) -> int:
        return self.n_predictions // self.k


class TaskSpec(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    version: str = "1"
    description: str
    citation: str = ""
    input: InputSpec
    max_len: int = Field(gt=0)
    output: OutputSpec
    metric: Literal["accuracy"] = "accuracy"
    protocol: str = Field(default="default", description="the evaluation protocol these options select (e.g. "
                                                          "'paper-compat'); results of two protocols never mix")
    generated: bool = False  # training data drawn on the fly from the seed (no files)
    val_split: str = "val"
    test_splits: list[str] = ["test"]
    bucket_by_length: bool = False  # variable-length tasks: train on batches of similar length (less padding)
    paper: PaperHParams = PaperHParams()
    profiles: dict[str, HParamOverrides] = {}  # per-profile overrides for this task
    # task options a profile sets (the cell's own --task-args win), e.g. a small generated set under smoke; they
    # change the data, not the cell's identity, and the result's data provenance says which data was read
    profile_options: dict[str, dict[str, Any]] = {}
    # the primary metric (0-1) reached without solving the task: the most common answer, or a shortcut the task admits
    # (bit_memory: copy the query's unmasked half); None = 1 / n_classes. ``chance_note`` says how it is reached
    chance: float | None = Field(default=None, ge=0, le=1)
    chance_note: str = ""

    def chance_level(self) -> float | None:
        """``chance``, else what the objective says (1 / n_classes for accuracy), else None (unknown)."""
        return self.chance if self.chance is not None else self.output.objective.chance(self.output)


# ----------------------------------------------------------------------------------- other plugins
class BackboneSpec(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    citation: str = ""


class LayerSelection(Strict):
    """Some of a backbone's layers: ``last`` = the last ``last`` layers, and/or ``indices`` (negative: from the
    end). Layers are those of ``parameter_layers()``; a parameter outside every layer is never selected."""

    last: int | None = Field(default=None, gt=0)
    indices: list[int] | None = None


class PolicySpec(Strict):
    """``trainable_roles`` train (``layer_selection`` restricts a role to some layers); ``train_layers``: every
    parameter of those layers trains too, whatever its role ("all roles of the last k layers": ``last=k``)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    trainable_roles: frozenset[Role]
    layer_selection: dict[Role, LayerSelection] = {}
    train_layers: LayerSelection | None = None
    citation: str = ""


class ExecutorSpec(Strict):
    """An executor's name and description (how cells are scheduled)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    citation: str = ""
