"""Typed metadata for plugins and runs (pydantic, ``extra="forbid"``: a typo is an error, not a default)."""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fpt_bench.api.roles import Role


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
    """What the output layer predicts: ``n_predictions`` labels of ``n_classes`` each.

    With ``readout="last_k"`` the output layer is applied to each of the last ``k`` positions, and each
    position predicts ``n_predictions // k`` labels (bit memory: 20 positions x 50 bits).
    """

    n_classes: int = Field(gt=1)
    n_predictions: int = Field(default=1, gt=0)
    readout: Readout = Readout.LAST
    k: int = Field(default=1, gt=0)

    @model_validator(mode="after")
    def _check_k(self) -> OutputSpec:
        if self.readout != Readout.LAST_K and self.k != 1:
            raise ValueError("k only applies to readout 'last_k'")
        if self.n_predictions % self.k:
            raise ValueError(f"n_predictions ({self.n_predictions}) must be divisible by k ({self.k})")
        return self

    @property
    def per_position(self) -> int:
        return self.n_predictions // self.k


class HParamOverrides(Strict):
    """A partial set of training hyperparameters (what a profile or a user may set)."""

    steps: int | None = Field(default=None, gt=0)
    batch_size: int | None = Field(default=None, gt=0)
    lr: float | None = Field(default=None, gt=0)
    grad_accum: int | None = Field(default=None, gt=0)
    grad_clip: float | None = Field(default=None, ge=0)
    weight_decay: float | None = Field(default=None, ge=0)
    input_dropout: float | None = Field(default=None, ge=0, lt=1)
    eval_every: int | None = Field(default=None, gt=0)
    eval_batch_size: int | None = Field(default=None, gt=0)
    checkpoint_every: int | None = Field(default=None, ge=0)
    train_examples: int | None = Field(default=None, gt=0)
    val_examples: int | None = Field(default=None, gt=0)
    test_examples: int | None = Field(default=None, gt=0)
    precision: Literal["auto", "fp32", "bf16"] | None = None
    compile: bool | None = None
    feature_cache: Literal["auto", "on", "off"] | None = None
    adam_impl: Literal["auto", "foreach", "fused", "for_loop"] | None = None


class PaperHParams(Strict):
    """The paper's (reference code's) hyperparameters for a task: the ``paper`` profile's values."""

    lr: float = Field(default=1e-3, gt=0)
    batch_size: int = Field(default=16, gt=0)
    steps: int = Field(default=10_000, gt=0)


class TaskSpec(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    version: str = "1"
    description: str
    citation: str = ""
    input: InputSpec
    max_len: int = Field(gt=0)
    output: OutputSpec
    metric: Literal["accuracy"] = "accuracy"
    generated: bool = False  # training data drawn on the fly from the seed (no files)
    val_split: str = "val"
    test_splits: list[str] = ["test"]
    bucket_by_length: bool = False  # variable-length tasks: train on batches of similar length (less padding)
    paper: PaperHParams = PaperHParams()
    profiles: dict[str, HParamOverrides] = {}  # per-profile overrides for this task
    # task options a profile sets (the cell's own --task-args win), e.g. a small generated set under smoke; they
    # change the data, not the cell's identity, and the result's data provenance says which data was read
    profile_options: dict[str, dict[str, Any]] = {}
    # accuracy (0-1) reached without solving the task: the most common answer, or a shortcut the task admits
    # (bit_memory: copy the query's unmasked half); None = 1 / n_classes. ``chance_note`` says how it is reached
    chance: float | None = Field(default=None, ge=0, le=1)
    chance_note: str = ""

    def chance_level(self) -> float:
        return self.chance if self.chance is not None else 1.0 / self.output.n_classes


# ----------------------------------------------------------------------------------- other plugins
class BackboneSpec(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    citation: str = ""


class LayerSelection(Strict):
    """Restricts a role to some layers: ``last`` = the last ``count`` layers, or explicit indices."""

    last: int | None = Field(default=None, gt=0)
    indices: list[int] | None = None


class PolicySpec(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    trainable_roles: frozenset[Role]
    layer_selection: dict[Role, LayerSelection] = {}
    citation: str = ""


class SuiteCell(Strict):
    """One cell of a suite (seeds and the profile come from the run). ``label`` names its row in the paper's
    table and ``column`` its column (default: the task name)."""

    task: str
    backbone: str = "gpt2"
    backbone_args: dict[str, Any] = {}
    policy: str = "fpt"
    policy_args: dict[str, Any] = {}
    task_args: dict[str, Any] = {}
    label: str = ""  # the row name in the paper's table
    column: str = ""  # the column name in the paper's table (default: the task name)
    hparams: HParamOverrides = HParamOverrides()  # this cell's overrides (the user's still win)

    @property
    def row(self) -> str:
        return self.label or f"{self.backbone} / {self.policy}"

    @property
    def col(self) -> str:
        return self.column or self.task


class SuiteSpec(Strict):
    """A named grid of cells with the paper's numbers for it: ``reference[row label][column]`` (test accuracy
    in %, or steps when ``metric`` is ``steps_to_threshold``), ``reference_marks`` the paper's marks on them
    (``"†"``: that run diverged), ``thresholds[column]`` the validation accuracy (0-1) a run must reach for
    steps-to-threshold."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    cells: list[SuiteCell]
    reference: dict[str, dict[str, float]] = {}  # row label -> column -> paper number
    reference_marks: dict[str, dict[str, str]] = {}  # row label -> column -> mark ("†" = diverged)
    source: str = ""
    metric: Literal["test_accuracy", "steps_to_threshold"] = "test_accuracy"
    thresholds: dict[str, float] = {}  # column -> validation accuracy in [0, 1]
    notes: list[str] = []
    next_steps: list[str] = []  # commands `fpt-bench run` suggests once this suite's cells are done

    @model_validator(mode="after")
    def _check_names(self) -> SuiteSpec:
        rows, cols = self.rows(), self.columns()
        for what, table in (("reference", self.reference), ("reference_marks", self.reference_marks)):
            for row, values in table.items():
                if row not in rows:
                    raise ValueError(f"{what} names row {row!r}, which no cell has (rows: {', '.join(rows)})")
                for col in values:
                    if col not in cols:
                        raise ValueError(f"{what}[{row!r}] names column {col!r}, which no cell has")
        for col, value in self.thresholds.items():
            if col not in cols or not 0 <= value <= 1:
                raise ValueError(f"thresholds[{col!r}]: must name a column and lie in [0, 1]")
        if self.metric == "steps_to_threshold" and not self.thresholds:
            raise ValueError("metric steps_to_threshold needs thresholds")
        return self

    def rows(self) -> list[str]:
        return list(dict.fromkeys(c.row for c in self.cells))

    def columns(self) -> list[str]:
        return list(dict.fromkeys(c.col for c in self.cells))


# ----------------------------------------------------------------------------------------- runs
class TrainHParams(Strict):
    """Fully resolved training hyperparameters of one cell."""

    steps: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)
    grad_accum: int = Field(default=1, gt=0)
    grad_clip: float = Field(default=1.0, ge=0)
    weight_decay: float = Field(default=0.0, ge=0)
    input_dropout: float = Field(default=0.1, ge=0, lt=1)
    eval_every: int = Field(gt=0)
    eval_batch_size: int = Field(default=256, gt=0)
    checkpoint_every: int = Field(default=0, ge=0)  # 0 = no checkpoints
    train_examples: int | None = Field(default=None, gt=0)
    val_examples: int | None = Field(default=None, gt=0)
    test_examples: int | None = Field(default=None, gt=0)
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    compile: bool = False  # torch.compile the model (training and evaluation)
    # output-layer-only policies: train the head on backbone features computed once (docs/performance.md).
    # auto: when that gives the uncached run's result; on: also when the frozen part has dropout (then off)
    feature_cache: Literal["auto", "on", "off"] = "auto"
    adam_impl: Literal["auto", "foreach", "fused", "for_loop"] = "auto"  # auto: fused on CUDA and CPU, else foreach

    def recorded(self) -> dict[str, Any]:
        """The values a result records (``cell.hparams``): all but the settings of ``NEUTRAL_HPARAMS`` that hold
        their neutral value, so results written before such a setting existed and after compare as the same
        hyperparameters (the leaderboard refuses to mix different ones). ``config_hash`` skips defaults anyway."""
        values = self.model_dump(mode="json")
        return {k: v for k, v in values.items() if not (k in NEUTRAL_HPARAMS and v == NEUTRAL_HPARAMS[k])}


# Settings added after results were first written that do not change a result (beyond floating-point rounding)
# while they hold this value: left out of a result's recorded hparams then (``TrainHParams.recorded``).
NEUTRAL_HPARAMS: dict[str, Any] = {"feature_cache": "auto", "adam_impl": "auto"}


class CellConfig(Strict):
    """One experiment: (task, backbone, freeze policy, seed, profile) with everything resolved.

    Its hash names its result file; the device is not part of it (a cell is the same cell on any device).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str
    task_args: dict[str, Any] = {}
    backbone: str
    backbone_args: dict[str, Any] = {}
    policy: str
    policy_args: dict[str, Any] = {}
    seed: int
    profile: str
    hparams: TrainHParams

    def config_hash(self) -> str:
        """Hash of the values that differ from their defaults: a field added later with a default that keeps
        the old behaviour leaves every existing cell's hash (and result path) unchanged."""
        blob = json.dumps(self.model_dump(mode="json", exclude_defaults=True), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def label(self) -> str:
        args = ",".join(f"{k}={v}" for k, v in sorted(self.backbone_args.items()))
        bb = f"{self.backbone}[{args}]" if args else self.backbone
        return f"{self.task} / {bb} / {self.policy} / seed {self.seed} / {self.profile}"
