"""Results of one table cell whose settings differ (profile, protocol, task version, hyperparameters other than
the learning rate) are shown side by side: the row splits into one row per setting, each labelled with the
settings that differ, never refused and never shown as two rows that look the same.

Only differences *within* a (row, column) split it: tasks legitimately differ from each other (a profile gives
ListOps 100 steps and bit_xor 500), so a setting that is the same for every run of a cell is not shown. When
profiles differ, the row is labelled by profile (in a table of several profiles, every row is); a hyperparameter
is named only when it differs between runs of the same profile.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from fpt_bench.results.schema import CellResult

Slot = tuple[str, str]  # (row, column)
RUN_KEYS = ("profile", "protocol", "version")


def settings(r: CellResult) -> dict[str, Any]:
    """What must be equal for two runs to share one number (all but seed and learning rate)."""
    c = r.cell
    hp = {k: v for k, v in c.hparams.items() if k != "lr"}
    return {"profile": c.profile, "protocol": c.protocol, "version": c.task_version, **hp}


def _differing(runs: list[Any]) -> set[str]:
    seen: dict[str, set[str]] = defaultdict(set)
    for x in runs:
        for key, value in settings(x.result).items():
            seen[key].add(json.dumps(value, sort_keys=True, default=str))
    return {k for k, values in seen.items() if len(values) > 1}


def label_keys(runs: list[Any]) -> list[str]:
    """The settings that tell apart the runs of one table cell: ``profile`` when profiles differ, then protocol,
    task version and hyperparameters that differ between runs of the same profile."""
    differ = _differing(runs)
    keys: set[str] = set()
    if "profile" in differ:
        keys.add("profile")
        by_profile: dict[str, list[Any]] = defaultdict(list)
        for x in runs:
            by_profile[x.result.cell.profile].append(x)
        for group in by_profile.values():
            keys |= _differing(group)
    else:
        keys = differ
    ordered = [k for k in RUN_KEYS if k in keys]
    return ordered + sorted(keys - set(RUN_KEYS))


def variant_label(row: str, r: CellResult, keys: list[str]) -> str:
    values = settings(r)
    shown = ", ".join(f"{k} {values.get(k)}" if k in RUN_KEYS else f"{k}={values.get(k)}" for k in keys)
    return f"{row} ({shown})"


def split_rows(placed: dict[Slot, list[Any]], rows: list[str], present: set[Slot]
               ) -> tuple[dict[Slot, list[Any]], list[str], set[Slot], dict[str, str]]:
    """A cell whose runs differ in settings moves each run to a row of its own, labelled ``row (setting ...)``;
    the other cells stay where they were. Returns the new placement, rows and present slots, and each row's
    base row (the suite row whose paper numbers it takes)."""
    base = {row: row for row in rows}
    out: dict[Slot, list[Any]] = defaultdict(list)
    variants: dict[str, set[str]] = defaultdict(set)
    split: set[Slot] = set()
    # a table holding several profiles names every row's profile (a number of another budget never passes
    # silently as comparable); other settings are named only where they differ inside a cell
    profiles = {x.result.cell.profile for runs in placed.values() for x in runs}
    for (row, col), runs in placed.items():
        keys = label_keys(runs)
        if len(profiles) > 1 and "profile" not in keys:
            keys = ["profile", *keys]
        if not keys:
            out[(row, col)] += runs
            continue
        split.add((row, col))
        for x in runs:
            label = variant_label(row, x.result, keys)
            out[(label, col)].append(x)
            variants[row].add(label)
            base[label] = row
    if not split:
        return placed, rows, present, base
    new_rows: list[str] = []
    new_present = {slot for slot in present if slot not in split}
    for row in rows:
        if any(r == row for r, _ in new_present):
            new_rows.append(row)
        labels = sorted(variants.get(row, ()))
        new_rows += labels
        new_present |= {slot for slot in out if slot[0] in labels}
    return dict(out), new_rows, new_present, base
