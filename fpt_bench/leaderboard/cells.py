"""``fpt-bench ls cells``: each cell of a suite (or each result found) as done / diverged / failed / missing /
unavailable."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fpt_bench.api.errors import UserError
from fpt_bench.api.suites import SuiteCell, SuiteSpec
from fpt_bench.leaderboard.collect import Loaded, identity, load_results, result_identity

STATUS_WORD = {"ok": "done", "diverged": "diverged", "failed": "failed"}


@dataclass
class CellStatus:
    status: str  # done | diverged | failed | missing | unavailable
    label: str
    seed: int | None = None
    lr: float | None = None
    profile: str = ""
    path: str = ""
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "cell": self.label, "seed": self.seed, "lr": self.lr,
                "profile": self.profile, "path": self.path, "detail": self.detail}


def unavailable_reason(cell: SuiteCell, host: Any, over: dict[str, dict[str, Any]]) -> str | None:
    """Why this suite cell cannot run here (a plugin is not installed or refuses the options, or the backbone's
    weights are not here and cannot be fetched: ``Backbone.availability``), or None."""
    try:
        host.tasks.get(cell.task).options({**cell.task_args, **over.get("task_args", {})})
        backbone = host.backbones.get(cell.backbone)
        options = backbone.options({**cell.backbone_args, **over.get("backbone_args", {})})
        host.policies.get(cell.policy).options({**cell.policy_args, **over.get("policy_args", {})})
    except UserError as exc:
        return str(exc)
    return backbone.availability(options)


def _describe(cell: SuiteCell, over: dict[str, dict[str, Any]]) -> str:
    args = {**cell.backbone_args, **over.get("backbone_args", {})}
    inner = ",".join(f"{k}={v}" for k, v in sorted(args.items()))
    backbone = f"{cell.backbone}[{inner}]" if inner else cell.backbone
    return f"{cell.row} | {cell.col}: {cell.task} / {backbone} / {cell.policy}"


def _of(x: Loaded, label: str) -> CellStatus:
    c = x.result.cell
    detail = (x.result.error or "").splitlines()[0] if x.result.status != "ok" and x.result.error else ""
    return CellStatus(STATUS_WORD[x.result.status], label, c.seed, float(c.hparams.get("lr", 0.0)), c.profile,
                      str(x.path), detail)


def suite_cell_statuses(suite: SuiteSpec, host: Any, output_dir: Path, profile: str | None = None,
                        seeds: list[int] | None = None,
                        overrides: dict[str, dict[str, Any]] | None = None) -> tuple[list[CellStatus], list[str]]:
    """Every (suite cell, seed) with its status; results found under ``output_dir`` (any learning rate)."""
    over = overrides or {}
    results, refused = load_results([output_dir]) if Path(output_dir).exists() else ([], [])
    found: dict[tuple[str, ...], list[Loaded]] = defaultdict(list)
    for x in results:
        if profile is None or x.result.cell.profile == profile:
            found[result_identity(x.result)].append(x)
    out: list[CellStatus] = []
    for cell in suite.cells:
        label = _describe(cell, over)
        reason = unavailable_reason(cell, host, over)
        if reason is not None:
            out.append(CellStatus("unavailable", label, detail=reason))
            continue
        key = identity(cell.task, {**cell.task_args, **over.get("task_args", {})}, cell.backbone,
                       {**cell.backbone_args, **over.get("backbone_args", {})}, cell.policy,
                       {**cell.policy_args, **over.get("policy_args", {})})
        matches = sorted(found.get(key, []), key=lambda x: (x.result.cell.seed, x.result.cell.hparams.get("lr", 0)))
        wanted = seeds if seeds is not None else sorted({x.result.cell.seed for x in matches}) or [None]
        for seed in wanted:
            mine = [x for x in matches if seed is None or x.result.cell.seed == seed]
            out += [_of(x, label) for x in mine] or [CellStatus("missing", label, seed, profile=profile or "")]
    return out, refused


def result_statuses(output_dir: Path) -> tuple[list[CellStatus], list[str]]:
    """Every result file under ``output_dir`` with its status (no suite)."""
    results, refused = load_results([output_dir]) if Path(output_dir).exists() else ([], [])
    out = []
    for x in sorted(results, key=lambda x: str(x.path)):
        c = x.result.cell
        inner = ",".join(f"{k}={v}" for k, v in sorted(c.backbone_args.items()))
        label = f"{c.task} / {c.backbone}{f'[{inner}]' if inner else ''} / {c.policy}"
        out.append(_of(x, label))
    return out, refused


def format_statuses(rows: list[CellStatus]) -> str:
    lines = []
    said: set[str] = set()
    for r in rows:
        seed = "" if r.seed is None else f"seed {r.seed}"
        lr = "" if r.lr is None else f"lr {r.lr:g}"
        where = f"-> {r.path}" if r.path else ""
        # a reason several cells share (a backbone's weights not installed) is said in full once
        repeated = r.status == "unavailable" and r.detail in said
        said.add(r.detail)
        detail = "(the reason above)" if repeated else f"({r.detail})" if r.detail else ""
        lines.append("  ".join(p for p in (f"{r.status:<11}", r.label, seed, lr, r.profile, where, detail) if p))
    counts: dict[str, int] = defaultdict(int)
    for r in rows:
        counts[r.status] += 1
    lines.append(", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no cells")
    return "\n".join(lines) + "\n"
