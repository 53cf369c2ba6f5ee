"""Typed registries: plugins add components by name; the harness looks them up.

A name registered twice is an error naming both origins, so a plugin can never silently replace another
(built-ins included). Unknown names get a "did you mean" suggestion.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from fpt_bench.api.errors import PluginError, UserError, did_you_mean

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    component: T
    origin: str  # the plugin (entry-point name) that registered it


@dataclass
class Registry(Generic[T]):
    """Components of one kind (``task``, ``backbone``, ...), keyed by name."""

    kind: str
    _entries: dict[str, Entry[T]] = field(default_factory=dict)
    _origin: str = "<direct>"
    _siblings: dict[str, Registry[Any]] = field(default_factory=dict)  # the host's registries, by kind

    def add(self, component: T, name: str | None = None) -> T:
        """Register ``component`` under ``name`` (default: its ``spec.name``). Returns it (usable as decorator)."""
        if name is None:
            spec = getattr(component, "spec", None)
            name = getattr(spec, "name", None)
            if not isinstance(name, str):
                raise PluginError(
                    f"plugin {self._origin!r} registered a {self.kind} without a name "
                    f"(give it a `spec` with a `name`, or pass name=...)"
                )
        if name in self._entries:
            first = self._entries[name].origin
            raise PluginError(
                f"{self.kind} {name!r} is registered twice: by plugin {first!r} and by plugin "
                f"{self._origin!r}; rename one, or block one with FPT_BENCH_DISABLE_PLUGINS={self._origin}"
            )
        self._entries[name] = Entry(name, component, self._origin)
        return component

    def get(self, name: str) -> T:
        try:
            return self._entries[name].component
        except KeyError:
            raise UserError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        known = ", ".join(sorted(self._entries)) or "(none registered)"
        return f"unknown {self.kind} {name!r}{did_you_mean(name, self._entries)} (known: {known})"

    def entry(self, name: str) -> Entry[T]:
        self.get(name)
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def __len__(self) -> int:
        return len(self._entries)

    def added_by(self, origin: str) -> list[str]:
        return sorted(e.name for e in self._entries.values() if e.origin == origin)

    def as_origin(self, origin: str) -> Registry[T]:
        """A view that records ``origin`` on what it adds (used while one plugin's hook runs)."""
        view: Registry[T] = Registry(self.kind, self._entries, origin, self._siblings)
        return view

    def sibling(self, kind: str) -> Registry[Any]:
        """The same host's registry of another kind (a live view: later plugins' additions show), so a component
        can look up components it works with (``hf_decoder`` its model families)."""
        try:
            return self._siblings[kind]
        except KeyError:
            raise PluginError(f"no {kind!r} registry (kinds: {', '.join(sorted(self._siblings))})") from None


def describe(component: Any) -> str:
    """The first line of a component's description (for listings)."""
    spec = getattr(component, "spec", component)  # suites are registered as their spec
    text = getattr(spec, "description", None) or (component.__doc__ or "")
    return text.strip().splitlines()[0] if text.strip() else ""
