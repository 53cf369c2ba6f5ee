"""Suites: named grids of cells that carry the paper's reference numbers for them (the paper's tables)."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, model_validator

from fpt_bench.api.hparams import HParamOverrides
from fpt_bench.api.options import Strict


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
                for col, value in values.items():
                    if col not in cols:
                        raise ValueError(f"{what}[{row!r}] names column {col!r}, which no cell has")
                    if isinstance(value, float) and not math.isfinite(value):
                        raise ValueError(f"{what}[{row!r}][{col!r}] is {value}: a paper number is finite")
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
