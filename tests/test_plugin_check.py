# ruff: noqa: F811 - the fixtures imported from plugin_helpers are redefined as arguments
"""`fpt-bench check-plugin`: passes a good plugin (the pip-installed example, a file-based task), names each broken
contract of a bad one (exit code 1), and treats an unknown name as a usage error (exit code 2)."""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path

import pytest
from plugin_helpers import example, fake_dist, plugin_site  # noqa: F401 - fixtures

from fpt_bench.cli import main
from fpt_bench.conformance.harness import CheckResult, Report

BROKEN = '''
import torch
from torch import nn

from fpt_bench import (Backbone, BackboneModule, BackboneSpec, Batch, Continuous, FreezePolicy, OutputSpec,
                       PolicySpec, Role, SplitData, Task, TaskSpec, hookimpl)


def _spec(name, generated=True):
    return TaskSpec(name=name, description="broken on purpose", input=Continuous(dim=2), max_len=4,
                    output=OutputSpec(n_classes=2), generated=generated)


class FloatLabels(Task):
    spec = _spec("float_labels")

    def sample(self, batch_size, generator, options):
        return Batch(torch.randn(batch_size, 4, 2, generator=generator), torch.zeros(batch_size))


class Unseeded(Task):
    spec = _spec("unseeded")

    def sample(self, batch_size, generator, options):  # ignores the generator
        return Batch(torch.randn(batch_size, 4, 2), torch.randint(0, 2, (batch_size,)))


class BadFiles(Task):
    spec = _spec("bad_files", generated=False)

    def prepare(self, data_dir, download, options):
        open(data_dir / "bad_files" / "train.bin", "rb")


class RolelessModule(BackboneModule):
    def __init__(self):
        super().__init__()
        self.hidden_size, self.n_layers = 8, 0
        self.mix = nn.Linear(8, 8)
        self.scale = nn.Parameter(torch.ones(8))

    def forward(self, embeds, mask=None):
        return self.mix(embeds) * self.scale

    def parameter_roles(self):
        return {f"mix.{n}": Role.FEEDFORWARD for n, _ in self.mix.named_parameters()}  # forgets `scale`


class Roleless(Backbone):
    spec = BackboneSpec(name="roleless", description="a parameter without a role")
    smoke_args = {}

    def build(self, options, max_len):
        return RolelessModule()


class TrainNothing(FreezePolicy):
    spec = PolicySpec(name="train_nothing", description="freezes everything", trainable_roles=frozenset())


@hookimpl
def fpt_bench_register_tasks(registry):
    for task in (FloatLabels(), Unseeded(), BadFiles()):
        registry.add(task)


@hookimpl
def fpt_bench_register_backbones(registry):
    registry.add(Roleless())


@hookimpl
def fpt_bench_register_policies(registry):
    registry.add(TrainNothing())
'''

TALLY = '''
import torch

from fpt_bench import Continuous, DataFile, DataMissingError, OutputSpec, SplitData, Task, TaskSpec, hookimpl


class Tally(Task):
    spec = TaskSpec(name="tally", description="parity of 6 bits, read from text files", input=Continuous(dim=1),
                    max_len=6, output=OutputSpec(n_classes=2))

    def data_files(self, options):
        return [DataFile(f"tally/{split}.txt") for split in ("train", "val", "test")]

    def prepare(self, data_dir, download, options):
        missing = [f.path for f in self.data_files(options) if not (data_dir / f.path).is_file()]
        if missing:
            raise DataMissingError(f"tally: missing {', '.join(missing)} under {data_dir}")

    def load(self, split, options, data_dir):
        rows = [line.split() for line in (data_dir / "tally" / f"{split}.txt").read_text().splitlines()]
        x = torch.tensor([[int(bit) for bit in bits] for bits, _ in rows], dtype=torch.uint8)  # stored compactly
        return SplitData(x, torch.tensor([int(label) for _, label in rows]),
                         decode=lambda batch: batch.float().unsqueeze(-1))  # (N, 6) uint8 -> (N, 6, 1) floats


@hookimpl
def fpt_bench_register_tasks(registry):
    registry.add(Tally())
'''


def _check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[tuple[str, str], tuple[str, str]]]:
    code = main(["check-plugin", *args, "--json"])
    report = json.loads(capsys.readouterr().out)
    return code, {(r["component"], r["check"]): (r["status"], r["detail"]) for r in report["results"]}


def test_example_plugin_passes_every_check(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, rows = _check(capsys, "fpt-bench-example")  # the distribution: both of its entry points
    assert code == 0
    assert [key for key, (status, _) in rows.items() if status == "fail"] == []
    skipped = {key: detail for key, (status, detail) in rows.items() if status == "skip"}
    if find_spec("timm"):  # every built-in backbone has smoke_args: the policy is applied to each of them
        assert skipped == {}
    else:
        assert skipped == {("policy fpt_last_layers", "on timm_vit"): (
            "backbone 'timm_vit' cannot be built here: needs the timm package: pip install 'fpt-bench[timm]'")}
    for check in ("sampled batches", "loaded splits", "forward", "smoke cell", "determinism per seed"):
        assert ("task sort_digits", check) in rows
    for check in ("roles", "layers", "padding mask", "determinism per seed", "smoke cell"):
        assert ("backbone torch_transformer", check) in rows
    assert rows[("backbone torch_transformer", "roles")][1] == "attention 8, feedforward 8, norm 10, position 1"
    assert rows[("policy fpt_last_layers", "on gpt2")][1] == "trains 45,858 of 1,666,658 (2.75%)"  # probe input is 3-d
    assert ("policy fpt_last_layers", "on torch_transformer") in rows
    assert rows[("plugin example_wandb", "run-event hooks")][1].startswith("called without error: cell_started")


def test_broken_plugin_fails_with_each_contract_named(plugin_site, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    fake_dist(tmp_path, "fpt-bench-broken", {"broken": "broken_plugin", "broken_import": "broken_import"},
              {"broken_plugin": BROKEN, "broken_import": "raise ImportError('needs libfoo')\n"})
    plugin_site(tmp_path)
    code, rows = _check(capsys, "fpt-bench-broken")
    assert code == 1
    failed = {key: detail for key, (status, detail) in rows.items() if status == "fail"}
    expected = {
        ("task float_labels", "sampled batches"): "y is (8,) float32; expected (8,) or (8, 1) int64 labels",
        ("task float_labels", "loaded splits"): "NotImplementedError",  # no load(): no evaluation sets
        ("task unseeded", "sampled batches"): "differs between two calls with the same seed",
        ("task unseeded", "loaded splits"): "NotImplementedError",
        ("task bad_files", "data-missing error"): "with no data, prepare() raised FileNotFoundError",
        ("backbone roleless", "roles"): "1 parameter(s) have no role, e.g. scale",
        **{("policy train_nothing", f"on {backbone}"): "nothing trains on this backbone"  # every built-in backbone
           for backbone in ("gpt2", "hf_decoder", "hf_encoder", "hf_ssm", "lstm", "minilm", "vit",
                            *(["timm_vit"] if find_spec("timm") else []))},
        ("policy train_nothing", "on roleless"): "backbone parameter 'scale' has no role",  # the plugin's own
        ("plugin broken_import", "loads and registers"): "failed to import: ImportError: needs libfoo",
    }
    assert set(failed) == set(expected)
    for key, text in expected.items():
        assert text in failed[key], (key, failed[key])
    assert rows[("backbone roleless", "forward")][0] == "pass"
    assert rows[("backbone roleless", "smoke cell")] == ("skip", "a check above failed")
    assert rows[("task bad_files", "loaded splits")][0] == "skip"


def _write_tally(root: Path) -> None:
    folder = root / "tally"
    folder.mkdir(parents=True)
    for split, n in (("train", 40), ("val", 16), ("test", 16)):
        lines = [f"{i % 64:06b} {bin(i % 64).count('1') % 2}" for i in range(n)]
        (folder / f"{split}.txt").write_text("\n".join(lines) + "\n")


def test_file_task_data_missing_then_loaded(plugin_site, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "site"
    site.mkdir()
    plugin_site(fake_dist(site, "fpt-bench-tally", {"tally": "tally_plugin"}, {"tally_plugin": TALLY}))
    code, rows = _check(capsys, "tally")
    assert code == 0
    status, detail = rows[("task tally", "data-missing error")]
    assert status == "pass" and detail.startswith("prepare(): tally: missing tally/train.txt, tally/val.txt")
    assert rows[("task tally", "loaded splits")][0] == "skip"
    assert rows[("task tally", "smoke cell")][0] == "skip"
    _write_tally(tmp_path / "data")
    code, rows = _check(capsys, "tally", "--data-dir", str(tmp_path / "data"))
    assert code == 0
    assert rows[("task tally", "loaded splits")] == (
        "pass", "train 40, val 16, test 16 examples; each matches the spec and loads the same twice")
    assert rows[("task tally", "smoke cell")][0] == "pass"
    assert rows[("task tally", "determinism per seed")][0] == "pass"


def test_unknown_plugin_is_a_usage_error(plugin_site, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-plugin", "bitz"]) == 2
    err = capsys.readouterr().err
    assert "no installed plugin is named 'bitz'; did you mean 'bits'" in err and "Traceback" not in err


def test_report_table_marks_failures_and_counts() -> None:
    report = Report("demo", [], [CheckResult("task a", "spec", "pass", "fine"),
                                 CheckResult("task a", "sampled batches", "fail", "y is wrong " * 20),
                                 CheckResult("task a", "loaded splits", "skip", "no data")])
    lines = report.table(width=80).splitlines()
    assert lines[0].split() == ["component", "check", "result", "detail"]
    assert lines[3].split()[:5] == ["task", "a", "sampled", "batches", "FAIL"] and lines[3].endswith("...")
    assert all(len(line) <= 80 for line in lines)
    assert lines[-1] == "1 passed, 1 failed, 1 skipped"
    assert not report.passed
