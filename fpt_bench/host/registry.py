"""Typed registries: plugins add components by name; the harness looks them up.

Every component has a **qualified name** ``PLUGIN:NAME`` (PLUGIN: the entry-point name of the plugin that
registered it). Two plugins may register the same bare name: both components stay, each under its qualified
name, and neither plugin is disabled. The bare name then selects

- the component, when one plugin registered it;
- the built-in's, when one of the plugins is a built-in (fpt-bench's own): installing a plugin never changes
  what an existing command, suite or result means;
- nothing otherwise: it is an error listing the qualified choices.

A plugin registering one name twice is that plugin's error. Unknown names get a "did you mean" suggestion.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from fpt_bench.api.errors import PluginError, UserError, did_you_mean

T = TypeVar("T")
SEP = ":"  # between the plugin and the component in a qualified name


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str  # the name that selects it: the bare name, or the qualified one when the bare name is shared
    component: T
    origin: str  # the plugin (entry-point name) that registered it
    bare: str = ""  # the name it was registered under

    @property
    def qualified(self) -> str:
        return f"{self.origin}{SEP}{self.bare or self.name}"


@dataclass
class Registry(Generic[T]):
    """Components of one kind (``task``, ``backbone``, ...), keyed by qualified name."""

    kind: str
    _entries: dict[str, Entry[T]] = field(default_factory=dict)  # qualified name -> entry (name = bare name)
    _origin: str = "<direct>"
    _siblings: dict[str, Registry[Any]] = field(default_factory=dict)  # the host's registries, by kind
    _preferred: set[str] = field(default_factory=set)  # origins that keep a shared bare name (the built-ins)

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
        if SEP in name:
            raise PluginError(f"plugin {self._origin!r} registered a {self.kind} named {name!r}: a name may not "
                              f"contain {SEP!r}, which separates the plugin from the name")
        qualified = f"{self._origin}{SEP}{name}"
        if qualified in self._entries:
            raise PluginError(f"plugin {self._origin!r} registered the {self.kind} {name!r} twice")
        self._entries[qualified] = Entry(name, component, self._origin, name)
        return component

    # ------------------------------------------------------------------------------ resolving
    def _candidates(self, bare: str) -> list[Entry[T]]:
        return [e for e in self._entries.values() if e.name == bare]

    def _owner(self, bare: str) -> Entry[T] | None:
        """The entry the bare name selects (None: no entry, or several and no built-in among them)."""
        found = self._candidates(bare)
        if len(found) > 1:
            found = [e for e in found if e.origin in self._preferred]
        return found[0] if len(found) == 1 else None

    def _resolve(self, name: str, prefer: str | None = None) -> Entry[T]:
        if SEP in name:
            entry = self._entries.get(name)
            if entry is None:
                raise UserError(self.unknown_message(name))
            return entry
        found = self._candidates(name)
        own = [e for e in found if e.origin == prefer]
        owner = own[0] if own else self._owner(name)
        if owner is not None:
            return owner
        if not found:
            raise UserError(self.unknown_message(name))
        choices = sorted(e.qualified for e in found)
        raise UserError(f"{self.kind} {name!r} is ambiguous: plugins {', '.join(sorted(e.origin for e in found))} "
                        f"each register one; choose {' or '.join(choices)}")

    def canonical(self, name: str, prefer: str | None = None) -> str:
        """The name a cell records for ``name`` (bare or qualified): the bare name when the bare name selects that
        component, else its qualified name. ``prefer``: an origin whose own component a shared bare name means
        (a suite's names mean its own plugin's components first)."""
        entry = self._resolve(name, prefer)
        return entry.name if self._owner(entry.name) is entry else entry.qualified

    def get(self, name: str) -> T:
        """The component ``name`` (bare or ``PLUGIN:NAME``) selects; UserError when unknown or ambiguous."""
        return self._resolve(name).component

    def qualified(self, name: str) -> str:
        """``PLUGIN:NAME`` of the component ``name`` selects."""
        return self._resolve(name).qualified

    def unknown_message(self, name: str) -> str:
        names = self.names()
        known = ", ".join(names) or "(none registered)"
        return f"unknown {self.kind} {name!r}{did_you_mean(name, names)} (known: {known})"

    def entry(self, name: str) -> Entry[T]:
        """The entry ``name`` selects, named by its canonical name."""
        entry = self._resolve(name)
        return replace(entry, name=self.canonical(entry.qualified))

    def names(self) -> list[str]:
        """The canonical name of every component (bare, or qualified where a bare name is shared)."""
        return sorted(e.name for e in self)

    def shared(self, origin: str) -> dict[str, list[str]]:
        """The bare names ``origin`` registered that other plugins registered too -> every qualified name."""
        out = {}
        for entry in self._entries.values():
            if entry.origin == origin:
                found = self._candidates(entry.name)
                if len(found) > 1:
                    out[entry.name] = sorted(e.qualified for e in found)
        return dict(sorted(out.items()))

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        return name in self._entries if SEP in name else bool(self._candidates(name))

    def __iter__(self) -> Iterator[Entry[T]]:
        entries = [e if self._owner(e.name) is e else replace(e, name=e.qualified) for e in self._entries.values()]
        return iter(sorted(entries, key=lambda e: e.name))

    def __len__(self) -> int:
        return len(self._entries)

    def added_by(self, origin: str) -> list[str]:
        """The bare names ``origin`` registered."""
        return sorted(e.name for e in self._entries.values() if e.origin == origin)

    def remove_origin(self, origin: str) -> None:
        """Forget what ``origin`` registered (a plugin whose registration failed is rolled back)."""
        for key in [k for k, e in self._entries.items() if e.origin == origin]:
            del self._entries[key]

    def as_origin(self, origin: str) -> Registry[T]:
        """A view that records ``origin`` on what it adds (used while one plugin's hook runs)."""
        return Registry(self.kind, self._entries, origin, self._siblings, self._preferred)

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
