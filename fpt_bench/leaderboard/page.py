"""``fpt-bench leaderboard --publish DIR``: regenerate ``DIR/LEADERBOARD.md``, the single-file ``DIR/index.html``
(sortable tables, plots embedded), ``DIR/plots/`` and ``DIR/reference.json`` from ``DIR/results/`` and the suites
named in ``DIR/leaderboard.toml``. Every string that came from a plugin or a result is escaped."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from fpt_bench.api.errors import UserError
from fpt_bench.api.options import Strict, brief_validation_error
from fpt_bench.api.suites import SuiteSpec
from fpt_bench.infra.atomic import atomic_write
from fpt_bench.infra.safe_read import read_bytes
from fpt_bench.leaderboard.collect import Loaded, Table, build_table, identity, load_results, result_identity
from fpt_bench.leaderboard.render import html_table, long_grid, md_escape, paper_grid, render

CONFIG_NAME = "leaderboard.toml"
BUILTIN_SUITES_PLUGIN = "suites"


class PublishConfig(Strict):
    """``leaderboard.toml``: which suites the page shows, and how their cells were run (docs/leaderboard.md).
    Without the file (or without ``suites``), the page shows the suites the results belong to."""

    suites: list[str] | None = None  # None: the suites the results belong to (``suites_of``)
    profile: str | None = None
    protocol: str | None = None
    overrides: dict[str, dict[str, Any]] = {}  # task_args / backbone_args / policy_args given to `run --suite`


def load_config(folder: Path) -> PublishConfig:
    path = Path(folder) / CONFIG_NAME
    if not path.exists():
        return PublishConfig()
    try:
        config = PublishConfig(**tomllib.loads(read_bytes(path, 1 << 20, "leaderboard.toml").decode("utf-8")))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid TOML ({exc})") from None
    except RecursionError:
        raise UserError(f"{path}: not valid TOML (nested too deeply)") from None
    except ValidationError as exc:
        raise UserError(f"{path}: {brief_validation_error(exc)}") from None
    except ValueError as exc:  # an integer of more than 4,300 digits
        raise UserError(f"{path}: not valid TOML ({str(exc)[:200]})") from None
    bad = set(config.overrides) - {"task_args", "backbone_args", "policy_args"}
    if bad:
        raise UserError(f"{path}: overrides may set task_args, backbone_args, policy_args (not {', '.join(bad)})")
    return config


@dataclass
class Section:
    table: Table
    plots: dict[str, list[Path]]  # kind -> [png, svg]


def publish(folder: Path, host: Any) -> list[Path]:
    """Regenerate everything in ``folder`` from ``folder/results``; returns the files written."""
    from fpt_bench.analysis import plots

    folder = Path(folder)
    config = load_config(folder)
    results, refused = published_results(folder)
    if not results:
        raise NothingToPublish(f"no result files to publish in {folder / 'results'}"
                               + (f" ({len(refused)} refused)" if refused else "")
                               + f"; nothing was written. Give the results: fpt-bench leaderboard RESULT_DIR... "
                                 f"--publish {folder}")
    names = config.suites if config.suites is not None else suites_of(results, host, config.overrides)
    sections = []
    for name in names:
        suite = host.suites.get(name)
        table = build_table(results, suite, config.overrides, config.profile, config.protocol)
        stem = folder / "plots" / name
        made = {"figure1": plots.figure1(table, stem.with_name(f"{name}-figure1")),
                "curves": plots.learning_curves(table, stem.with_name(f"{name}-curves"))}
        steps = plots.steps_plot(table, stem.with_name(f"{name}-steps"))
        if steps:
            made["steps"] = steps
        sections.append(Section(table, made))
    if config.suites is None:
        others = outside_suites(results, [host.suites.get(n) for n in names], config.overrides)
        if others:
            title = "results outside any suite (rows: backbone / policy; columns: task)"
            sections.append(Section(build_table(others, None, profile=config.profile, protocol=config.protocol,
                                                title=title), {}))
    everything = build_table(results, None, layout="long", title="every published result")
    everything.refused = refused
    tasks = task_notes(everything, host)
    written = [p for s in sections for ps in s.plots.values() for p in ps]
    outputs = {
        folder / "reference.json": reference_json(host),
        folder / "LEADERBOARD.md": markdown(sections, everything, config, folder, len(results), tasks),
        folder / "index.html": page(sections, everything, config, folder, len(results), tasks),
    }
    for path, text in outputs.items():
        atomic_write(path, lambda handle, text=text: handle.write(text.encode("utf-8")))
        path.chmod(0o644)  # a published page is for everyone to read
        written.append(path)
    return written


class NothingToPublish(UserError):
    """No result to publish: nothing is written (never an empty page)."""

    exit_code = 1


def published_results(folder: Path) -> tuple[list[Loaded], list[str]]:
    return load_results([folder / "results"]) if (folder / "results").exists() else ([], [])


def _slots(suite: SuiteSpec, over: dict[str, dict[str, Any]]) -> set[tuple[str, ...]]:
    return {identity(c.task, {**c.task_args, **over.get("task_args", {})}, c.backbone,
                     {**c.backbone_args, **over.get("backbone_args", {})}, c.policy,
                     {**c.policy_args, **over.get("policy_args", {})}) for c in suite.cells}


def suites_of(results: list[Loaded], host: Any, over: dict[str, dict[str, Any]] | None = None) -> list[str]:
    """The suites the results belong to: the fewest suites that hold every result some suite holds (the one
    holding most first; ties by name)."""
    keys = {i: result_identity(x.result) for i, x in enumerate(results)}
    holds = {name: {i for i, k in keys.items() if k in _slots(host.suites.get(name), over or {})}
             for name in host.suites.names()}
    chosen: list[str] = []
    left = set().union(*holds.values()) if holds else set()
    while left:
        name = max(sorted(holds), key=lambda n: len(holds[n] & left))
        chosen.append(name)
        left -= holds[name]
    return chosen


def outside_suites(results: list[Loaded], suites: list[SuiteSpec], over: dict[str, dict[str, Any]]) -> list[Loaded]:
    slots = set().union(*(_slots(s, over) for s in suites)) if suites else set()
    return [x for x in results if result_identity(x.result) not in slots]


def task_notes(table: Table, host: Any) -> list[tuple[str, str]]:
    """(task, "vN: description (citation)") for every task with results, from its plugin when installed."""
    out = []
    for name in sorted({s.config.get("task", "") for s in table.long if s.runs} - {""}):
        if name in host.tasks:
            spec = host.tasks.get(name).spec
            cite = f" ({spec.citation})" if spec.citation else ""
            out.append((name, f"v{spec.version}: {spec.description}{cite}"))
        else:
            out.append((name, "its plugin is not installed here"))
    return out


def reference_json(host: Any) -> str:
    """The paper's numbers of the built-in suites, with their source, as data."""
    suites = {}
    for name in host.suites.added_by(BUILTIN_SUITES_PLUGIN):
        s = host.suites.get(name)
        suites[name] = {"description": s.description, "source": s.source, "metric": s.metric,
                        "unit": "%" if s.metric == "test_accuracy" else "steps", "reference": s.reference,
                        "reference_marks": s.reference_marks, "thresholds": s.thresholds, "notes": s.notes}
    data = {"about": "The paper's numbers as fpt-bench's suites carry them (fpt_bench_plugins/suites.py); "
                     "regenerated by `fpt-bench leaderboard --publish`.", "suites": suites}
    return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def _run_note(config: PublishConfig) -> str:
    parts = [f"profile {config.profile}" if config.profile else "",
             f"protocol {config.protocol}" if config.protocol else ""]
    for key, args in sorted(config.overrides.items()):
        parts.append(f"{key} " + ",".join(f"{k}={v}" for k, v in sorted(args.items())))
    shown = "; ".join(p for p in parts if p)
    return f"Cells as run with: {shown} (from {CONFIG_NAME})." if shown else ""


# ----------------------------------------------------------------------------------------- markdown
def markdown(sections: list[Section], everything: Table, config: PublishConfig, folder: Path, n: int,
             tasks: list[tuple[str, str]]) -> str:
    out = ["# fpt-bench leaderboard", "",
           f"Generated by `fpt-bench leaderboard --publish {folder.name}/` from {n} result file(s) in `results/`; "
           "do not edit by hand. Numbers are test accuracy in % (mean ± std over seeds, n = seeds); † = a seed "
           "diverged (the paper's mark); `paper` is the paper's number and Δ our mean minus it; `verified k/n`: k "
           "of the n seeds were rerun by `fpt-bench verify` to the same numbers. Each column header states the task "
           "version and evaluation protocol.", ""]
    if any(c.metric != "accuracy" for c in everything.columns):
        out[-2] += (" A column whose header names another metric shows that metric (↑: higher is better, ↓: lower; "
                    "% for fractions, as is otherwise), selected by validation in its direction.")
    note = _run_note(config)
    for section in sections:
        t = section.table
        out += [f"## {md_escape(t.title)}", ""]
        if t.source:
            out += [f"Paper numbers: {md_escape(t.source)}.", ""]
        if note:
            out += [md_escape(note), ""]
        if t.metric == "steps_to_threshold":
            out += ["Metric: gradient steps until validation accuracy reaches the column's threshold.", ""]
        out += [render(t, "github", "paper").rstrip(), ""]
        out += [f"- {md_escape(line)}" for line in t.notes] + ([""] if t.notes else [])
        for kind, paths in section.plots.items():
            out += [f"![{kind}](plots/{paths[1].name})", ""]
    out += ["## Every published result", "",
            "One row per configuration (learning rates listed separately; ✓ = chosen by validation accuracy).", "",
            render(everything, "github", "long").rstrip(), ""]
    if tasks:
        out += ["## Tasks", ""] + [f"- {md_escape(name)}: {md_escape(text)}" for name, text in tasks] + [""]
    if everything.refused:
        out += ["## Refused result files", ""] + [f"- {md_escape(r)}" for r in everything.refused] + [""]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------- html
SORT_SCRIPT = """
(function () {
  "use strict";
  function key(td) {
    if (td.hasAttribute("data-num")) { return [0, parseFloat(td.getAttribute("data-num"))]; }
    var t = td.getAttribute("data-text") || "";
    return [t === "" ? 2 : 1, t.toLowerCase()];
  }
  function sortTable(table, col, desc) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var ka = key(a.cells[col]), kb = key(b.cells[col]);
      if (ka[0] !== kb[0]) { return ka[0] - kb[0]; }
      var c = ka[1] < kb[1] ? -1 : (ka[1] > kb[1] ? 1 : 0);
      return desc ? -c : c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      th.setAttribute("aria-sort", i === col ? (desc ? "descending" : "ascending") : "none");
    });
    table.setAttribute("data-sorted", col + ":" + (desc ? "desc" : "asc"));
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.lb"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      th.addEventListener("click", function () {
        var desc = table.getAttribute("data-sorted") === i + ":asc";
        sortTable(table, i, desc);
      });
    });
  });
  var m = /[#&]sort=([^&]*)/.exec(window.location.hash);
  if (m) {
    var parts = decodeURIComponent(m[1]).split(":");
    var table = document.getElementById(parts[0]);
    if (table && table.tHead) { sortTable(table, parseInt(parts[1], 10) || 0, parts[2] === "desc"); }
  }
})();
"""

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 80em; padding: 0 1em; color: #222; }
table.lb { border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }
table.lb th, table.lb td { border-bottom: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; }
table.lb th { cursor: pointer; background: #f4f4f4; user-select: none; }
table.lb th[aria-sort="ascending"]::after { content: " \\25B2"; }
table.lb th[aria-sort="descending"]::after { content: " \\25BC"; }
figure img { max-width: 100%; }
.note { color: #555; font-size: 0.9em; }
"""


def script_hash() -> str:
    return base64.b64encode(hashlib.sha256(SORT_SCRIPT.encode("utf-8")).digest()).decode()


def page(sections: list[Section], everything: Table, config: PublishConfig, folder: Path, n: int,
         tasks: list[tuple[str, str]]) -> str:
    e = html.escape
    csp = (f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{script_hash()}'; "
           "base-uri 'none'; form-action 'none'")
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f'<meta http-equiv="Content-Security-Policy" content="{csp}">',  # internal: no quotes in it
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           "<title>fpt-bench leaderboard</title>", f"<style>{STYLE}</style></head><body>",
           "<h1>fpt-bench leaderboard</h1>",
           f'<p class="note">Generated by <code>fpt-bench leaderboard --publish {e(folder.name)}/</code> from {n} '
           "result file(s). Test accuracy in % (mean ± std over seeds, n = seeds); † = a seed diverged; "
           "<em>paper</em> = the paper's number, Δ = our mean minus it; <em>verified k/n</em> = k of the n seeds "
           "were rerun by <code>fpt-bench verify</code> to the same numbers. Click a column header to sort.</p>"]
    note = _run_note(config)
    for section in sections:
        t = section.table
        out.append(f"<section><h2>{e(t.title)}</h2>")
        if t.source:
            out.append(f'<p class="note">Paper numbers: {e(t.source)}.</p>')
        if note:
            out.append(f'<p class="note">{e(note)}</p>')
        headers, rows, keys = paper_grid(t)
        out.append(html_table(headers, rows, keys, table_id=f"{t.suite}-paper"))
        out += [f'<p class="note">{e(line)}</p>' for line in t.notes]
        for kind, paths in section.plots.items():
            data = base64.b64encode(paths[0].read_bytes()).decode()
            out.append(f'<figure><img alt="{e(kind)} of {e(t.suite or "")}" src="data:image/png;base64,{data}">'
                       f"<figcaption>{e(kind)} ({e(paths[1].name)})</figcaption></figure>")
        out.append("</section>")
    headers, rows, keys = long_grid(everything)
    out += ["<section><h2>Every published result</h2>",
            '<p class="note">One row per configuration; ✓ = learning rate chosen by validation accuracy.</p>',
            html_table(headers, rows, keys, table_id="all-long"), "</section>"]
    if tasks:
        out.append('<section><h2>Tasks</h2><dl id="tasks">')
        out += [f"<dt>{e(name)}</dt><dd>{e(text)}</dd>" for name, text in tasks]
        out.append("</dl></section>")
    if everything.refused:
        out.append("<section><h2>Refused result files</h2><ul>")
        out += [f"<li>{e(r)}</li>" for r in everything.refused]
        out.append("</ul></section>")
    out.append(f"<script>{SORT_SCRIPT}</script></body></html>")
    return "\n".join(out) + "\n"
