"""``fpt-bench check-plugin NAME``: build each component a plugin registers at smoke size and check its contracts.

NAME is an entry-point name (``fpt-bench plugins`` lists them) or a distribution name (all its entry points).
Tasks: spec, sampled batches and loaded splits against the spec, determinism per seed, augmentation, a forward
pass, data-missing errors, a smoke cell run twice. Backbones: build, a role for every parameter, layers, forward,
padding mask, determinism, a smoke cell. Policies: applied to every built-in backbone (and the plugin's own) at
smoke size, something trains, determinism, a smoke cell. Suites, executors and run-event hooks too.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from fpt_bench.conformance import components
from fpt_bench.conformance.contracts import ContractError
from fpt_bench.conformance.harness import Conformance, Report, resolve_plugins
from fpt_bench.host.manager import Host, PluginInfo

CHECKS = (("task", components.check_task), ("backbone", components.check_backbone),
          ("policy", components.check_policy), ("suite", components.check_suite),
          ("executor", components.check_executor))


def check_plugin(name: str, host: Host, **options: Any) -> Report:
    """Run every check on the installed plugin ``name`` (see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix="fpt-bench-check-") as tmp:
        conformance = Conformance(host, Path(tmp), **options)
        infos = resolve_plugins(host, name)
        report = Report(name, [i.as_dict() for i in infos])
        for info in infos:
            _check(conformance, info, report)
        return report


def _check(conf: Conformance, info: PluginInfo, report: Report) -> None:
    with report.check(f"plugin {info.name}", "loads and registers") as c:
        if info.status != "ok":
            raise ContractError(f"{info.status}: {info.error or 'blocked by FPT_BENCH_DISABLE_PLUGINS'}")
        events = conf.event_impls(info.name)
        if not info.registered and not events:
            raise ContractError("registers nothing and implements no run-event hook")
        parts = [f"{len(names)} {kind}(s)" for kind, names in info.registered.items()]
        parts += [f"{len(events)} run-event hook(s)"] if events else []
        c.detail = f"{info.distribution or 'no distribution'} {info.version or ''}: " + ", ".join(parts)
    if not c.ok:
        return
    for kind, check in CHECKS:
        registry = conf.host.registries[kind]
        for component in info.registered.get(kind, []):
            name = registry.canonical(f"{info.name}:{component}")  # qualified where another plugin shares it
            check(conf, report, name, registry.get(name))
    if conf.event_impls(info.name):
        components.check_events(conf, report, info.name)
