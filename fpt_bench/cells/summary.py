"""What ``fpt-bench run`` prints when its cells are done: a small table of the run's results (the leaderboard's
table code: mean ± std over seeds, the suite's paper numbers) beside each task's chance level, what each number
means, and which command to run next.

Chance comes from the task (``TaskSpec.chance``, else 1 / n_classes); the next commands from the suite
(``SuiteSpec.next_steps``) and two that always apply. Nothing here names a task, backbone or suite.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import IO, Any

from fpt_bench.leaderboard.collect import Stat, Table, build_table, load_results
from fpt_bench.leaderboard.render import column_metric, fmt_number, value_text

HEADERS = ("row", "task", "test accuracy %", "chance %", "above chance", "paper %")


def summary_table(results: list[Any], suite: Any | None) -> Table:
    return build_table(results, suite, title=f"{suite.name}: {suite.description}" if suite else "this run")


def _chance(host: Any, task: str) -> tuple[float | None, str]:
    if task not in host.tasks:
        return None, ""
    spec = host.tasks.get(task).spec
    level = spec.chance_level()
    return (None if level is None else 100.0 * level), spec.chance_note


def rows_of(table: Table, host: Any) -> list[tuple[str, ...]]:
    """One line per (row, column) that has results: the row, task, value, chance, the margin over chance and
    the paper's number."""
    lines = []
    for row in table.rows:
        for col in table.columns:
            stat: Stat | None = table.cells.get((row, col.name))
            if stat is None or not stat.runs:
                continue
            chance, _ = _chance(host, col.task) if col.percent else (None, "")
            margin = "" if stat.mean is None or chance is None else f"{stat.mean - chance:+.1f}"
            paper = fmt_number(stat.reference, table.metric) + stat.reference_mark if stat.reference is not None \
                else "—"
            task = col.task if col.task == col.name else f"{col.name} ({col.task})"
            # why a seed failed is printed above the summary (the run's `failed:` lines): not repeated here
            shown = value_text(dataclasses.replace(stat, errors=["reason above"]), column_metric(table, col))
            shown = shown if col.metric == "accuracy" else f"{col.metric} {shown}"
            lines.append((row, task, shown, "" if chance is None else f"{chance:g}", margin, paper))
    return lines


def _grid(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in [HEADERS, *rows]) for i in range(len(HEADERS))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*HEADERS).rstrip(), fmt.format(*("-" * w for w in widths)),
            *(fmt.format(*r).rstrip() for r in rows)]


SMOKE_NOTE = ("profile smoke: a few steps that prove the pipeline runs; these numbers mean nothing yet (the quick "
              "and paper profiles train)")


def render_summary(table: Table, host: Any, suite: Any | None, output_dir: str, scored: bool = True,
                   smoke: bool = False) -> str:
    rows = rows_of(table, host)
    if not rows:
        return ""
    out = ["", f"summary — {table.title}", *("  " + line for line in _grid(rows)), "", "what the numbers mean:",
           "  test accuracy: % of the task's test set answered right (the bit tasks: % of bits), with the parameters "
           "chosen by validation accuracy; mean ± std over seeds, n = seeds",
           "  chance: what answering without solving the task scores; above chance: test accuracy minus it"]
    if any(col.metric != "accuracy" for col in table.columns):
        out.append("  a value led by a metric's name (mse, exact_match, ...): the task's primary metric on its test "
                   "set, the parameters chosen by validation in that metric's direction")
    for task in dict.fromkeys(col.task for col in table.columns):
        chance, note = _chance(host, task)
        if chance is not None and any(r[1].startswith(task) for r in rows):
            out.append(f"    {task}: {chance:g}% ({note or 'one of the classes at random'})")
    if suite is not None and suite.reference:
        out.append(f"  paper: the paper's number for the same row and column ({suite.source})")
    else:
        out.append("  paper: — where the paper has no number for these cells")
    out += [f"  note: {note}" for note in ([SMOKE_NOTE] if smoke else []) + (suite.notes if suite is not None else [])]
    if not scored:  # every cell failed: nothing worth publishing yet
        out += ["", "next:", "  every cell failed: fix what its error says (above) and run the same command again"]
        return "\n".join(out) + "\n"
    steps = list(suite.next_steps) if suite is not None else []
    steps += [f"fpt-bench leaderboard {output_dir} --publish site/  # these results as a page (site/index.html)",
              "fpt-bench ls suites  # the paper's tables as runnable grids"]
    out += ["", "next:", *(f"  {step}" for step in _aligned(steps))]
    return "\n".join(out) + "\n"


def _aligned(commands: list[str]) -> list[str]:
    """Commands with their ``# comment`` in one column."""
    parts = [(c.split("#", 1)[0].rstrip(), c.split("#", 1)[1].strip() if "#" in c else "") for c in commands]
    width = max(len(cmd) for cmd, _ in parts)
    return [f"{cmd:<{width}}  # {note}" if note else cmd for cmd, note in parts]


def print_run_summary(outcomes: list[Any], suite_name: str | None, host: Any, output_dir: Any,
                      out: IO[str] | None = None) -> None:
    """Print the summary of a finished run: every cell's result (run now or found finished) that passes the
    result checks. Prints nothing when no cell has a result."""
    paths = [o.path for o in outcomes if o.path.exists()]
    if not paths:
        return
    results, _ = load_results(paths)
    suite = host.suites.get(suite_name) if suite_name else None
    scored = any(r.result.status != "failed" for r in results)
    smoke = {r.result.cell.profile for r in results} == {"smoke"}
    text = render_summary(summary_table(results, suite), host, suite, str(output_dir), scored, smoke)
    (out or sys.stdout).write(text)
