# ruff: noqa: F811 - the fixtures imported from plugin_helpers are redefined as arguments
"""The plugin contract at run time: a task, backbone or policy that breaks it fails its cell before training with
``error_kind: plugin`` and one message naming the plugin, its distribution, the component and the broken rule,
in check-plugin's words; the sweep goes on. Components that keep it train exactly as before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from plugin_helpers import TINY_GPT2, fake_dist, plugin_site  # noqa: F401 - fixtures

from fpt_bench.cli import main
from fpt_bench.results.store import iter_results

BROKEN = """
    import torch
    from torch import nn
    from fpt_bench import (Backbone, BackboneModule, BackboneSpec, Batch, Continuous, FreezePolicy, OutputSpec,
                           PolicySpec, Role, SplitData, Task, TaskSpec, hookimpl)

    class Bits(Task):
        width, length = 8, 8
        spec = TaskSpec(name="bits8", description="8 bits in, 8 labels out", input=Continuous(dim=1),
                        max_len=8, output=OutputSpec(n_classes=2, n_predictions=8, readout="last_k", k=8),
                        generated=True)

        def sample(self, batch_size, generator, options):
            x = torch.randint(0, 2, (batch_size, self.length), generator=generator, device=generator.device)
            y = torch.randint(0, 2, (batch_size, self.width), generator=generator, device=generator.device)
            return Batch(x.float()[..., None], y)

        def load(self, split, options, data_dir):
            batch = self.sample(16, torch.Generator().manual_seed(3), options)
            return SplitData(batch.x, batch.y)

    class WideLabels(Bits):
        width = 32
        spec = Bits.spec.model_copy(update={"name": "wide_labels", "description": "y is 32 wide, the spec says 8"})

    class TooLong(Bits):
        length = 20
        spec = Bits.spec.model_copy(update={"name": "too_long", "description": "20 tokens, max_len 16",
                                            "max_len": 16})

    class NarrowModule(BackboneModule):
        def __init__(self):
            super().__init__()
            self.hidden_size, self.n_layers = 64, 1
            self.proj = nn.Linear(64, 32)

        def forward(self, embeds, mask=None):
            return self.proj(embeds)  # width 32, though hidden_size says 64

        def parameter_roles(self):
            return {"proj.weight": Role.FEEDFORWARD, "proj.bias": Role.FEEDFORWARD}

        def parameter_layers(self):
            return {"proj.weight": 0, "proj.bias": 0}

    class Narrow(Backbone):
        spec = BackboneSpec(name="narrow", description="declares 64, returns 32")
        smoke_args = {}

        def build(self, options, max_len):
            return NarrowModule()

    FREEZE_ALL = FreezePolicy()
    FREEZE_ALL.spec = PolicySpec(name="freeze_all", description="nothing trains", trainable_roles=frozenset())

    @hookimpl
    def fpt_bench_register_tasks(registry):
        registry.add(WideLabels())
        registry.add(TooLong())
        registry.add(Bits())

    @hookimpl
    def fpt_bench_register_backbones(registry):
        registry.add(Narrow())

    @hookimpl
    def fpt_bench_register_policies(registry):
        registry.add(FREEZE_ALL)
"""

TAIL = " (`fpt-bench check-plugin broken` checks the same rules)"
CASES = {
    "label width": (["--task", "wide_labels"], "task", (
        "task 'wide_labels' of plugin 'broken' (fpt-bench-broken 0.3.0) breaks the plugin contract: sample(), the "
        "first training batch: y is (4, 32) int64; expected (4, 8) int64 labels")),
    "too long": (["--task", "too_long"], "task", (
        "task 'too_long' of plugin 'broken' (fpt-bench-broken 0.3.0) breaks the plugin contract: sample(), the "
        "first training batch: sequences are 20 long, spec.max_len is 16")),
    "backbone width": (["--task", "bit_xor", "--backbone", "narrow"], "backbone", (
        "backbone 'narrow' of plugin 'broken' (fpt-bench-broken 0.3.0) breaks the plugin contract: forward "
        "returned (4, 10, 32) float32; expected (4, 10, 64) hidden states (B, T, hidden_size=64)")),  # step 1
    "backbone width, compiled": (["--task", "bit_xor", "--backbone", "narrow", "--compile"], "backbone", (
        "backbone 'narrow' of plugin 'broken' (fpt-bench-broken 0.3.0) breaks the plugin contract: forward "
        "returned (1, 10, 32) float32; expected (1, 10, 64) hidden states (B, T, hidden_size=64)")),  # a probe
    "freeze-all policy": (["--task", "bit_xor", "--policy", "freeze_all"], "policy", (
        "policy 'freeze_all' of plugin 'broken' (fpt-bench-broken 0.3.0) breaks the plugin contract: nothing "
        "trains on this backbone (0 of 1,666,594 parameters): a policy must leave some parameter trainable (at least "
        "the output layer)")),
}


@pytest.fixture
def broken(plugin_site, tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    fake_dist(site, "fpt-bench-broken", {"broken": "broken_plugin"}, {"broken_plugin": BROKEN}, version="0.3.0")
    plugin_site(site)


def run(out: Path, *args: str) -> int:
    return main(["run", *args, "--backbone-args", TINY_GPT2, "--profile", "smoke", "--steps", "2", "--device", "cpu",
                 "--no-progress", "--output-dir", str(out)])


@pytest.mark.parametrize("case", list(CASES))
def test_a_broken_component_fails_its_cell_naming_plugin_and_rule(case: str, broken, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    args, kind, message = CASES[case]
    if kind == "backbone":  # the narrow backbone takes no options
        assert main(["run", *args, "--profile", "smoke", "--steps", "2", "--device", "cpu", "--no-progress",
                     "--output-dir", str(tmp_path)]) == 2
    else:
        assert run(tmp_path, *args) == 2  # the plugin's error, like a user's: exit code 2, not 1 (a bug)
    [(_, result)] = list(iter_results(tmp_path))
    assert (result.status, result.error_kind) == ("failed", "plugin")
    assert result.error == message + TAIL
    assert result.timing.steps == 0  # nothing trained
    err = capsys.readouterr().err
    assert "Traceback" not in err and message in err


def test_the_sweep_goes_on_and_good_components_of_the_plugin_train(broken, tmp_path: Path) -> None:
    assert run(tmp_path, "--task", "wide_labels", "--task", "bits8", "--task", "bit_xor") == 2
    results = {r.cell.task: r for _, r in iter_results(tmp_path)}
    assert results["wide_labels"].error_kind == "plugin"
    assert results["bits8"].status == results["bit_xor"].status == "ok"


def test_check_plugin_names_the_same_rules(broken, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-plugin", "broken", "--json", "--steps", "1"]) == 1
    report = json.loads(capsys.readouterr().out)
    failed = {(r["component"], r["check"]): r["detail"] for r in report["results"] if r["status"] == "fail"}
    assert failed[("task wide_labels", "sampled batches")] == (
        "sample(): y is (8, 32) int64; expected (8, 8) int64 labels")
    assert failed[("task too_long", "sampled batches")] == "sample(): sequences are 20 long, spec.max_len is 16"
    assert failed[("backbone narrow", "forward")] == (
        "forward returned (2, 12, 32) float32; expected (2, 12, 64) hidden states (B, T, hidden_size=64)")
    assert failed[("policy freeze_all", "on gpt2")].startswith("nothing trains on this backbone (0 of ")
    assert not any(component == "task bits8" for component, _ in failed)
