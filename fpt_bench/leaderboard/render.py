"""Tables -> text: GitHub Markdown, LaTeX (booktabs), HTML, CSV, JSON; paper layout (columns = tasks) or long
layout (one row per configuration). Every string that came from a plugin or a result file is escaped for the
format it lands in."""

from __future__ import annotations

import csv
import html
import io
import json
from typing import Any

from fpt_bench.api.errors import UserError
from fpt_bench.leaderboard.collect import Column, Stat, Table

FORMATS = ("github", "latex", "html", "csv", "json")
LAYOUTS = ("paper", "long")
DAGGER = "†"
LONG_HEADERS = ["row", "column", "task", "backbone", "policy", "profile", "protocol", "version", "lr", "selected",
                "n", "mean", "std", "status", "paper", "delta", "val"]


def fmt_number(x: float | None, metric: str) -> str:
    """``metric``: test_accuracy (a percentage), steps_to_threshold, or value (a metric shown as is: an MSE)."""
    if x is None:
        return ""
    if metric == "value":
        return f"{x:.4g}"
    if metric == "steps_to_threshold":
        if abs(x) < 1000:
            return f"{x:.0f}"
        mantissa, exponent = f"{x:.1e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    return f"{x:.1f}"


def fmt_delta(x: float | None, metric: str) -> str:
    if x is None:
        return ""
    sign = "+" if x >= 0 else "−"
    return sign + fmt_number(abs(x), metric)


REASON_CHARS = 160


def failure_text(stat: Stat) -> str:
    """Why seeds failed, shortened to one line: ``failed: <reason>`` (``; `` between different reasons)."""
    reasons = "; ".join(stat.errors) or "no error recorded"
    if len(reasons) > REASON_CHARS:
        reasons = reasons[: REASON_CHARS - 1].rstrip() + "…"
    return f"failed: {reasons}"


def value_text(stat: Stat, metric: str) -> str:
    """``mean ± std (n=k)``; † when a seed diverged; ``missing`` / ``failed: <reason>`` / ``not reached``."""
    if stat.status == "missing":
        return "missing"
    if stat.mean is None:
        if stat.status == "failed":
            seeds = f" ({stat.n_failed} seed{'s' if stat.n_failed > 1 else ''})" if stat.n_failed > 1 else ""
            return failure_text(stat) + seeds
        return f"not reached (0/{stat.n_runs})" if metric == "steps_to_threshold" else "—"
    text = fmt_number(stat.mean, metric) + (DAGGER if stat.n_diverged else "")
    if stat.std is not None:
        text += f" ± {fmt_number(stat.std, metric)}"
    count = f"{stat.n}/{stat.n_runs} reached" if metric == "steps_to_threshold" else f"n={stat.n}"
    if stat.n_failed:
        count += f", {stat.n_failed} {failure_text(stat)}"
    return f"{text} ({count})"


def reference_text(stat: Stat, metric: str) -> str:
    if stat.reference is None:
        return ""
    return f"{fmt_number(stat.reference, metric)}{stat.reference_mark}"


def cell_text(stat: Stat, metric: str) -> str:
    text = value_text(stat, metric)
    text += verified_text(stat, " · ")
    if stat.reference is not None:
        text += f" · paper {reference_text(stat, metric)}"
        if stat.delta is not None:
            text += f" (Δ {fmt_delta(stat.delta, metric)})"
    if stat.lr_candidates:
        text += f" · lr {stat.lr:g}"
    return text


def verified_text(stat: Stat, before: str = "") -> str:
    """``verified 3/3`` (seeds a rerun reproduced: ``fpt-bench verify``), ``rerun differs 1/3``; empty when no
    seed was verified."""
    parts = [f"verified {stat.verified}/{stat.n_runs}" if stat.verified else "",
             f"rerun differs {stat.rerun_differs}/{stat.n_runs}" if stat.rerun_differs else ""]
    shown = ", ".join(p for p in parts if p)
    return before + shown if shown else ""


def column_header(col: Column) -> str:
    if not col.protocol:
        return f"{col.name} [no results]"
    task = "" if col.task == col.name else f"{col.task} "
    metric = "" if col.metric == "accuracy" else \
        f", {col.metric}{' %' if col.percent else ''} {'↑' if col.higher_is_better else '↓'}"
    return f"{col.name} [{task}v{col.task_version}, {col.protocol}{metric}]"


def column_metric(table: Table, col: Column | None) -> str:
    """How a column's numbers are formatted: the table's metric, or ``value`` for a metric that is not a fraction."""
    if table.metric == "steps_to_threshold" or col is None or col.percent:
        return table.metric
    return "value"


def val_shown(value: float | None, col: Column | None) -> float | None:
    """A validation value as the tables show it: % for fractions, as is otherwise."""
    return None if value is None else (value if col is not None and not col.percent else 100 * value)


# -------------------------------------------------------------------------------------------- grids
def paper_grid(table: Table) -> tuple[list[str], list[list[str]], list[list[Any]]]:
    """Headers, cell texts and sort keys of the paper layout."""
    headers = ["" if table.suite is None else "row"] + [column_header(c) for c in table.columns]
    rows, keys = [], []
    for row in table.rows:
        texts, sort = [row], [row]
        for col in table.columns:
            stat = table.cells.get((row, col.name))
            texts.append("" if stat is None else cell_text(stat, column_metric(table, col)))
            sort.append(None if stat is None else stat.mean)
        rows.append(texts)
        keys.append(sort)
    return headers, rows, keys


def long_records(table: Table) -> list[dict[str, Any]]:
    out = []
    columns = {c.name: c for c in table.columns}
    for s in table.long:
        c = s.config
        col = columns.get(s.column)
        out.append({
            "row": s.row, "column": s.column, "task": c.get("task", ""),
            "backbone": _args(c.get("backbone", ""), c.get("backbone_args", {})),
            "policy": _args(c.get("policy", ""), c.get("policy_args", {})), "profile": c.get("profile", ""),
            "protocol": c.get("protocol", ""), "version": c.get("task_version", ""), "lr": s.lr,
            "selected": bool(s.lr_candidates) and s.selected, "n": s.n, "mean": s.mean, "std": s.std,
            "status": (failure_text(s) if s.status == "failed" else s.status)
            + (f" ({s.n_diverged} diverged{DAGGER})" if s.n_diverged else "")
            + (f" ({s.n_failed} {failure_text(s)})" if s.n_failed and s.status != "failed" else "")
            + verified_text(s, "; "),
            "paper": s.reference, "delta": s.delta, "val": val_shown(s.val_mean, col),
            "format": column_metric(table, col),
        })
    return out


def long_grid(table: Table) -> tuple[list[str], list[list[str]], list[list[Any]]]:
    rows, keys = [], []
    for r in long_records(table):
        m = r["format"]
        mean = "missing" if r["status"] == "missing" else "failed" if r["status"].startswith("failed") else \
            fmt_number(r["mean"], m) + (DAGGER if DAGGER in r["status"] else "")
        texts = [r["row"], r["column"], r["task"], r["backbone"], r["policy"], r["profile"], r["protocol"],
                 r["version"], "" if r["lr"] is None else f"{r['lr']:g}", "✓" if r["selected"] else "", str(r["n"]),
                 mean, fmt_number(r["std"], m), r["status"], fmt_number(r["paper"], m), fmt_delta(r["delta"], m),
                 fmt_number(r["val"], "test_accuracy" if m != "value" else m)]
        rows.append(texts)
        keys.append([r[h] for h in LONG_HEADERS])
    return list(LONG_HEADERS), rows, keys


def _args(name: str, args: dict[str, Any]) -> str:
    inner = ",".join(f"{k}={v}" for k, v in sorted(args.items()))
    return f"{name}[{inner}]" if inner else name


# ----------------------------------------------------------------------------------------- formats
def md_escape(text: str) -> str:
    """Text for a GitHub Markdown table cell: no HTML, no column breaks."""
    return (html.escape(str(text), quote=False).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
            .replace("\r", " ")
            .replace("`", "&#96;").replace("*", "\\*").replace("_", "\\_").replace("[", "\\[").replace("]", "\\]"))


def render(table: Table, fmt: str, layout: str = "paper") -> str:
    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if layout not in LAYOUTS:
        raise UserError(f"unknown layout {layout!r}; choose one of: {', '.join(LAYOUTS)}")
    if fmt == "json":
        return json.dumps(to_dict(table, layout), indent=2, ensure_ascii=False) + "\n"
    if fmt == "csv":
        return to_csv(table, layout)
    if layout == "paper" and table.long and not table.cells:
        raise ValueError("this table was built for the long layout only")
    headers, rows, keys = paper_grid(table) if layout == "paper" else long_grid(table)
    if fmt == "html":
        return html_table(headers, rows, keys, table_id=f"{table.suite or 'results'}-{layout}")
    from tabulate import tabulate

    if fmt == "github":
        return tabulate([[md_escape(c) for c in r] for r in rows], headers=[md_escape(h) for h in headers],
                        tablefmt="github", disable_numparse=True) + "\n"
    return latex_table(headers, rows)


# symbols pdflatex cannot take as Unicode: tabulate escapes the text, then placeholders become commands
LATEX_SYMBOLS = {"±": r"$\pm$", "−": r"$-$", "Δ": r"$\Delta$", DAGGER: r"$^\dagger$", "·": r"$\cdot$",
                 "✓": r"$\checkmark$"}


def latex_table(headers: list[str], rows: list[list[str]]) -> str:
    from tabulate import tabulate

    marks = {sym: f"QZ{i}ZQ" for i, sym in enumerate(LATEX_SYMBOLS)}

    def protect(text: str) -> str:
        for sym, mark in marks.items():
            text = text.replace(sym, mark)
        return text

    out = tabulate([[protect(c) for c in r] for r in rows], headers=[protect(h) for h in headers],
                   tablefmt="latex_booktabs", disable_numparse=True)
    for sym, mark in marks.items():
        out = out.replace(mark, LATEX_SYMBOLS[sym])
    return out + "\n"


def html_table(headers: list[str], rows: list[list[str]], keys: list[list[Any]], table_id: str) -> str:
    """An HTML table whose cells carry ``data-sort`` keys (numbers sort as numbers); everything escaped."""
    e = html.escape
    out = [f'<table class="lb" id="{e(table_id)}">', "<thead><tr>"]
    out += [f'<th data-col="{i}" title="sort">{e(h)}</th>' for i, h in enumerate(headers)]
    out.append("</tr></thead><tbody>")
    for texts, sort in zip(rows, keys, strict=True):
        cells = []
        for text, key in zip(texts, sort, strict=True):
            kind = "num" if isinstance(key, int | float) and not isinstance(key, bool) else "text"
            value = repr(float(key)) if kind == "num" else ("" if key is None else str(key))
            cells.append(f'<td data-{kind}="{e(value)}">{e(text)}</td>')
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out) + "\n"


def csv_cell(value: Any) -> Any:
    """A value a spreadsheet shows as text: a string that starts like a formula (``=``, ``+``, ``-``, ``@``, a tab
    or a carriage return) gets a leading apostrophe (OWASP's advice on CSV injection); numbers stay numbers."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


class _SafeWriter:
    def __init__(self, buffer: io.StringIO) -> None:
        self._writer = csv.writer(buffer, lineterminator="\n")

    def writerow(self, row: list[Any]) -> None:
        self._writer.writerow([csv_cell(v) for v in row])


def to_csv(table: Table, layout: str) -> str:
    buffer = io.StringIO()
    writer = _SafeWriter(buffer)
    if layout == "long":
        writer.writerow(LONG_HEADERS)
        for r in long_records(table):
            writer.writerow(["" if r[h] is None else r[h] for h in LONG_HEADERS])
        return buffer.getvalue()
    fields = ("mean", "std", "n", "status", "paper")
    writer.writerow(["row"] + [f"{c.name} {f}" if f != "mean" else c.name for c in table.columns for f in fields])
    for row in table.rows:
        line: list[Any] = [row]
        for col in table.columns:
            s = table.cells.get((row, col.name))
            line += ["", "", "", "", ""] if s is None else [
                "" if s.mean is None else s.mean, "" if s.std is None else s.std, s.n, s.status,
                "" if s.reference is None else s.reference]
        writer.writerow(line)
    return buffer.getvalue()


def stat_dict(s: Stat) -> dict[str, Any]:
    return {"row": s.row, "column": s.column, "status": s.status, "mean": s.mean, "std": s.std, "n": s.n,
            "n_runs": s.n_runs, "n_failed": s.n_failed, "n_diverged": s.n_diverged, "values": s.values,
            "val_accuracy_mean": s.val_mean, "lr": s.lr, "selected": s.selected,
            "lr_candidates": {f"{k:g}": v for k, v in s.lr_candidates.items()}, "steps_to_threshold": s.steps,
            "paper": s.reference, "paper_mark": s.reference_mark, "delta": s.delta, "config": s.config,
            "errors": s.errors, "verified": s.verified, "rerun_differs": s.rerun_differs,
            "files": [str(x.path) for x in s.runs]}


def to_dict(table: Table, layout: str = "paper") -> dict[str, Any]:
    stats = list(table.cells.values()) if layout == "paper" else table.long
    return {
        "title": table.title, "suite": table.suite, "source": table.source, "layout": layout,
        "metric": table.metric, "unit": "%" if table.metric == "test_accuracy" else "steps",
        "rows": table.rows,
        "columns": [{"name": c.name, "task": c.task, "protocol": c.protocol, "task_version": c.task_version,
                     "threshold": c.threshold, "metric": c.metric, "higher_is_better": c.higher_is_better,
                     "percent": c.percent} for c in table.columns],
        "cells": [stat_dict(s) for s in stats], "notes": table.notes, "refused": table.refused,
    }
