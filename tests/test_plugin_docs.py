# ruff: noqa: F811 - the fixtures imported from plugin_helpers are redefined as arguments
"""The plugin docs are true: docs/hooks.md gives every hook with its exact signature, docs/writing-plugins.md uses
only the public API, its snippets run, and the tutorial's project (its `# file:` blocks) installs with pip,
passes check-plugin and runs a cell."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from plugin_helpers import ROOT, TINY_GPT2, pip_install, plugin_site  # noqa: F401 - fixtures

import fpt_bench
from fpt_bench.api import hookspecs
from fpt_bench.api.model import FPTModel
from fpt_bench.cli import main
from fpt_bench.conformance.contracts import check_forward, check_layers, check_padding, check_roles
from fpt_bench.results.store import iter_results

HOOKS_MD = ROOT / "docs" / "hooks.md"
GUIDE_MD = ROOT / "docs" / "writing-plugins.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def code_blocks(path: Path, language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(path.read_text()) if lang == language]


def hook_specs() -> dict[str, Any]:
    return {name: fn for name, fn in vars(hookspecs).items()
            if callable(fn) and getattr(fn, "fpt_bench_spec", None) is not None}


def documented_signatures(markdown: str) -> dict[str, inspect.Signature]:
    """``def fpt_bench_*(...)`` in the python blocks of ``markdown`` -> its signature, evaluated like the code's."""
    found: dict[str, inspect.Signature] = {}
    for lang, body in FENCE.findall(markdown):
        if lang != "python":
            continue
        for node in ast.parse(body).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("fpt_bench_"):
                namespace = dict(vars(hookspecs))
                exec(compile(ast.Module([node], []), str(HOOKS_MD), "exec"), namespace)  # noqa: S102
                assert node.name not in found, f"{node.name} is documented twice"
                found[node.name] = inspect.signature(namespace[node.name], eval_str=True)
    return found


def signature_problems(markdown: str) -> list[str]:
    specs = hook_specs()
    documented = documented_signatures(markdown)
    headings = set(re.findall(r"^#+ `?(fpt_bench_\w+)`?\s*$", markdown, re.M))
    problems = [f"{name} is not documented" for name in sorted(set(specs) - set(documented))]
    problems += [f"{name} is documented but is not a hook" for name in sorted(set(documented) - set(specs))]
    problems += [f"{name} has no heading" for name in sorted(set(specs) - headings)]
    for name in sorted(set(specs) & set(documented)):
        code = inspect.signature(specs[name], eval_str=True)
        if documented[name] != code:
            problems.append(f"{name}: documented {documented[name]}, code {code}")
    return problems


def test_hooks_md_documents_every_hook_with_its_exact_signature() -> None:
    assert len(hook_specs()) == 10
    assert signature_problems(HOOKS_MD.read_text()) == []


def test_the_signature_check_catches_a_wrong_or_missing_hook() -> None:
    text = HOOKS_MD.read_text()
    wrong = text.replace("def fpt_bench_cell_evaluated(cell: Any, step: int, metrics: dict[str, float])",
                         "def fpt_bench_cell_evaluated(cell: Any, step: float, metrics: dict[str, float])")
    assert wrong != text
    [problem] = signature_problems(wrong)
    assert problem.startswith("fpt_bench_cell_evaluated: documented (cell: Any, step: float")
    missing = text.replace("def fpt_bench_register_suites(registry: Any) -> None: ...", "")
    assert signature_problems(missing) == ["fpt_bench_register_suites is not documented"]
    extra = text + "\n```python\ndef fpt_bench_made_up(cell: Any) -> None: ...\n```\n"
    assert signature_problems(extra) == ["fpt_bench_made_up is documented but is not a hook"]


def test_hooks_md_names_the_deprecation_mechanism_it_promises() -> None:
    text = HOOKS_MD.read_text()
    assert "warn_on_impl=DeprecationWarning(" in text and "warn_on_impl_args=" in text
    assert f'(now `"{fpt_bench.PLUGIN_API}"`)' in text


def test_writing_plugins_uses_only_the_public_api() -> None:
    allowed = set(fpt_bench.__all__)
    for block in code_blocks(GUIDE_MD, "python"):
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "fpt_bench":
                if node.module == "fpt_bench.cli":  # the command as a function: fpt_bench.cli.main
                    assert [a.name for a in node.names] == ["main"]
                    continue
                assert node.module == "fpt_bench", f"internal module {node.module} in writing-plugins.md"
                assert {a.name for a in node.names} <= allowed, {a.name for a in node.names} - allowed
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("fpt_bench.") for a in node.names)
    table = set(re.findall(r"`(\w+)`", GUIDE_MD.read_text().split("## The public API", 1)[1]))
    assert allowed <= table, f"public names missing from the table: {allowed - table}"


def test_writing_plugins_snippets_run_and_the_backbone_keeps_the_contracts() -> None:
    snippets = [b for b in code_blocks(GUIDE_MD, "python") if not b.startswith("# file:")]
    assert len(snippets) == 12
    namespaces = []
    for block in snippets:
        namespace: dict[str, Any] = {"__name__": "snippet"}
        exec(compile(block, str(GUIDE_MD), "exec"), namespace)  # noqa: S102
        namespaces.append(namespace)
    reverse = next(ns for ns in namespaces if "Reverse" in ns)
    spec = reverse["Reverse"]().resolve_spec(reverse["ReverseOptions"](n_bits=5))
    assert (spec.max_len, spec.output.n_predictions, spec.output.k, spec.name) == (10, 5, 5, "bit_reverse")
    backbone = next(ns["TinyMLP"] for ns in namespaces if "TinyMLP" in ns)()
    module = backbone.build(backbone.options(backbone.smoke_args), 12)
    check_roles(module)
    check_layers(module)
    check_forward(module, 12)
    check_padding(module, 12)
    policy = next(ns["NORM_AND_LAST_ATTENTION"] for ns in namespaces if "NORM_AND_LAST_ATTENTION" in ns)
    probe = fpt_bench.TaskSpec(name="probe", description="probe", input=fpt_bench.Continuous(dim=2), max_len=4,
                               output=fpt_bench.OutputSpec(n_classes=2))
    model = FPTModel(probe, module)  # the policy speaks roles only: it works on the TinyMLP too
    policy.apply(model, policy.options({}))
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert "backbone.blocks.0.0.weight" in trained and "backbone.blocks.1.1.weight" not in trained

    def trains(policy: Any, args: dict[str, Any]) -> set[str]:
        model = FPTModel(probe, backbone.build(backbone.options(backbone.smoke_args), 12))
        policy.apply(model, policy.options(args))
        return {n.removeprefix("backbone.") for n, p in model.named_parameters() if p.requires_grad}

    io = {"input.embed.weight", "input.embed.bias", "output.weight", "output.bias"}
    block = {f"blocks.{{}}.{n}" for n in ("0.weight", "0.bias", "1.weight", "1.bias")}  # LayerNorm, Linear
    layer = {i: {n.format(i) for n in block} for i in range(2)}
    last_two = next(ns["FPT_LAST_TWO"] for ns in namespaces if "FPT_LAST_TWO" in ns)
    assert trains(last_two, {}) == io | layer[0] | layer[1]  # fpt's norms + every parameter of both layers
    first = next(ns["FirstLayers"] for ns in namespaces if "FirstLayers" in ns)()
    assert trains(first, first.smoke_args) == io | layer[0]  # is_trainable reads options.upto
    assert trains(first, {"upto": 0}) == io
    regression = next(ns["SPEC"] for ns in namespaces if "SPEC" in ns)
    assert (regression.output.width, regression.output.objective.higher_is_better) == (1, False)
    within = next(ns["WithinHalf"] for ns in namespaces if "WithinHalf" in ns)()
    assert within.metrics(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.2, 2.9, 3.4])) == {
        "within_half": pytest.approx(2 / 3)}
    with pytest.raises(ValueError, match=r"y is \(3, 1\) torch.float32; expected \(3,\) float targets"):
        within.check_labels(torch.zeros(3, 1), 3, None)
    cell = next(ns["cell"] for ns in namespaces if "cell" in ns)
    assert cell.backbone_args == {"n_layers": 2, "hidden_size": 64} and cell.row == "lstm, last gates"


def test_the_tutorial_project_installs_passes_check_plugin_and_runs(
        plugin_site, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "fpt-bench-parity"
    files = {}
    for lang in ("python", "toml"):
        for block in code_blocks(GUIDE_MD, lang):
            if block.startswith("# file: "):
                first, _, rest = block.partition("\n")
                files[first.removeprefix("# file: ").strip()] = rest
    assert sorted(files) == ["pyproject.toml", "src/fpt_bench_parity/__init__.py", "src/fpt_bench_parity/task.py",
                             "tests/test_plugin.py"]
    for relative, text in files.items():
        (project / relative).parent.mkdir(parents=True, exist_ok=True)
        (project / relative).write_text(text)
    site = tmp_path / "site"
    pip_install(project, site)
    plugin_site(site)
    assert main(["check-plugin", "parity"]) == 0, capsys.readouterr().out
    capsys.readouterr()
    assert main(["run", "--task", "parity", "--profile", "smoke", "--device", "cpu", "--steps", "2",
                 "--no-progress", "--output-dir", str(tmp_path / "results"), "--backbone-args", TINY_GPT2]) == 0
    [(_, result)] = list(iter_results(tmp_path / "results"))
    assert result.status == "ok" and result.cell.task == "parity"
    assert result.provenance.plugins["parity"] == "0.1.0"
