"""How long the rest of a sweep will take: each pending cell's cost from a model of its work, at the rate measured
on the cells that finished.

Cost of a cell (token passes): training tokens count three times (forward and backward), evaluation tokens once
(forward only; the periodic validations and the final test passes), with the task's maximum length per example
until a cell of that task has finished (then the mean length its training examples had: a ListOps expression is
far shorter than ListOps' maximum) and, where a split's size is not fixed by the profile, ``DEFAULT_SPLIT``
examples. Model FLOPs are about twice the
parameters per token pass, so the rate is measured per parameter: seconds / (cost x parameters) of finished cells
of the same configuration (they differ in seed or learning rate only: the estimate is then as good as the
measurement), or of any finished cell for a configuration not seen yet (the FLOPs model); what a cell spends
outside its steps and evaluations (building the model, loading data) is added as measured. Cells are not all
alike (a ListOps cell does ~100x the token passes of a bit-XOR one), which is why the sweep does not simply
multiply the first cell's time.
"""

from __future__ import annotations

import json
import statistics
from typing import Any

from fpt_bench.api.cell import CellConfig
from fpt_bench.api.specs import TaskSpec

DEFAULT_SPLIT = 1000  # examples assumed in a validation or test split whose size the profile does not fix


def cell_cost(cell: CellConfig, spec: TaskSpec) -> float:
    """Token passes of a cell (see the module docstring)."""
    hp = cell.hparams
    evals = hp.steps // hp.eval_every + int(hp.steps % hp.eval_every > 0)
    val = hp.val_examples or DEFAULT_SPLIT
    test = (hp.test_examples or DEFAULT_SPLIT) * len(spec.test_splits)
    return float(spec.max_len) * (3 * hp.steps * hp.batch_size + evals * val + test)


def _config(cell: CellConfig) -> str:
    """Cells that differ only in their seed or learning rate take the same time."""
    hparams = cell.hparams.model_dump(exclude={"lr"})
    return json.dumps([cell.task, cell.task_args, cell.backbone, cell.backbone_args, cell.policy, cell.policy_args,
                       cell.profile, hparams], sort_keys=True, default=str)


class SweepClock:
    """Rates from finished cells, and the ETA of the pending ones."""

    def __init__(self, costs: dict[str, float], max_lens: dict[str, int] | None = None) -> None:
        self.costs = costs  # config hash -> cost of every cell of the sweep, at its task's maximum length
        self.max_lens = max_lens or {}  # config hash -> that maximum length
        self._lengths: dict[str, list[float]] = {}  # task -> mean tokens per training example, measured
        self._rates: dict[str, list[float]] = {}  # configuration -> seconds per (token pass x parameter)
        self._params: dict[str, int] = {}
        self._overheads: list[float] = []  # seconds outside training steps and evaluation (build, data)

    def cost(self, cell: CellConfig) -> float:
        """The cell's token passes, at the length its task's finished cells measured (else its maximum)."""
        key = cell.config_hash()
        measured, longest = self._lengths.get(cell.task), self.max_lens.get(key)
        if not measured or not longest:
            return self.costs[key]
        return self.costs[key] * min(statistics.median(measured) / longest, 1.0)

    def finished(self, cell: CellConfig, result: Any) -> None:
        """Learn from a finished cell (failed cells did not do the work: they teach nothing)."""
        if result is None or result.status == "failed" or not result.timing.steps or result.parameters is None:
            return
        key = _config(cell)
        params = max(result.parameters.total, 1)
        timing = result.timing
        if timing.samples_per_second > 0 and timing.tokens_per_second > 0:
            self._lengths.setdefault(cell.task, []).append(timing.tokens_per_second / timing.samples_per_second)
        work = timing.train_seconds + timing.eval_seconds
        self._params[key] = params
        self._overheads.append(max(timing.wall_seconds - work, 0.0))
        self._rates.setdefault(key, []).append(work / (self.cost(cell) * params))

    def eta(self, pending: list[CellConfig]) -> float | None:
        """Seconds the ``pending`` cells will take, or None before any cell has finished."""
        if not self._rates:
            return None
        every = statistics.median(r for rates in self._rates.values() for r in rates)
        typical = statistics.median(self._params.values())
        total = 0.0
        for cell in pending:
            key = _config(cell)
            rate = statistics.median(self._rates[key]) if key in self._rates else every
            total += self.cost(cell) * self._params.get(key, typical) * rate
        return total + len(pending) * statistics.median(self._overheads)
