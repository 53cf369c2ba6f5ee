"""Plugin discovery and guarded loading.

Plugins are found through the entry-point group ``fpt_bench`` (built-ins use the same group). Each plugin is
imported and registered on its own: one that fails is recorded with its error and the others keep working.
``FPT_BENCH_STRICT_PLUGINS=1`` turns any plugin error into a fatal one; ``FPT_BENCH_DISABLE_PLUGINS=a,b``
blocks plugins by entry-point name.
"""

from __future__ import annotations

import os
import sys
import traceback
from dataclasses import dataclass, field, replace
from importlib import metadata
from typing import Any

import pluggy

from fpt_bench.api import hookspecs
from fpt_bench.api.errors import PluginError
from fpt_bench.host.registry import SEP, Registry

GROUP = "fpt_bench"
BUILTIN_DIST = "fpt-bench"
STRICT_ENV = "FPT_BENCH_STRICT_PLUGINS"
DISABLE_ENV = "FPT_BENCH_DISABLE_PLUGINS"

# registry kind -> registration hook
REGISTRATION_HOOKS = {
    "task": "fpt_bench_register_tasks",
    "backbone": "fpt_bench_register_backbones",
    "policy": "fpt_bench_register_policies",
    "suite": "fpt_bench_register_suites",
    "executor": "fpt_bench_register_executors",
    "model_family": "fpt_bench_register_model_families",
}


@dataclass
class PluginInfo:
    name: str
    distribution: str | None = None
    version: str | None = None
    status: str = "ok"  # ok | error | blocked
    error: str | None = None
    registered: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "distribution": self.distribution, "version": self.version,
            "status": self.status, "error": self.error, "registered": self.registered,
        }


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _short_error(exc: BaseException) -> str:
    if isinstance(exc, PluginError):
        return str(exc)
    frame = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" (at {frame[0].filename}:{frame[0].lineno})" if frame else ""
    return f"{type(exc).__name__}: {exc}{where}"


class Host:
    """The loaded plugins and the registries they filled."""

    def __init__(self, strict: bool | None = None, disabled: set[str] | None = None) -> None:
        self.strict = _env_flag(STRICT_ENV) if strict is None else strict
        if disabled is None:
            disabled = {p.strip() for p in os.environ.get(DISABLE_ENV, "").split(",") if p.strip()}
        self.disabled = disabled
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.registries: dict[str, Registry[Any]] = {}
        self.builtins: set[str] = set()  # entry-point names of fpt-bench's own plugins: they keep shared bare names
        for kind in REGISTRATION_HOOKS:
            self.registries[kind] = Registry(kind, _siblings=self.registries, _preferred=self.builtins)
        self.plugins: dict[str, PluginInfo] = {}

    # -------------------------------------------------------------------------------- loading
    def load_entry_points(self) -> Host:
        eps = sorted(metadata.entry_points(group=GROUP), key=_builtins_first)
        for ep in eps:
            dist = getattr(ep, "dist", None)
            info = PluginInfo(ep.name, dist.name if dist else None, dist.version if dist else None)
            if ep.name in self.plugins:
                other = self.plugins[ep.name]
                self._fail(info, PluginError(
                    f"two plugins are named {ep.name!r}: from {other.distribution} and from {info.distribution}; "
                    f"uninstall one or block it with {DISABLE_ENV}={ep.name}"))
                continue
            self.plugins[ep.name] = info
            if info.distribution == BUILTIN_DIST:
                self.builtins.add(ep.name)
            if ep.name in self.disabled:
                info.status = "blocked"
                continue
            try:
                obj = ep.load()
            except Exception as exc:  # noqa: BLE001 - any import failure is the plugin's, not ours
                self._fail(info, exc, "failed to import")
                continue
            self.register(obj, ep.name, info, bind=False)
        self.bind_suites()
        return self

    def register(self, plugin: object, name: str, info: PluginInfo | None = None, bind: bool = True) -> PluginInfo:
        """Register one plugin object (module or instance) and run its registration hooks, guarded. ``bind``:
        bind the suites' names afterwards (``bind_suites``; loading entry points binds once, at the end)."""
        info = info or self.plugins.setdefault(name, PluginInfo(name))
        try:
            self.pm.register(plugin, name=name)
            unknown = [
                impl.function.__name__
                for caller in self.pm.get_hookcallers(plugin) or []
                if caller.spec is None
                for impl in caller.get_hookimpls() if impl.plugin is plugin
            ]
            if unknown:
                raise PluginError(
                    f"plugin {name!r} implements unknown hook(s) {', '.join(sorted(unknown))}; "
                    f"check the spelling against `fpt-bench` docs/hooks.md"
                )
        except Exception as exc:  # noqa: BLE001
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            self._fail(info, exc, "could not be registered")
            return info
        for kind, hook_name in REGISTRATION_HOOKS.items():
            caller = getattr(self.pm.hook, hook_name)
            for impl in caller.get_hookimpls():
                if impl.plugin is not plugin:
                    continue
                view = self.registries[kind].as_origin(name)
                try:
                    impl.function(**{arg: view for arg in impl.argnames})
                except Exception as exc:  # noqa: BLE001
                    self._rollback(name, plugin)
                    self._fail(info, exc, f"failed in {hook_name}")
                    return info
        info.registered = {k: r.added_by(name) for k, r in self.registries.items() if r.added_by(name)}
        if bind:
            self.bind_suites()
        return info

    def bind_suites(self) -> None:
        """A suite's names mean its own plugin's components first: a bare name in a suite's cell that several
        plugins register, the suite's own plugin among them, becomes that plugin's qualified name (the others'
        bare names, and every name nobody shares, stay as written: their cells and hashes do not change)."""
        suites = self.registries["suite"]
        for key, entry in list(suites._entries.items()):
            cells = getattr(entry.component, "cells", None)
            if not cells:
                continue
            bound = [cell.model_copy(update=self._own_names(cell, entry.origin)) for cell in cells]
            if any(a != b for a, b in zip(bound, cells, strict=True)):
                suites._entries[key] = replace(entry, component=entry.component.model_copy(update={"cells": bound}))

    def _own_names(self, cell: Any, origin: str) -> dict[str, str]:
        update = {}
        for kind in ("task", "backbone", "policy"):
            name, registry = getattr(cell, kind, None), self.registries[kind]
            if isinstance(name, str) and SEP not in name and registry.shared(origin).get(name):
                update[kind] = registry.canonical(name, prefer=origin)
        return update

    def _rollback(self, name: str, plugin: object) -> None:
        for registry in self.registries.values():
            registry.remove_origin(name)
        if self.pm.is_registered(plugin):
            self.pm.unregister(plugin)

    def _fail(self, info: PluginInfo, exc: BaseException, what: str = "error") -> None:
        info.status = "error"
        info.error = _short_error(exc) if isinstance(exc, PluginError) else f"{what}: {_short_error(exc)}"
        self.plugins.setdefault(info.name, info)
        if self.strict:
            raise PluginError(
                f"plugin {info.name!r} ({info.distribution or 'not installed'}): {info.error} "
                f"[strict mode: unset {STRICT_ENV} to continue without it]"
            ) from exc

    # ----------------------------------------------------------------------------- accessors
    @property
    def tasks(self) -> Registry[Any]:
        return self.registries["task"]

    @property
    def backbones(self) -> Registry[Any]:
        return self.registries["backbone"]

    @property
    def policies(self) -> Registry[Any]:
        return self.registries["policy"]

    @property
    def suites(self) -> Registry[Any]:
        return self.registries["suite"]

    @property
    def executors(self) -> Registry[Any]:
        return self.registries["executor"]

    def errors(self) -> list[PluginInfo]:
        return [p for p in self.plugins.values() if p.status == "error"]

    def versions(self) -> dict[str, str]:
        return {p.name: p.version or "unknown" for p in self.plugins.values() if p.status == "ok"}

    def warn_errors(self) -> None:
        for p in self.errors():
            print(f"fpt-bench: warning: plugin {p.name!r} is not loaded: {p.error} "
                  f"(see `fpt-bench plugins`; {STRICT_ENV}=1 makes this fatal)", file=sys.stderr)

    def add_run_flags(self, flags: Any) -> None:
        """Let every plugin add its ``fpt-bench run`` flags (``fpt_bench_add_run_flags``); a plugin whose hook fails
        is reported by name (fatal in strict mode) and the command goes on without its flags."""
        for impl in self.pm.hook.fpt_bench_add_run_flags.get_hookimpls():
            try:
                impl.function(**{arg: flags for arg in impl.argnames})
            except Exception as exc:  # noqa: BLE001 - a plugin's mistake, reported as such
                message = f"plugin {impl.plugin_name!r} failed in fpt_bench_add_run_flags: {_short_error(exc)}"
                if self.strict:
                    raise PluginError(f"{message} [strict mode: unset {STRICT_ENV} to continue without it]") from exc
                print(f"fpt-bench: warning: {message}", file=sys.stderr)

    def emit(self, hook_name: str, **kwargs: Any) -> None:
        """Fire a run-event hook; a failing listener is reported, never fatal to the cell."""
        try:
            getattr(self.pm.hook, hook_name)(**kwargs)
        except Exception as exc:  # noqa: BLE001
            print(f"fpt-bench: warning: a {hook_name} listener failed: {_short_error(exc)}", file=sys.stderr)


def _builtins_first(ep: metadata.EntryPoint) -> tuple[int, str]:
    dist = getattr(ep, "dist", None)
    return (0 if dist is not None and dist.name == BUILTIN_DIST else 1, ep.name)


_HOST: Host | None = None


def get_host(reload: bool = False) -> Host:
    """The process-wide host, loading entry points on first use."""
    global _HOST
    if _HOST is None or reload:
        _HOST = Host().load_entry_points()
    return _HOST
