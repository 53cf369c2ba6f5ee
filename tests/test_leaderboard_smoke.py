"""The leaderboard on result files written by real smoke runs of the ``offline_gpt2`` suite (tiny GPT-2), and the
attention maps of a trained cell rebuilt from its result."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import torch
from lb_support import make_result, write

from fpt_bench.cli import main
from fpt_bench.host.manager import get_host
from fpt_bench.leaderboard import build_table, load_results, render

TINY_ARGS = "n_layers=2,n_embd=32,n_head=2"
RUN = ["run", "--suite", "offline_bits", "--seeds", "0,1", "--profile", "smoke", "--steps", "4", "--backbone-args",
       TINY_ARGS, "--device", "cpu", "--no-progress", "--keep-checkpoints"]


BIT_TASKS = ("bit_memory", "bit_xor")


def _register_offline_bits() -> None:
    """The ``offline_gpt2`` suite's cells on the generated bit tasks (seconds to run; needs no data files)."""
    host = get_host()
    if "offline_bits" in host.suites:
        return
    offline = host.suites.get("offline_gpt2")
    cells = [c for c in offline.cells if c.task in BIT_TASKS]
    rows = {c.label for c in cells}
    reference = {row: {t: v for t, v in cols.items() if t in BIT_TASKS}
                 for row, cols in offline.reference.items() if row in rows}
    suite = offline.model_copy(update={"name": "offline_bits", "cells": cells, "reference": reference,
                                       "reference_marks": {}})
    host.suites.as_origin("leaderboard-smoke-tests").add(suite, name="offline_bits")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _register_offline_bits()
    out = tmp_path_factory.mktemp("offline")
    assert main([*RUN, "--output-dir", str(out)]) == 0
    return out


def test_suite_run_skips_unavailable_and_finished_cells(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert len(list(runs.rglob("*.json"))) == 4  # bit_memory, bit_xor x 2 seeds; the rest is unavailable
    assert len(list(runs.rglob("*.params.pt"))) == 4
    capsys.readouterr()
    assert main([*RUN, "--output-dir", str(runs)]) == 0
    captured = capsys.readouterr()
    assert "done: 0 ok, 0 diverged, 0 failed, 4 skipped" in captured.out


def test_table_from_real_results(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    by_task: dict[str, list[float]] = {}
    for f in runs.rglob("*.json"):
        data = json.loads(f.read_text())
        by_task.setdefault(data["cell"]["task"], []).append(100 * data["metrics"]["test_accuracy"])
    results, refused = load_results([runs])
    assert refused == [] and len(results) == 4
    table = build_table(results, get_host().suites.get("offline_bits"), {"backbone_args": {"n_layers": 2, "n_embd": 32,
                                                                                      "n_head": 2}})
    for task, values in by_task.items():
        s = table.cells[("GPT-2, random init", task)]
        assert (s.n, s.status) == (2, "ok")
        assert s.mean == pytest.approx(statistics.fmean(values))
        assert s.std == pytest.approx(statistics.stdev(values))
    assert table.cells[("GPT-2, random init", "bit_xor")].reference == 100.0
    assert main(["leaderboard", str(runs), "--suite", "offline_bits", "--backbone-args", TINY_ARGS]) == 0
    out = capsys.readouterr().out
    assert f"{statistics.fmean(by_task['bit_xor']):.1f} ± {statistics.stdev(by_task['bit_xor']):.1f} (n=2)" in out
    assert "bit\\_xor \\[v1, default\\]" in out
    assert "bit\\_xor" in render(build_table(results, layout="long"), "github", "long")
    args = ["ls", "cells", "--suite", "offline_bits", "--output-dir", str(runs), "--backbone-args", TINY_ARGS]
    assert main(args) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "4 done"


def test_plots_from_real_results(runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["leaderboard", str(runs), "--suite", "offline_bits", "--backbone-args", TINY_ARGS,
                 "--plots", str(tmp_path)]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"offline_bits-{k}.{x}" for k in ("curves", "figure1", "steps") for x in ("png", "svg")]
    assert (tmp_path / "offline_bits-figure1.svg").read_text().lstrip().startswith("<?xml")


def test_attention_maps_of_a_rebuilt_cell(runs: Path, tmp_path: Path) -> None:
    from fpt_bench.analysis.attention import attention_maps, load_example, load_trained
    from fpt_bench.training.inference import evaluate

    result_file = next(runs.rglob("bit_xor/**/*seed1*.json"))
    rebuilt = load_trained(result_file, get_host())
    hp = rebuilt.result.cell.hparams
    test = rebuilt.task.load("test", rebuilt.options, tmp_path).head(hp["test_examples"])
    # the rebuilt model is the trained one: it reproduces the reported test accuracy exactly
    assert evaluate(rebuilt.model, test, 64, torch.device("cpu"), "fp32") == rebuilt.result.metrics.test_accuracy
    batch = load_example(rebuilt, tmp_path, None, 3)
    maps = attention_maps(rebuilt, batch.x)
    assert len(maps) == 2 and maps[0].shape == (10, 10)
    assert torch.allclose(maps[1].sum(-1), torch.ones(10), atol=1e-5)  # each query's weights sum to 1
    assert torch.all(maps[0].triu(1) == 0)  # GPT-2 is causal
    stem = tmp_path / "att"
    assert main(["attention", str(result_file), "--index", "3", "--head", "1", "--output", str(stem)]) == 0
    assert stem.with_suffix(".png").read_bytes()[:4] == b"\x89PNG" and stem.with_suffix(".svg").exists()
    assert main(["attention", str(result_file), "--index", "3"]) == 0  # the default: <result>.attention.png/.svg
    assert result_file.with_name(result_file.name.removesuffix(".json") + ".attention.png").exists()
    assert result_file.exists()

def test_attention_needs_kept_parameters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, make_result("bit_xor"))
    assert main(["attention", str(path)]) == 2
    assert "no trained parameters next to it" in capsys.readouterr().err
    path.with_suffix(".params.pt").write_bytes(b"not a torch file")
    assert main(["attention", str(path)]) == 2
    assert "not a readable parameter file" in capsys.readouterr().err
