"""The shape of the house (docs/architecture.md): packages without import cycles (function-level imports count:
they hide cycles, they do not remove them), small modules, built-ins that use only the public API, and a core
that names no component."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE, BUILTINS = ROOT / "fpt_bench", ROOT / "fpt_bench_plugins"
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(*roots: Path) -> dict[str, Path]:
    return {module_name(p): p for root in roots for p in sorted(root.rglob("*.py"))}


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules ``path`` imports at run time, wherever the import statement is (``TYPE_CHECKING`` blocks
    are not run, so they do not count). ``from package import name`` counts ``package.name`` when that is a
    module, else ``package``."""
    tree = ast.parse(path.read_text(), str(path))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            skip.update(id(n) for n in ast.walk(node))
    found: set[str] = set()
    this = module_name(path)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in known else node.module)
    return {m for m in found if m in known and m != this}


def graph() -> dict[str, set[str]]:
    known = modules(CORE, BUILTINS)
    return {name: imports(path, known) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_there_are_no_import_cycles() -> None:
    edges = graph()
    # the package __init__ of fpt_bench loads names lazily: a module importing `fpt_bench` for a name does not
    # depend on every module behind it. It imports one leaf, which sets the OpenMP wait policy before torch loads.
    assert edges["fpt_bench"] == {"fpt_bench.infra.threads"} and edges["fpt_bench.infra.threads"] == set()
    assert cycles(edges) == []


def test_the_cycle_finder_finds_a_cycle_hidden_in_a_function() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_is_over_the_size_limit() -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in modules(CORE, BUILTINS).items()}
    assert {n: s for n, s in sizes.items() if s > MAX_LINES} == {}


def test_built_in_plugins_import_only_the_public_api() -> None:
    """What a built-in needs from the core, a third party can have too: `fpt_bench` and `fpt_bench.api.*`."""
    known = modules(CORE, BUILTINS)
    internal = {}
    for name, path in modules(BUILTINS).items():
        used = {m for m in imports(path, known) if m.startswith("fpt_bench.") and not m.startswith("fpt_bench.api")}
        if used:
            internal[name] = sorted(used)
    assert internal == {}


def test_the_core_imports_no_built_in_plugin() -> None:
    """No core module imports a built-in plugin (the core finds components only through the registries)."""
    edges = graph()
    assert {m: sorted(d) for m, d in edges.items() if m.startswith("fpt_bench.") or m == "fpt_bench"
            if any(x.startswith("fpt_bench_plugins") for x in d)} == {}


# the one built-in name the core may hold: the documented default backbone of `run` and of a suite cell (the paper's)
DEFAULTS = {("fpt_bench/cells/config.py", "gpt2"), ("fpt_bench/api/suites.py", "gpt2")}


@pytest.mark.parametrize("kind", ["tasks", "backbones", "policies"])
def test_the_core_names_no_built_in_component(kind: str) -> None:
    """No string in a core module is the name of a built-in task, backbone or policy (a message that names one
    belongs to the plugin that knows it), but for the documented default."""
    from fpt_bench.host.manager import get_host

    names = {e.name for e in getattr(get_host(), kind) if type(e.component).__module__.startswith("fpt_bench_plugins")}
    assert names
    found = set()
    for path in CORE.rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in names and (rel, node.value) not in DEFAULTS:
                found.add((rel, node.value))
    assert found == set()


def test_docs_api_md_documents_every_public_module_and_name() -> None:
    """The public API is documented: every module of fpt_bench.api and every name fpt_bench exports."""
    import fpt_bench

    text = (ROOT / "docs" / "api.md").read_text()
    api_modules = sorted(p.stem for p in (CORE / "api").glob("*.py") if p.stem != "__init__")
    assert [m for m in api_modules if f"api.{m}" not in text] == []
    assert [n for n in fpt_bench.__all__ if f"`{n}`" not in text] == []
