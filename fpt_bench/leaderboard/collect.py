"""Result files -> tables: match results to a suite's cells (or derive rows and columns from the results), select
the learning rate by validation (the task's primary metric, in its direction), aggregate seeds, and put the paper's
numbers beside them.

Only result files are read, and only through ``fpt_bench.results.store.read_result`` (via ``check_result_file``).
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fpt_bench.api.errors import CorruptFileError, UserError
from fpt_bench.api.suites import SuiteSpec
from fpt_bench.leaderboard.validate import check_result_file
from fpt_bench.leaderboard.variants import split_rows
from fpt_bench.leaderboard.verification import counts as verification_counts
from fpt_bench.results.schema import CellResult, primary_value


@dataclass(frozen=True)
class Loaded:
    path: Path
    result: CellResult


@dataclass
class Stat:
    """One table cell: the runs (seeds) of one configuration, aggregated."""

    row: str
    column: str
    status: str  # ok | diverged | failed | missing
    runs: list[Loaded] = field(default_factory=list)
    mean: float | None = None
    std: float | None = None
    n: int = 0  # runs with a value
    n_runs: int = 0
    n_failed: int = 0
    n_diverged: int = 0
    values: list[float] = field(default_factory=list)
    val_mean: float | None = None  # mean validation value of the primary metric (a fraction for accuracy)
    lr: float | None = None
    lr_candidates: dict[float, float | None] = field(default_factory=dict)  # lr -> mean validation value
    reference: float | None = None
    reference_mark: str = ""
    config: dict[str, Any] = field(default_factory=dict)  # task, backbone(+args), policy(+args), profile, hparams
    selected: bool = True  # the learning rate chosen by validation accuracy (long layout lists every rate)
    errors: list[str] = field(default_factory=list)  # why seeds failed (first line of each distinct error)
    steps: list[int | None] = field(default_factory=list)  # per run: steps to the column's threshold
    verified: int = 0  # runs a rerun reproduced (fpt-bench verify; leaderboard/verification.py)
    rerun_differs: int = 0  # runs whose rerun gave other numbers

    @property
    def delta(self) -> float | None:
        return None if self.mean is None or self.reference is None else self.mean - self.reference


@dataclass
class Column:
    name: str
    task: str = ""
    protocol: str = ""
    task_version: str = ""
    threshold: float | None = None
    metric: str = "accuracy"  # the task's primary metric (its results' metrics.metric)
    higher_is_better: bool = True
    percent: bool = True  # a fraction shown in %; else shown as is (an MSE)


@dataclass
class Table:
    title: str
    metric: str  # test_accuracy (%) | steps_to_threshold
    rows: list[str]
    columns: list[Column]
    cells: dict[tuple[str, str], Stat]
    suite: str | None = None
    source: str = ""
    notes: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    long: list[Stat] = field(default_factory=list)  # one entry per configuration (every learning rate)


# ------------------------------------------------------------------------------------------ reading
def load_results(paths: Iterable[Path]) -> tuple[list[Loaded], list[str]]:
    """Every result file under ``paths`` (files or folders), checked; refused files come back as reasons.
    Two files of the same cell (the same config hash): the newer one is used."""
    files, refused = result_files(paths)
    loaded: dict[str, Loaded] = {}
    for f in files:
        try:
            result = check_result_file(f)
        except CorruptFileError as exc:
            refused.append(str(exc))
            continue
        key = result.provenance.config_hash
        if key not in loaded or loaded[key].result.provenance.created_at < result.provenance.created_at:
            loaded[key] = Loaded(f, result)
    kept, duplicates = one_per_seed(list(loaded.values()))  # the same cell and seed spelled differently
    return kept, refused + duplicates


def result_files(paths: Iterable[Path | str]) -> tuple[list[Path], list[str]]:
    """The result files named in ``paths`` and under its folders, and why each ``.json`` link out of a folder is
    not one of them; a path that does not exist is a UserError."""
    files: list[Path] = []
    refused: list[str] = []
    for p in map(Path, paths):
        if p.is_dir():
            found, outside = result_files_under(p)
            files += found
            refused += [f"{f}: refused: a symbolic link out of {p}" for f in outside]
        elif p.exists() or p.is_symlink():
            files.append(p)
        else:
            raise UserError(f"{p}: no such result file or folder")
    return files, refused


def result_files_under(root: Path) -> tuple[list[Path], list[Path]]:
    """The ``*.json`` files under ``root`` (sorted), and those that are symbolic links leading out of it. Folders
    that are symbolic links are not entered (a link to ``/`` would walk the whole machine)."""
    top = root.resolve()
    inside: list[Path] = []
    outside: list[Path] = []
    for folder, _, names in os.walk(root):  # followlinks=False
        for name in names:
            path = Path(folder) / name
            if name.endswith(".json"):
                (inside if path.resolve().is_relative_to(top) else outside).append(path)
    return sorted(inside), sorted(outside)


def one_per_seed(results: list[Loaded]) -> tuple[list[Loaded], list[str]]:
    """The results with one per (cell, seed) once options are normalised (``consistency.cell_key``). Of twins,
    the plainest spelling (fewest options given) is kept, then the earliest written, then the first path; each
    other is refused with the one it duplicates."""
    from fpt_bench.leaderboard.consistency import cell_key, options_given

    first: dict[str, Loaded] = {}
    refused: list[str] = []
    for x in sorted(results, key=lambda x: (options_given(x.result), x.result.provenance.created_at, str(x.path))):
        key = cell_key(x.result)
        if key in first:
            refused.append(f"{x.path}: refused: the same cell and seed as {first[key].path} once options are "
                           f"normalised against their defaults (one result per seed counts)")
        else:
            first[key] = x
    return [x for x in results if first.get(cell_key(x.result)) is x], refused


def _canon(args: dict[str, Any]) -> str:
    return json.dumps(args, sort_keys=True, separators=(",", ":"), default=str)


def _without_protocol(args: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in args.items() if k != "protocol"}


def _args_text(name: str, args: dict[str, Any]) -> str:
    inner = ",".join(f"{k}={v}" for k, v in sorted(args.items()))
    return f"{name}[{inner}]" if inner else name


def identity(task: str, task_args: dict[str, Any], backbone: str, backbone_args: dict[str, Any], policy: str,
             policy_args: dict[str, Any]) -> tuple[str, ...]:
    """What makes two results the same cell but for seed, learning rate and protocol."""
    return (task, _canon(_without_protocol(task_args)), backbone, _canon(backbone_args), policy,
            _canon(policy_args))


def result_identity(r: CellResult) -> tuple[str, ...]:
    c = r.cell
    return identity(c.task, c.task_args, c.backbone, c.backbone_args, c.policy, c.policy_args)


# --------------------------------------------------------------------------------------- the tables
def build_table(results: list[Loaded], suite: SuiteSpec | None = None, overrides: dict[str, dict[str, Any]] | None
                = None, profile: str | None = None, protocol: str | None = None, layout: str = "paper",
                title: str = "") -> Table:
    """The table of ``results``: a suite's rows and columns (cells without results shown as missing), or rows
    (backbone / policy) and columns (task) derived from the results.

    ``Table.long`` has one entry per configuration (every learning rate), each stating its own profile,
    protocol and version. With ``layout="paper"``, ``Table.cells`` has one number per (row, column) too. Runs of
    one (row, column) whose profile, task version, protocol or hyperparameters other than the learning rate
    differ are never mixed into one number: each setting gets a row of its own, labelled with what differs
    (``leaderboard.variants``).
    """
    results = [x for x in results if (profile is None or x.result.cell.profile == profile)
               and (protocol is None or x.result.cell.protocol == protocol)]
    metric = suite.metric if suite else "test_accuracy"
    placed, rows, col_names, col_task, present = _place(results, suite, overrides or {})
    placed, rows, present, base = split_rows(placed, rows, present)
    used = {x.path for xs in placed.values() for x in xs}
    paper = layout == "paper"
    columns = [_column(name, col_task.get(name, ""), [x for (_, c), xs in placed.items() if c == name for x in xs],
                       suite) for name in col_names]
    cells: dict[tuple[str, str], Stat] = {}
    long: list[Stat] = []
    for row in rows:
        for col in columns:
            if (row, col.name) not in present:
                continue
            runs = placed.get((row, col.name), [])
            variants = [s for xs in _variants(runs) for s in _select(row, col, xs, metric, all_rates=True)]
            stats = list(variants) or [Stat(row, col.name, "missing", config={"task": col.task})]
            if paper:
                cells[(row, col.name)] = _select(row, col, runs, metric)
                stats.append(cells[(row, col.name)])
            for stat in stats:
                if suite is not None:
                    stat.reference = suite.reference.get(base.get(row, row), {}).get(col.name)
                    stat.reference_mark = suite.reference_marks.get(base.get(row, row), {}).get(col.name, "")
            long += variants or stats[:1]
    notes = list(suite.notes) if suite else []
    unmatched = len(results) - len(used)
    if suite is not None and unmatched:
        notes.append(f"{unmatched} result file(s) belong to no cell of suite {suite.name!r} (not shown).")
    return Table(title=title or (f"{suite.name}: {suite.description}" if suite else "results"), metric=metric,
                 rows=rows, columns=columns, cells=cells, suite=suite.name if suite else None,
                 source=suite.source if suite else "", notes=notes, long=long)


Placement = tuple[dict[tuple[str, str], list[Loaded]], list[str], list[str], dict[str, str], set[tuple[str, str]]]


def _place(results: list[Loaded], suite: SuiteSpec | None, over: dict[str, dict[str, Any]]) -> Placement:
    placed: dict[tuple[str, str], list[Loaded]] = defaultdict(list)
    if suite is not None:
        slots: dict[tuple[str, ...], list[tuple[str, str]]] = defaultdict(list)
        for c in suite.cells:
            key = identity(c.task, {**c.task_args, **over.get("task_args", {})}, c.backbone,
                           {**c.backbone_args, **over.get("backbone_args", {})}, c.policy,
                           {**c.policy_args, **over.get("policy_args", {})})
            slots[key].append((c.row, c.col))
        for x in results:
            for slot in slots.get(result_identity(x.result), []):
                placed[slot].append(x)
        return (placed, suite.rows(), suite.columns(), {c.col: c.task for c in suite.cells},
                {(c.row, c.col) for c in suite.cells})
    for x in results:
        c = x.result.cell
        placed[(_args_text(c.backbone, c.backbone_args) + " / " + _args_text(c.policy, c.policy_args),
                _args_text(c.task, _without_protocol(c.task_args)))].append(x)
    col_task = {col: x.result.cell.task for (_, col), xs in placed.items() for x in xs}
    return placed, sorted({r for r, _ in placed}), sorted({c for _, c in placed}), col_task, set(placed)


def _column(name: str, task: str, runs: list[Loaded], suite: SuiteSpec | None) -> Column:
    """A column's header facts: its task, and the task versions and protocols of its runs (several when rows of
    different settings share the column; each such row names its own)."""
    col = Column(name=name, task=task, threshold=suite.thresholds.get(name) if suite else None)
    for attr in ("task_version", "protocol"):
        setattr(col, attr, ", ".join(sorted({str(getattr(x.result.cell, attr)) for x in runs})))
    metrics = sorted({(m.metric, m.higher_is_better, m.percent) for m in (x.result.metrics for x in runs)})
    if len(metrics) > 1:
        raise UserError(f"column {name!r}: results ranked by different metrics "
                        f"({', '.join(m for m, _, _ in metrics)}); one task version has one primary metric")
    if metrics:
        col.metric, col.higher_is_better, col.percent = metrics[0]
    return col


def _hparams_key(r: CellResult) -> str:
    return _canon({k: v for k, v in r.cell.hparams.items() if k != "lr"})


def _variants(runs: list[Loaded]) -> list[list[Loaded]]:
    """Runs split by everything but seed and learning rate (the long layout's groups)."""
    groups: dict[tuple[str, ...], list[Loaded]] = defaultdict(list)
    for x in runs:
        c = x.result.cell
        groups[(c.profile, c.protocol, c.task_version, _hparams_key(x.result))].append(x)
    return [groups[k] for k in sorted(groups)]


def _select(row: str, col: Column, runs: list[Loaded], metric: str, all_rates: bool = False) -> Any:
    """Aggregate one table cell: with several learning rates, the one with the best mean validation accuracy
    wins (Rothermel et al. 2021). Returns that Stat, or with ``all_rates`` every rate's (the winner marked)."""
    if not runs:
        stat = Stat(row=row, column=col.name, status="missing", config={"task": col.task})
        return [stat] if all_rates else stat
    variants = sorted({_hparams_key(x.result) for x in runs})
    if len(variants) > 1:
        a, b = (json.loads(v) for v in variants[:2])
        diff = ", ".join(f"{k}: {a.get(k)} vs {b.get(k)}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))
        raise UserError(f"row {row!r}, column {col.name!r}: results with different hyperparameters ({diff}); "
                        f"pass one set of result folders, or use --layout long")
    by_lr: dict[float, list[Loaded]] = defaultdict(list)
    for x in runs:
        by_lr[float(x.result.cell.hparams["lr"])].append(x)
    per_lr = [_aggregate(row, col, lr, xs, metric) for lr, xs in sorted(by_lr.items())]
    ranked = [s for s in per_lr if s.val_mean is not None]
    best = max if col.higher_is_better else min
    chosen = best(ranked, key=lambda s: s.val_mean or 0.0) if ranked else per_lr[0]
    candidates = {s.lr: s.val_mean for s in per_lr if s.lr is not None}
    for s in per_lr:
        s.lr_candidates = candidates if len(per_lr) > 1 else {}
        s.selected = s is chosen
    return per_lr if all_rates else chosen


def steps_to_threshold(result: CellResult, threshold: float) -> int | None:
    """The first evaluated step whose validation value of the primary metric reaches ``threshold`` (None: never)."""
    m = result.metrics
    for point in m.curve:
        value = point.val_score if m.metric != "accuracy" else point.val_accuracy
        if value is not None and (value >= threshold if m.higher_is_better else value <= threshold):
            return point.step
    return None


def _aggregate(row: str, col: Column, lr: float, runs: list[Loaded], metric: str) -> Stat:
    runs = sorted(runs, key=lambda x: x.result.cell.seed)
    stat = Stat(row=row, column=col.name, status="ok", runs=runs, lr=lr, n_runs=len(runs))
    first = runs[0].result.cell
    stat.config = {"task": first.task, "task_args": first.task_args, "backbone": first.backbone,
                   "backbone_args": first.backbone_args, "policy": first.policy, "policy_args": first.policy_args,
                   "profile": first.profile, "protocol": first.protocol, "task_version": first.task_version,
                   "hparams": first.hparams, "seeds": [x.result.cell.seed for x in runs]}
    vals = []
    for x in runs:
        r = x.result
        stat.n_failed += r.status == "failed"
        stat.n_diverged += r.status == "diverged"
        if r.status == "failed":
            reason = ((r.error or "").strip().splitlines() or ["no error recorded"])[0]
            if reason not in stat.errors:
                stat.errors.append(reason)
            continue
        val = primary_value(r.metrics, "val")
        if val is not None:
            vals.append(val)
        steps = None if col.threshold is None else steps_to_threshold(r, col.threshold)
        stat.steps.append(steps)
        if metric == "steps_to_threshold":
            value = None if steps is None else float(steps)
        else:
            test = primary_value(r.metrics)
            value = None if test is None else (100.0 * test if col.percent else test)
        if value is not None and math.isfinite(value):
            stat.values.append(value)
    stat.verified, stat.rerun_differs = verification_counts(runs)
    stat.val_mean = sum(vals) / len(vals) if vals else None
    stat.n = len(stat.values)
    if stat.values:
        stat.mean = statistics.fmean(stat.values)
        stat.std = statistics.stdev(stat.values) if stat.n > 1 else None
    if stat.n_diverged:
        stat.status = "diverged"
    elif stat.n == 0 and stat.n_failed:
        stat.status = "failed"
    return stat
