"""The built-in suites (the paper's tables as data), their expansion into cells, learning-rate sweeps and the
reporting of cells whose plugin is not installed."""

from __future__ import annotations

from pathlib import Path

import pytest
from lb_support import TINY, make_result, test_host, write
from pydantic import ValidationError

from fpt_bench import SuiteCell, SuiteSpec, UserError
from fpt_bench.cells.config import build_run_config, expand_cells
from fpt_bench.cli import main
from fpt_bench.host import manager as plugin_host

PAPER_SUITES = {"table1", "modality", "convergence", "scaling", "stats_init", "output_only", "depth",
                "finetune_more", "ablation", "ablation_random", "frozen_norm", "other_lms", "offline", "offline_gpt2"}


# A suite with cells that can run and cells whose task or backbone is not installed (whatever else is).
RANDOM = {"weights": "random"}
MIXED = SuiteSpec(name="mixed", description="runnable and unavailable cells", cells=[
    SuiteCell(task="bit_memory", backbone_args=RANDOM, label="GPT-2, random init"),
    SuiteCell(task="bit_xor", backbone_args=RANDOM, label="GPT-2, random init"),
    SuiteCell(task="no_such_task", backbone_args=RANDOM, label="GPT-2, random init"),
    SuiteCell(task="bit_memory", backbone="no_such_backbone", label="Other"),
    SuiteCell(task="bit_xor", backbone="no_such_backbone", label="Other"),
])


@pytest.fixture(scope="module")
def host():  # type: ignore[no-untyped-def]
    h = test_host()
    h.suites.as_origin("suite-tests").add(MIXED, name="mixed")
    return h


def test_every_paper_table_is_a_suite_with_its_numbers_and_source(host) -> None:  # type: ignore[no-untyped-def]
    assert PAPER_SUITES <= set(host.suites.names())
    for name in PAPER_SUITES:
        suite = host.suites.get(name)
        assert suite.source.startswith("Lu et al. 2021") and suite.cells
        if name != "offline":
            assert suite.reference, name
    t1 = host.suites.get("table1")
    assert t1.reference["FPT"]["cifar10"] == 72.1 and t1.reference["Full LSTM"]["bit_xor"] == 50.1
    fpt_cifar = next(c for c in t1.cells if c.row == "FPT" and c.task == "cifar10")
    assert fpt_cifar.backbone_args == {"size": "large"}  # the paper's 72.1 is GPT-2 large
    assert host.suites.get("finetune_more").reference_marks["+ attention"] == {"mnist": "†", "cifar10": "†"}
    conv = host.suites.get("convergence")
    assert conv.metric == "steps_to_threshold" and conv.reference["Random"]["bit_xor"] == 2e4
    assert set(conv.thresholds) == set(conv.columns())
    scaling = host.suites.get("scaling")
    assert scaling.columns() == ["12 layers", "24 layers", "36 layers"]
    assert scaling.reference["Random"]["36 layers"] == 65.7
    depth = host.suites.get("depth")
    assert depth.reference["Output only, random"] == {"12 layers": 17, "24 layers": 17}
    ablation = host.suites.get("ablation_random")
    assert ablation.reference["+ LayerNorm"] == {"bit_xor": 100, "listops": 35, "mnist": 83, "cifar10": 46,
                                                 "cifar10_lra": 34}


def test_offline_suite_is_minilm_pretrained_vs_random_and_fits_a_cpu(host) -> None:  # type: ignore[no-untyped-def]
    from fpt_bench.cells.profiles import resolve_hparams

    offline = host.suites.get("offline")
    assert offline.rows() == ["MiniLM, pretrained", "MiniLM, random init"]
    assert offline.columns() == ["bit_memory", "bit_xor", "listops", "fashion_mnist"]
    args = {(c.task, tuple(sorted(c.backbone_args.items()))) for c in offline.cells if c.backbone == "hf_encoder"}
    assert len(args) == len(offline.cells) == 8
    assert ("bit_xor", (("preset", "minilm"),)) in args
    assert ("bit_xor", (("preset", "minilm"), ("weights", "random"))) in args
    assert ("listops", (("dropout", 0.0), ("preset", "minilm"), ("weights", "random"))) in args
    assert not offline.reference  # the paper has no MiniLM numbers
    landmark = host.suites.get("offline_gpt2")
    assert landmark.reference == {"GPT-2, random init": {"bit_memory": 75.8, "bit_xor": 100, "listops": 34.3}}
    listops = resolve_hparams(host.tasks.get("listops").spec, "quick")
    assert (listops.steps, listops.batch_size, listops.val_examples, listops.test_examples,
            listops.eval_batch_size) == (100, 4, 100, 500, 32)
    assert resolve_hparams(host.tasks.get("bit_xor").spec, "quick").test_examples is None  # whole test split


def test_reference_must_name_real_rows_and_columns() -> None:
    cells = [SuiteCell(task="bit_xor", label="FPT")]
    with pytest.raises(ValidationError, match="names row 'FTP'"):
        SuiteSpec(name="x", description="x", cells=cells, reference={"FTP": {"bit_xor": 1.0}})
    with pytest.raises(ValidationError, match="names column 'bit_xr'"):
        SuiteSpec(name="x", description="x", cells=cells, reference={"FPT": {"bit_xr": 1.0}})
    with pytest.raises(ValidationError, match="needs thresholds"):
        SuiteSpec(name="x", description="x", cells=cells, metric="steps_to_threshold")
    old = SuiteSpec(name="x", description="x", cells=[SuiteCell(task="bit_xor")])  # the old shape still works
    assert old.rows() == ["gpt2 / fpt"] and old.columns() == ["bit_xor"]


def test_suite_expands_with_overrides_seeds_and_an_lr_sweep(host) -> None:  # type: ignore[no-untyped-def]
    config = build_run_config({}, {"suite": "mixed", "seeds": [0, 1], "profile": "smoke",
                                   "backbone_args": {"n_layers": 2}, "sweep": {"lr": [1e-4, 3e-4, 1e-3]}})
    assert config.sweep == {"lr": [1e-4, 3e-4, 1e-3]} and config.hparams.lr is None
    unavailable: list[str] = []
    cells = expand_cells(config, host, "cpu", unavailable)
    assert len(cells) == 2 * 2 * 3  # bit_memory and bit_xor x 2 seeds x 3 learning rates
    assert sorted({c.hparams.lr for c in cells}) == [1e-4, 3e-4, 1e-3]
    assert all(c.backbone_args == {"weights": "random", "n_layers": 2} for c in cells)
    assert len({c.config_hash() for c in cells}) == 12
    assert "GPT-2, random init / no_such_task: unavailable: unknown task 'no_such_task'" in unavailable[0]
    assert "Other / bit_memory: unavailable: unknown backbone 'no_such_backbone'" in unavailable[1]
    assert unavailable[2] == "Other / bit_xor: unavailable: (the reason above)" and len(unavailable) == 3


def test_a_suite_cell_named_twice_runs_once_and_its_hparams_apply(host) -> None:  # type: ignore[no-untyped-def]
    from fpt_bench.api.hparams import HParamOverrides

    twice = SuiteSpec(name="twice", description="x", cells=[
        SuiteCell(task="bit_xor", label="a", backbone_args=RANDOM, hparams=HParamOverrides(steps=7)),
        SuiteCell(task="bit_xor", label="b", backbone_args=RANDOM, hparams=HParamOverrides(steps=7))])
    h = test_host()
    h.suites.as_origin("test").add(twice, name="twice")
    cells = expand_cells(build_run_config({}, {"suite": "twice", "profile": "smoke"}), h, "cpu", [])
    assert len(cells) == 1 and cells[0].hparams.steps == 7
    user = build_run_config({}, {"suite": "twice", "profile": "smoke", "hparams": {"steps": 3}})
    assert expand_cells(user, h, "cpu", [])[0].hparams.steps == 3  # the user's override wins


def test_task_narrows_a_suite_to_that_tasks_cells(host) -> None:  # type: ignore[no-untyped-def]
    config = build_run_config({}, {"suite": "mixed", "tasks": ["bit_xor"], "profile": "smoke"})
    unavailable: list[str] = []
    cells = expand_cells(config, host, "cpu", unavailable)
    assert [(c.task, c.backbone) for c in cells] == [("bit_xor", "gpt2")]
    assert len(unavailable) == 1 and "Other / bit_xor" in unavailable[0]  # the other tasks' cells are not tried
    wrong = build_run_config({}, {"suite": "mixed", "tasks": ["mnist"], "profile": "smoke"})
    with pytest.raises(UserError, match=r"--task mnist: not a task of suite 'mixed' \(its tasks: bit_memory, "
                                        r"bit_xor, no_such_task\)"):
        expand_cells(wrong, host, "cpu", [])


def test_unavailable_cells_without_a_list_still_raise(host) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UserError, match="unknown task 'no_such_task'"):
        expand_cells(build_run_config({}, {"suite": "mixed", "profile": "smoke"}), host, "cpu")


def test_sweeps_are_explicit_on_the_command_line_and_in_a_config_file(tmp_path: Path) -> None:
    from fpt_bench.cli.app import run_config

    assert run_config(["--task", "bit_xor", "--sweep", "lr=1e-4,3e-4"]).sweep == {"lr": [1e-4, 3e-4]}
    two = run_config(["--task", "bit_xor", "--sweep", "lr=1e-4,3e-4", "--sweep", "batch_size=4,8"])
    assert two.sweep == {"lr": [1e-4, 3e-4], "batch_size": [4, 8]}
    assert run_config(["--task", "bit_xor", "--lr", "0.01"]).hparams.lr == 0.01
    assert build_run_config({"sweep": {"lr": [1e-3, 1e-2]}}, {}).sweep == {"lr": [1e-3, 1e-2]}
    with pytest.raises(UserError, match=r"--lr '1e-4,3e-4': Input should be a valid number"):
        run_config(["--task", "bit_xor", "--lr", "1e-4,3e-4"])  # one value per flag: a sweep says so
    with pytest.raises(UserError, match=r"hparams.lr takes one value; to run one cell per value write "
                                        r"`\[sweep\] lr = \[...\]`"):
        build_run_config({"hparams": {"lr": [1e-3, 1e-2]}}, {})
    with pytest.raises(UserError, match=r"sweep: Value error, lr='fast': lr: Input should be a valid number"):
        run_config(["--task", "bit_xor", "--sweep", "lr=1e-4,fast"])
    with pytest.raises(UserError, match=r"sweep: Value error, lr=nan: lr: Input should be a finite number"):
        run_config(["--task", "bit_xor", "--sweep", "lr=nan,0.001"])
    with pytest.raises(UserError, match="lr: the values repeat"):
        build_run_config({}, {"sweep": {"lr": [1e-3, 1e-3]}})
    with pytest.raises(UserError, match="'stepz' is not a training setting"):
        run_config(["--task", "bit_xor", "--sweep", "stepz=1,2"])
    with pytest.raises(UserError, match="--sweep 'lr': expected KEY=V1,V2"):
        run_config(["--task", "bit_xor", "--sweep", "lr"])


def test_executor_flags_come_from_the_executor_plugins_and_reach_their_options() -> None:
    from fpt_bench.cli.app import run_config

    assert run_config(["--task", "bit_xor", "--workers", "2"]).executor_args == {"workers": 2}
    ray = run_config(["--task", "bit_xor", "--executor", "ray", "--cpus-per-cell", "2", "--ray-address", "auto"])
    assert ray.executor_args == {"cpus_per_cell": 2.0, "ray_address": "auto"}
    with pytest.raises(UserError, match="--workers is an option of the local executor, but this run uses the ray "
                                        "executor; add --executor local or drop --workers"):
        run_config(["--task", "bit_xor", "--executor", "ray", "--workers", "2"])
    with pytest.raises(UserError, match=r"--workers '0': Input should be greater than 0"):
        run_config(["--task", "bit_xor", "--workers", "0"])


def test_ls_cells_reports_each_status(tmp_path: Path, capsys: pytest.CaptureFixture[str], host,  # type: ignore[no-untyped-def]
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugin_host, "_HOST", host)
    write(tmp_path, make_result("bit_memory", seed=0, backbone_args=TINY))
    write(tmp_path, make_result("bit_memory", seed=1, backbone_args=TINY, status="diverged", test=0.4, val=0.4))
    write(tmp_path, make_result("bit_xor", seed=0, backbone_args=TINY, status="failed", test=None, val=None,
                                error="data missing\nmore"))
    args = ["ls", "cells", "--suite", "mixed", "--output-dir", str(tmp_path), "--backbone-args",
            "n_layers=2,n_embd=32,n_head=2", "--seeds", "0,1"]
    assert main(args) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[-1] == "1 diverged, 1 done, 1 failed, 1 missing, 3 unavailable"
    assert any(ln.startswith("failed") and "bit_xor" in ln and "(data missing)" in ln for ln in lines)
    assert any(ln.startswith("missing") and "bit_xor" in ln and "seed 1" in ln for ln in lines)
    assert any(ln.startswith("unavailable") and "unknown task 'no_such_task'" in ln for ln in lines)
    assert main(["ls", "cells", "--output-dir", str(tmp_path), "--json"]) == 0
    import json

    assert sorted(r["status"] for r in json.loads(capsys.readouterr().out)) == ["diverged", "done", "failed"]
