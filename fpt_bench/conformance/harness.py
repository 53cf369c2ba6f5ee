"""What the checks of ``fpt-bench check-plugin`` share: the report, the skip and failure signals, the probe task,
and ``Conformance``, which builds tiny components and runs smoke cells for them (``fpt_bench.conformance.check``)."""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from packaging.utils import canonicalize_name

from fpt_bench.api.cell import CellConfig
from fpt_bench.api.errors import UserError, did_you_mean
from fpt_bench.api.hparams import HParamOverrides
from fpt_bench.api.specs import Continuous, OutputSpec, TaskSpec
from fpt_bench.cells.config import RunConfig, expand_cells
from fpt_bench.cells.context import RunContext
from fpt_bench.cells.runner import run_cell
from fpt_bench.conformance.contracts import ContractError
from fpt_bench.host.manager import BUILTIN_DIST, Host, PluginInfo
from fpt_bench.results.schema import CellResult
from fpt_bench.results.store import read_result, result_path

EVENT_HOOKS = ("fpt_bench_cell_started", "fpt_bench_cell_evaluated", "fpt_bench_cell_finished")
PROBE_LEN = 12  # sequence length of backbone probes
PROBE_TASK = TaskSpec(name="conformance_probe", description="a probe for policy checks", input=Continuous(dim=3),
                      max_len=PROBE_LEN, output=OutputSpec(n_classes=2))


class Skip(Exception):
    """A check that cannot run here (the message says why)."""


@dataclass
class CheckResult:
    component: str
    check: str
    status: Literal["pass", "fail", "skip"] = "pass"
    detail: str = ""


class _Check:
    """``with report.check(component, name) as c:`` records pass, or fail/skip from the exception raised."""

    def __init__(self, results: list[CheckResult], component: str, name: str) -> None:
        self.result = CheckResult(component, name)
        results.append(self.result)

    @property
    def ok(self) -> bool:
        return self.result.status == "pass"

    @property
    def detail(self) -> str:
        return self.result.detail

    @detail.setter
    def detail(self, text: str) -> None:
        self.result.detail = text

    def __enter__(self) -> _Check:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> bool:
        if exc is None:
            return False
        if not isinstance(exc, Exception):
            return False  # KeyboardInterrupt and friends go through
        if isinstance(exc, Skip):
            self.result.status, self.result.detail = "skip", str(exc)
        else:
            self.result.status = "fail"
            text = str(exc) if isinstance(exc, ContractError | UserError) else f"{type(exc).__name__}: {exc}"
            text = text if str(exc).strip() else type(exc).__name__
            self.result.detail = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        return True


@dataclass
class Report:
    name: str
    plugins: list[dict[str, Any]]
    results: list[CheckResult] = field(default_factory=list)

    def check(self, component: str, name: str) -> _Check:
        return _Check(self.results, component, name)

    def skip(self, component: str, name: str, why: str) -> None:
        self.results.append(CheckResult(component, name, "skip", why))

    def failed_in(self, component: str) -> bool:
        return any(r.component == component and r.status == "fail" for r in self.results)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def passed(self) -> bool:
        return self.count("fail") == 0

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "plugins": self.plugins, "passed": self.passed,
                "results": [asdict(r) for r in self.results]}

    def table(self, width: int | None = None) -> str:
        from tabulate import tabulate

        width = width or shutil.get_terminal_size((120, 24)).columns
        rows = [(r.component, r.check, r.status.upper() if r.status == "fail" else r.status, r.detail)
                for r in self.results]
        # tabulate's columns are as wide as their longest cell and at least their header + 2
        widths = [max([len(h) + 2, *(len(str(row[i])) for row in rows)])
                  for i, h in enumerate(("component", "check", "result"))]
        room = max(20, width - sum(widths) - 6)
        rows = [(*row[:3], row[3] if len(row[3]) <= room else row[3][: room - 3] + "...") for row in rows]
        table = tabulate(rows, headers=("component", "check", "result", "detail"), tablefmt="simple")
        totals = f"{self.count('pass')} passed, {self.count('fail')} failed, {self.count('skip')} skipped"
        return "\n".join(line.rstrip() for line in table.splitlines()) + f"\n\n{totals}"


def resolve_plugins(host: Host, name: str) -> list[PluginInfo]:
    """The plugins NAME means: an entry-point name, else every entry point of a distribution."""
    key = canonicalize_name(name)
    found = [p for p in host.plugins.values() if canonicalize_name(p.name) == key]
    found = found or [p for p in host.plugins.values() if p.distribution and canonicalize_name(p.distribution) == key]
    if not found:
        known = sorted({p.name for p in host.plugins.values()} | {p.distribution for p in host.plugins.values()
                                                                   if p.distribution})
        raise UserError(f"no installed plugin is named {name!r}{did_you_mean(name, known)} "
                        f"(installed: {', '.join(known)}). "
                        "Install it (pip install ...) and check `fpt-bench plugins`")
    return found


class Conformance:
    def __init__(self, host: Host, workdir: Path, *, device: str = "cpu", data_dir: Path | None = None,
                 steps: int = 2, task_args: dict[str, Any] | None = None,
                 backbone_args: dict[str, Any] | None = None, policy_args: dict[str, Any] | None = None) -> None:
        self.host, self.workdir, self.device, self.steps = host, workdir, device, steps
        self.data_dir = data_dir
        self.args = {"task": task_args or {}, "backbone": backbone_args, "policy": policy_args}
        self._cells = 0
        self.last_cell: tuple[CellConfig, Path, CellResult] | None = None

    # ------------------------------------------------------------------------------ defaults
    def _builtin(self, kind: str, name: str) -> bool:
        origin = self.host.registries[kind].entry(name).origin
        info = self.host.plugins.get(origin)
        return info is not None and info.distribution == BUILTIN_DIST

    def backbone_args(self, name: str, own: bool) -> dict[str, Any] | None:
        if own and self.args["backbone"] is not None:
            return self.args["backbone"]
        return getattr(self.host.backbones.get(name), "smoke_args", None)

    def policy_args(self, name: str, own: bool) -> dict[str, Any]:
        """--policy-args for the plugin's own policies, else the policy's ``smoke_args`` (default: none)."""
        if own and self.args["policy"] is not None:
            return self.args["policy"]
        return dict(getattr(self.host.policies.get(name), "smoke_args", None) or {})

    def unavailable(self, name: str, args: dict[str, Any]) -> str | None:
        """Why backbone ``name`` cannot be built here with ``args`` (its files are not here), else None."""
        plugin = self.host.backbones.get(name)
        return plugin.availability(plugin.options(args))

    def default_backbone(self) -> str | None:
        """The run default if it has a smoke size, else the first built-in backbone that has one."""
        default = RunConfig.model_fields["backbone"].default
        names = [default] + [n for n in self.host.backbones.names() if n != default]
        for name in names:
            if name in self.host.backbones and self.backbone_args(name, False) is not None:
                return name
        return None

    def default_task(self) -> str | None:
        """The shortest built-in generated task (no data files needed)."""
        tasks = [(e.component.spec.max_len, e.name) for e in self.host.tasks
                 if e.component.spec.generated and self._builtin("task", e.name)]
        return min(tasks)[1] if tasks else None

    def default_policy(self) -> str | None:
        default = RunConfig.model_fields["policy"].default
        return default if default in self.host.policies else next(iter(self.host.policies.names()), None)

    # ------------------------------------------------------------------------------- helpers
    def smoke_cell(self, task: str, backbone: str, policy: str, *, task_args: dict[str, Any] | None = None,
                   backbone_args: dict[str, Any] | None = None, policy_args: dict[str, Any] | None = None,
                   seed: int = 0) -> tuple[CellConfig, Path, CellResult]:
        config = RunConfig(
            tasks=[task], task_args=task_args or {}, backbone=backbone, backbone_args=backbone_args or {},
            policy=policy, policy_args=policy_args or {}, seeds=[seed], profile="smoke",
            hparams=HParamOverrides(steps=self.steps, eval_every=self.steps, checkpoint_every=0),
        )
        [cell] = expand_cells(config, self.host, self.device)
        self._cells += 1
        out = self.workdir / f"cells-{self._cells}"
        path = result_path(out, cell)
        ctx = RunContext(plugin_host=self.host, device=self.device, output_dir=out, progress=False,
                         data_dir=self.data_dir or self.workdir / "no-data")
        result = run_cell(cell, path, ctx)
        read_result(path)  # the file validates against the result schema
        if result.status != "ok":
            first = (result.error or "").strip().splitlines()[0] if result.error else ""
            raise ContractError(f"the cell {result.status}: {first}")
        self.last_cell = (cell, path, result)
        return cell, path, result

    def tiny_backbone(self, name: str, own: bool, max_len: int) -> Any:
        args = self.backbone_args(name, own)
        if args is None:
            raise Skip(f"backbone {name!r} has no smoke_args (its tiny size is unknown)")
        reason = self.unavailable(name, args)
        if reason is not None:
            raise Skip(f"backbone {name!r} cannot be built here: {reason}")
        plugin = self.host.backbones.get(name)
        return plugin.build(plugin.options(args), max_len)

    def event_impls(self, plugin: str) -> list[Any]:
        return [impl for hook in EVENT_HOOKS for impl in getattr(self.host.pm.hook, hook).get_hookimpls()
                if impl.plugin_name == plugin]
