"""Plots of leaderboard tables (matplotlib, no display needed; each written as PNG and SVG).

- ``figure1``: grouped bars per column (task), one bar per row, std as error bars, the paper's number as a
  marker (the paper's Figure 1);
- ``learning_curves``: validation accuracy against steps, mean over seeds, one panel per column;
- ``steps_plot``: steps to reach each column's validation threshold, per row (Table 6);
- ``attention_figure``: attention maps of one input, one panel per layer (the paper's Figures 4-5).
"""

from __future__ import annotations

import io
from collections import defaultdict
from pathlib import Path
from typing import Any

from fpt_bench.leaderboard.collect import Table

SVG_SALT = "fpt-bench"  # stable element ids: the same table gives the same SVG


def Patch(**kwargs: Any) -> Any:  # noqa: N802 - matplotlib's legend proxy, imported lazily
    from matplotlib.patches import Patch as _Patch

    return _Patch(**kwargs)


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def text(s: object) -> str:
    """A string from a plugin or a result, safe for matplotlib (``$`` would start mathtext)."""
    return str(s).replace("$", r"\$")


def save(fig: Any, stem: Path) -> list[Path]:
    """Write ``stem.png`` and ``stem.svg`` (the suffixes are added: ``R.attention`` gives ``R.attention.png``, it
    does not replace ``.attention``); returns both paths."""
    import matplotlib

    from fpt_bench.infra.atomic import atomic_write

    stem = Path(stem)
    paths = [stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".svg")]
    with matplotlib.rc_context({"svg.hashsalt": SVG_SALT}):
        for path, options in zip(paths, ({"format": "png", "dpi": 110, "metadata": {"Software": None}},
                                         {"format": "svg", "metadata": {"Date": None, "Creator": None}}), strict=True):
            image = io.BytesIO()
            fig.savefig(image, **options)  # drawn in memory, then written atomically (a file or its old version)
            atomic_write(path, lambda handle, image=image: handle.write(image.getvalue()))
    return paths


def figure1(table: Table, stem: Path) -> list[Path]:
    rows, cols = table.rows, table.columns
    fig = _figure(max(6.0, 1.3 * len(cols) + 2), 3.8)
    ax = fig.add_subplot()
    width = 0.8 / max(len(rows), 1)
    legend: list[Any] = []
    for i, row in enumerate(rows):
        xs, heights, errs, refs, ref_x = [], [], [], [], []
        for j, col in enumerate(cols):
            stat = table.cells.get((row, col.name))
            x = j - 0.4 + width * (i + 0.5)
            if stat is not None and stat.mean is not None:
                xs.append(x)
                heights.append(stat.mean)
                errs.append(stat.std or 0.0)
                if stat.n_diverged:
                    ax.annotate("†", (x, stat.mean), ha="center", va="bottom")
            if stat is not None and stat.reference is not None:
                refs.append(stat.reference)
                ref_x.append(x)
        ax.bar(xs, heights, width, yerr=errs, capsize=2, color=f"C{i % 10}")
        if xs:  # rows without any result stay out of the legend
            legend.append(Patch(color=f"C{i % 10}", label=text(row)))
        ax.plot(ref_x, refs, "k_", markersize=10, markeredgewidth=2)
    if any(s.reference is not None for s in table.cells.values()):
        legend += ax.plot([], [], "k_", markersize=10, markeredgewidth=2, label="paper")
    ax.set_xticks(range(len(cols)), [text(c.name) for c in cols], rotation=20, ha="right")
    ax.set_xlim(-0.6, len(cols) - 0.4)
    ax.set_ylabel("steps" if table.metric == "steps_to_threshold" else "test accuracy (%)")
    if table.metric == "steps_to_threshold":
        ax.set_yscale("log")
    ax.set_title(text(table.suite or table.title), fontsize=9)
    if legend:
        ax.legend(handles=legend, fontsize=7, loc="best")
    return save(fig, stem)


def learning_curves(table: Table, stem: Path) -> list[Path]:
    cols = [c for c in table.columns if any(s.runs for (r, name), s in table.cells.items() if name == c.name)]
    n = max(len(cols), 1)
    per_row = min(n, 4)
    fig = _figure(3.2 * per_row, 2.6 * ((n + per_row - 1) // per_row))
    for k, col in enumerate(cols):
        ax = fig.add_subplot((n + per_row - 1) // per_row, per_row, k + 1)
        for row in table.rows:
            stat = table.cells.get((row, col.name))
            if stat is None or not stat.runs:
                continue
            by_step: dict[int, list[float]] = defaultdict(list)
            for x in stat.runs:
                for p in x.result.metrics.curve:
                    if p.val_accuracy is not None:
                        by_step[p.step].append(100 * p.val_accuracy)
            steps = sorted(by_step)
            color = f"C{table.rows.index(row) % 10}"
            ax.plot(steps, [sum(by_step[s]) / len(by_step[s]) for s in steps], marker=".", label=text(row),
                    color=color)
        if col.threshold is not None:
            ax.axhline(100 * col.threshold, color="grey", linestyle=":", linewidth=1)
        ax.set_title(text(col.name), fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylabel("val accuracy (%)", fontsize=8)
        ax.tick_params(labelsize=7)
    if cols:
        fig.axes[0].legend(fontsize=6)
    return save(fig, stem)


def steps_plot(table: Table, stem: Path) -> list[Path] | None:
    """Steps to each column's threshold (None when the table has no thresholds)."""
    cols = [c for c in table.columns if c.threshold is not None]
    if not cols:
        return None
    fig = _figure(max(6.0, 1.3 * len(cols) + 2), 3.6)
    ax = fig.add_subplot()
    width = 0.8 / max(len(table.rows), 1)
    top = 1.0
    legend: list[Any] = []
    for i, row in enumerate(table.rows):
        xs, means, unreached = [], [], []
        for j, col in enumerate(cols):
            stat = table.cells.get((row, col.name))
            if stat is None:
                continue
            x = j - 0.4 + width * (i + 0.5)
            reached = [s for s in stat.steps if s is not None]
            if reached:
                xs.append(x)
                means.append(sum(reached) / len(reached))
                top = max(top, max(reached))
            elif stat.runs:
                unreached.append(x)
        ax.bar(xs, means, width, color=f"C{i % 10}")
        if xs or unreached:
            legend.append(Patch(color=f"C{i % 10}", label=text(row)))
        for x in unreached:
            ax.annotate("×", (x, 1), ha="center", va="bottom", color="red")
    ax.set_yscale("log")
    ax.set_ylim(0.8, top * 2)
    ax.set_xlim(-0.6, len(cols) - 0.4)
    ax.set_xticks(range(len(cols)), [f"{text(c.name)}\n≥ {100 * (c.threshold or 0):.0f}%" for c in cols],
                  fontsize=7)
    ax.set_ylabel("steps to threshold (× = not reached)", fontsize=8)
    ax.set_title(text(table.suite or table.title), fontsize=9)
    if legend:
        ax.legend(handles=legend, fontsize=7)
    return save(fig, stem)


def attention_figure(maps: list[Any], title: str, stem: Path) -> list[Path]:
    """``maps``: one (T, T) array per layer (query rows, key columns)."""
    n = max(len(maps), 1)
    per_row = min(n, 4)
    rows = (n + per_row - 1) // per_row
    fig = _figure(3.0 * per_row, 2.9 * rows + 0.3)
    for i, m in enumerate(maps):
        ax = fig.add_subplot(rows, per_row, i + 1)
        image = ax.imshow(m, cmap="viridis", vmin=0.0, aspect="auto", interpolation="nearest")
        ax.set_title(f"layer {i + 1}", fontsize=8)
        ax.set_xlabel("key position", fontsize=7)
        ax.set_ylabel("query position", fontsize=7)
        ax.tick_params(labelsize=6)
        fig.colorbar(image, ax=ax, shrink=0.8).ax.tick_params(labelsize=6)
    fig.suptitle(text(title), fontsize=9)
    return save(fig, stem)
