# ruff: noqa: F811 - the fixtures imported from plugin_helpers are redefined as arguments
"""Qualified names: two installed distributions that register the same name both stay loaded, each component
under PLUGIN:NAME; the bare name is an error listing the choices; a built-in keeps its bare name; a suite's names
mean its own plugin's components; results record the qualified name; unshared names keep their cells' hashes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from plugin_helpers import TINY_GPT2, fake_dist, plugin_site  # noqa: F401 - fixtures

from fpt_bench.cli import main
from fpt_bench.host.manager import get_host
from fpt_bench.results.store import iter_results

TASK = """
    import torch
    from fpt_bench import Batch, Continuous, OutputSpec, SplitData, Task, TaskSpec, hookimpl

    class MajorityVote(Task):
        spec = TaskSpec(name="majority_vote", description="{what}", input=Continuous(dim=1), max_len=5,
                        output=OutputSpec(n_classes=2), generated=True)

        def sample(self, batch_size, generator, options):
            bits = torch.randint(0, 2, (batch_size, 5), generator=generator, device=generator.device)
            return Batch(bits.float()[..., None], (bits.sum(1) > 2).long())

        def load(self, split, options, data_dir):
            batch = self.sample(16, torch.Generator().manual_seed(1 if split == "val" else 2), options)
            return SplitData(batch.x, batch.y)
"""

SEQA = TASK.format(what="majority of 5 bits (seqa)") + """
    from torch import nn
    from fpt_bench import Backbone, BackboneModule, BackboneSpec, FreezePolicy, PolicySpec, Role, SuiteCell, SuiteSpec

    class GRUModule(BackboneModule):
        causal = True

        def __init__(self):
            super().__init__()
            self.hidden_size, self.n_layers, self.max_positions = 16, 1, None
            self.gru = nn.GRU(16, 16, batch_first=True)

        def forward(self, embeds, mask=None):
            return self.gru(embeds)[0]

        def parameter_roles(self):
            return {f"gru.{name}": Role.RECURRENT for name, _ in self.gru.named_parameters()}

        def parameter_layers(self):
            return {f"gru.{name}": 0 for name, _ in self.gru.named_parameters()}

    class GRU(Backbone):
        spec = BackboneSpec(name="gru", description="one GRU layer of width 16")
        smoke_args = {}

        def build(self, options, max_len):
            return GRUModule()

    POLICY = FreezePolicy()
    POLICY.spec = PolicySpec(name="io_recurrent", description="input, output and recurrent weights train",
                             trainable_roles=frozenset({Role.INPUT, Role.OUTPUT, Role.RECURRENT}))
    SUITE = SuiteSpec(name="seqtasks", description="seqa's grid",
                      cells=[SuiteCell(task="majority_vote", backbone="gru", policy="io_recurrent", label="gru")])

    @hookimpl
    def fpt_bench_register_tasks(registry):
        registry.add(MajorityVote())

    @hookimpl
    def fpt_bench_register_backbones(registry):
        registry.add(GRU())

    @hookimpl
    def fpt_bench_register_policies(registry):
        registry.add(POLICY)

    @hookimpl
    def fpt_bench_register_suites(registry):
        registry.add(SUITE, name=SUITE.name)
"""

SEQB = TASK.format(what="majority of 5 bits (seqb)") + """
    @hookimpl
    def fpt_bench_register_tasks(registry):
        registry.add(MajorityVote())
"""

CLASH = TASK.replace('"majority_vote"', '"bit_xor"').format(what="not the paper's bit_xor") + """
    @hookimpl
    def fpt_bench_register_tasks(registry):
        registry.add(MajorityVote())
"""


@pytest.fixture
def two_dists(plugin_site, tmp_path: Path) -> Path:
    """fpt-bench-seqa (task, backbone, policy, suite) and fpt-bench-seqb (a task of the same name), installed."""
    site = tmp_path / "site"
    site.mkdir()
    fake_dist(site, "fpt-bench-seqa", {"seqa": "seqa_plugin"}, {"seqa_plugin": SEQA})
    fake_dist(site, "fpt-bench-seqb", {"seqb": "seqb_plugin"}, {"seqb_plugin": SEQB}, version="0.2.0")
    plugin_site(site)
    return site


def smoke(*args: str, out: Path) -> int:
    return main(["run", *args, "--profile", "smoke", "--steps", "2", "--device", "cpu", "--no-progress",
                 "--output-dir", str(out)])


def test_a_collision_disables_neither_plugin(two_dists, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--json"]) == 0
    plugins = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert plugins["seqa"]["status"] == plugins["seqb"]["status"] == "ok"
    assert plugins["seqa"]["registered"] == {"task": ["majority_vote"], "backbone": ["gru"],
                                             "policy": ["io_recurrent"], "suite": ["seqtasks"]}
    assert plugins["seqb"]["shared"] == {"task": {"majority_vote": ["seqa:majority_vote", "seqb:majority_vote"]}}
    assert main(["plugins"]) == 0
    assert ("note: task 'majority_vote' is registered by several plugins (seqa:majority_vote, seqb:majority_vote); "
            "'majority_vote' alone is ambiguous: give the qualified name") in capsys.readouterr().out
    assert main(["ls", "tasks", "--json"]) == 0
    rows = {r["name"]: r["origin"] for r in json.loads(capsys.readouterr().out)}
    assert rows["seqa:majority_vote"] == "seqa" and rows["seqb:majority_vote"] == "seqb"
    assert "majority_vote" not in rows and rows["bit_xor"] == "bits"
    host = get_host()
    assert host.tasks.get("seqb:majority_vote").spec.description == "majority of 5 bits (seqb)"
    assert host.backbones.qualified("gru") == "seqa:gru"


def test_the_bare_name_of_a_shared_component_lists_the_choices(two_dists, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert smoke("--task", "majority_vote", "--backbone", "gru", out=tmp_path / "r") == 2
    assert capsys.readouterr().err.strip() == (
        "fpt-bench: error: task 'majority_vote' is ambiguous: plugins seqa, seqb each register one; "
        "choose seqa:majority_vote or seqb:majority_vote")
    assert smoke("--task", "seqc:majority_vote", "--backbone", "gru", out=tmp_path / "r") == 2
    assert "unknown task 'seqc:majority_vote'" in capsys.readouterr().err


def test_qualified_names_run_and_results_record_them(two_dists, tmp_path: Path) -> None:
    assert smoke("--task", "seqb:majority_vote", "--backbone", "gru", "--policy", "io_recurrent",
                 out=tmp_path / "r") == 0
    [(path, result)] = list(iter_results(tmp_path / "r"))
    assert result.status == "ok", result.error
    assert (result.cell.task, result.cell.backbone, result.cell.policy) == ("seqb:majority_vote", "gru",
                                                                            "io_recurrent")
    assert result.provenance.components == {"task": "seqb:majority_vote", "backbone": "seqa:gru",
                                            "policy": "seqa:io_recurrent"}
    assert path.parent.parent.name == "seqb-majority_vote"  # result paths stay portable


def test_a_suite_means_its_own_plugins_components(two_dists, tmp_path: Path) -> None:
    assert smoke("--suite", "seqtasks", out=tmp_path / "r") == 0
    [(_, result)] = list(iter_results(tmp_path / "r"))
    assert result.status == "ok", result.error
    assert result.cell.task == "seqa:majority_vote"
    assert result.provenance.components["task"] == "seqa:majority_vote"
    assert main(["check-plugin", "seqa", "--steps", "1"]) == 0
    assert main(["check-plugin", "seqb", "--steps", "1"]) == 0


def test_a_built_in_keeps_its_bare_name_and_its_cells_their_hashes(plugin_site, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from fpt_bench.cells.config import expand_cells
    from fpt_bench.cli.app import run_config

    argv = ["--task", "bit_xor", "--backbone-args", TINY_GPT2, "--profile", "smoke"]
    before = expand_cells(run_config(argv), get_host(), "cpu")[0].config_hash()
    site = tmp_path / "site"
    site.mkdir()
    fake_dist(site, "fpt-bench-clash", {"clash": "clash_plugin"}, {"clash_plugin": CLASH})
    plugin_site(site)
    host = get_host()
    assert host.plugins["clash"].status == "ok"
    assert host.tasks.qualified("bit_xor") == "bits:bit_xor"
    assert host.tasks.get("clash:bit_xor").spec.description == "not the paper's bit_xor"
    [cell] = expand_cells(run_config(argv), host, "cpu")
    assert (cell.task, cell.config_hash()) == ("bit_xor", before)
    [other] = expand_cells(run_config(["--task", "clash:bit_xor", *argv[2:]]), host, "cpu")
    assert other.task == "clash:bit_xor" and other.config_hash() != before
    assert main(["plugins"]) == 0
    assert ("note: task 'bit_xor' is registered by several plugins (bits:bit_xor, clash:bit_xor); 'bit_xor' alone "
            "means bits:bit_xor (a built-in keeps its name)") in capsys.readouterr().out


def test_plugins_exits_1_and_ls_names_a_plugin_that_failed(plugin_site, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FPT_BENCH_STRICT_PLUGINS", raising=False)
    site = tmp_path / "site"
    site.mkdir()
    fake_dist(site, "fpt-bench-broken", {"broken": "broken_plugin"}, {"broken_plugin": "import not_a_module\n"})
    plugin_site(site)
    assert main(["plugins"]) == 1
    assert "1 plugin(s) failed to load: broken (exit code 1; their errors are above)" in capsys.readouterr().out
    assert main(["plugins", "--json"]) == 1
    capsys.readouterr()
    assert main(["ls", "tasks"]) == 0
    tail = capsys.readouterr().out.rstrip().splitlines()[-2:]
    assert tail[0] == "not listed: 1 plugin(s) failed to load (`fpt-bench plugins` shows why):"
    assert tail[1].startswith("  broken (fpt-bench-broken): failed to import: ModuleNotFoundError: No module named "
                              "'not_a_module'")
