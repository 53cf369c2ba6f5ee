# ruff: noqa: F811 - the fixtures imported from plugin_helpers are redefined as arguments
"""Plugin API stability: PLUGIN_API, hooks called with keyword arguments (implementations take any subset), and
the documented deprecation path (pluggy's warn_on_impl / warn_on_impl_args) working on fpt-bench's host."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pluggy
import pytest
from plugin_helpers import TINY_GPT2, plugin_site  # noqa: F401 - fixtures

import fpt_bench
from fpt_bench.cli import main
from fpt_bench.host import manager as plugins
from fpt_bench.host.manager import Host


def test_plugin_api_version_is_public() -> None:
    # 1.1 added FPTModel, FPT_ROLES, ExecutorSpec, Flag, seeding, ...; 1.2 objectives (OutputSpec.objective),
    # qualified names, options passed to FreezePolicy.is_trainable, PolicySpec.train_layers, a policy's smoke_args
    assert fpt_bench.PLUGIN_API == "1.3"
    assert "PLUGIN_API" in fpt_bench.__all__ and re.fullmatch(r"\d+\.\d+", fpt_bench.PLUGIN_API)


class SubsetListener:
    """Hook implementations taking no argument, one, or a reordered subset."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    @fpt_bench.hookimpl
    def fpt_bench_register_tasks(self) -> None:
        self.calls.append(("register_tasks", None))

    @fpt_bench.hookimpl
    def fpt_bench_cell_started(self) -> None:
        self.calls.append(("started", None))

    @fpt_bench.hookimpl
    def fpt_bench_cell_evaluated(self, metrics: dict[str, float], step: int) -> None:
        self.calls.append(("evaluated", (step, sorted(metrics))))

    @fpt_bench.hookimpl
    def fpt_bench_cell_finished(self, result: Any) -> None:
        self.calls.append(("finished", result.status))


def test_hook_implementations_may_take_a_subset_of_the_arguments(
        plugin_site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    host = Host().load_entry_points()
    listener = SubsetListener()
    info = host.register(listener, "subset")
    assert info.status == "ok", info.error
    monkeypatch.setattr(plugins, "_HOST", host)
    assert main(["run", "--task", "bit_xor", "--backbone-args", TINY_GPT2, "--profile", "smoke", "--device", "cpu",
                 "--steps", "4", "--eval-every", "2", "--no-progress", "--output-dir", str(tmp_path)]) == 0
    assert listener.calls == [
        ("register_tasks", None), ("started", None),
        ("evaluated", (2, ["train_loss", "val_accuracy", "val_exact_match"])),  # bit_xor: 5 bits, each and all right
        ("evaluated", (4, ["train_loss", "val_accuracy", "val_exact_match"])), ("finished", "ok")]
    assert "warning" not in capsys.readouterr().err


def test_an_argument_the_hook_does_not_have_is_refused(plugin_site) -> None:
    class Wrong:
        @fpt_bench.hookimpl
        def fpt_bench_cell_finished(self, result: Any, elapsed: float) -> None: ...

    info = Host(strict=False).register(Wrong(), "wrong")
    assert info.status == "error" and "elapsed" in (info.error or "")


def test_a_failing_listener_never_fails_the_cell(plugin_site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    class Broken:
        @fpt_bench.hookimpl
        def fpt_bench_cell_started(self) -> None:
            raise RuntimeError("tracker is down")

    host = Host().load_entry_points()
    host.register(Broken(), "broken")
    monkeypatch.setattr(plugins, "_HOST", host)
    assert main(["run", "--task", "bit_xor", "--backbone-args", TINY_GPT2, "--profile", "smoke", "--device", "cpu",
                 "--steps", "2", "--no-progress", "--output-dir", str(tmp_path)]) == 0
    assert "a fpt_bench_cell_started listener failed: RuntimeError: tracker is down" in capsys.readouterr().err


hookspec = pluggy.HookspecMarker("fpt_bench")


class DeprecatedSpecs:
    """What docs/hooks.md's deprecation path adds for one minor version when a hook or an argument goes away."""

    @hookspec(warn_on_impl=DeprecationWarning("fpt_bench_old_hook is deprecated since plugin API 1.1; "
                                              "implement fpt_bench_new_hook instead"))
    def fpt_bench_old_hook(self, registry: Any) -> None: ...

    @hookspec(warn_on_impl_args={"legacy": DeprecationWarning("the `legacy` argument goes away in 1.2")})
    def fpt_bench_changed_hook(self, cell: Any, legacy: Any) -> None: ...


def test_deprecated_hooks_and_arguments_warn_on_register_but_keep_working(plugin_site) -> None:
    host = Host(strict=True)
    host.pm.add_hookspecs(DeprecatedSpecs)
    seen: list[str] = []

    class OldPlugin:
        @fpt_bench.hookimpl
        def fpt_bench_old_hook(self, registry: Any) -> None:
            seen.append("old")

        @fpt_bench.hookimpl
        def fpt_bench_changed_hook(self, legacy: Any) -> None:
            seen.append(f"legacy={legacy}")

    class NewPlugin:
        @fpt_bench.hookimpl
        def fpt_bench_changed_hook(self, cell: Any) -> None:  # does not take the deprecated argument
            seen.append("new")

    with pytest.warns(DeprecationWarning) as caught:
        host.register(OldPlugin(), "old")
    assert sorted(str(w.message) for w in caught) == [
        "fpt_bench_old_hook is deprecated since plugin API 1.1; implement fpt_bench_new_hook instead",
        "the `legacy` argument goes away in 1.2"]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        host.register(NewPlugin(), "new")  # no warning for an implementation without the argument
    host.pm.hook.fpt_bench_old_hook(registry=None)
    host.pm.hook.fpt_bench_changed_hook(cell=None, legacy=1)
    assert sorted(seen) == ["legacy=1", "new", "old"]
