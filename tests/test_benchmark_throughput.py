"""``benchmarks/throughput.py`` end to end at one GPT-2 block: it runs, both loops compute the same function, and
its JSON holds what the README's table is made from. (The real-size numbers are the benchmark's, not a test's.)"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def throughput():
    sys.path.insert(0, str(BENCH))  # throughput.py imports naive_loop beside it
    try:
        spec = importlib.util.spec_from_file_location("throughput", BENCH / "throughput.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["throughput"] = module  # its dataclasses look their module up there
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("throughput", None)
        sys.modules.pop("naive_loop", None)
        sys.modules.pop("precision_compare", None)
        sys.path.remove(str(BENCH))


def test_one_block_run_writes_the_table_data(throughput, tmp_path: Path, capsys) -> None:
    out = tmp_path / "t.json"
    assert throughput.main(["--tasks", "bit_xor,mnist", "--layers", "1", "--steps", "1", "--warmup", "1",
                            "--eval-examples", "8", "--eval-rounds", "2", "--cache-tasks", "mnist",
                            "--cache-examples", "8", "--device", "cpu", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["args"]["eval_rounds"] == "2" and data["args"]["gelu"] == "fused"
    rows = {row["task"]: row for row in data["training"]}
    assert set(rows) == {"bit_xor", "mnist"}
    for row in rows.values():
        assert row["layers"] == 1 and row["gelu"] == "fused"
        # the fused GELU against the naive loop's gelu_new, same weights: the same function
        assert row["same_function_max_abs_logit_diff"] < 1e-5
        for key in ("harness_train_samples_per_s", "naive_train_samples_per_s", "harness_eval_samples_per_s",
                    "naive_eval_samples_per_s", "harness_peak_mb", "naive_peak_mb"):
            assert row[key] > 0, key
        assert row["eval_over_train"] == pytest.approx(
            row["harness_eval_samples_per_s"] / row["harness_train_samples_per_s"])
    [cache] = data["feature_cache"]
    assert cache["task"] == "mnist" and cache["examples"] == 8 and cache["cached_epoch_s"] > 0
    table = capsys.readouterr().out
    assert "eval/train harness" in table and "mnist |" in table and "bit_xor |" in table


@pytest.mark.parametrize("flag", ["--eval-rounds", "--steps", "--batch-size"])
def test_counts_below_one_are_a_usage_error(throughput, flag: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        throughput.main(["--tasks", "bit_xor", flag, "0"])
    assert exit_.value.code == 2
    assert f"argument {flag}: invalid positive value: '0'" in capsys.readouterr().err


def test_precision_auto_compares_fp32_bf16_and_the_choice(throughput, tmp_path: Path, capsys) -> None:
    out = tmp_path / "p.json"
    assert throughput.main(["--tasks", "mnist", "--layers", "1", "--steps", "2", "--warmup", "1", "--eval-examples",
                            "8", "--eval-rounds", "2", "--cache-tasks", "", "--precision", "auto", "--bf16-frozen",
                            "--device", "cpu", "--json", str(out)]) == 0
    [row] = json.loads(out.read_text())["precision"]
    assert row["task"] == "mnist" and row["layers"] == 1
    assert row["auto_source"] in ("measured", "no_bf16")  # a fresh cache: measured wherever oneDNN has bf16
    for mode in ("train", "eval"):
        chosen = row[f"auto_{mode}"]
        assert row[f"auto_{mode}_samples_per_s"] == row[f"{chosen}_{mode}_samples_per_s"]
        best = max(row[f"fp32_{mode}_samples_per_s"], row[f"bf16_{mode}_samples_per_s"])
        assert row[f"auto_over_best_{mode}"] == pytest.approx(row[f"auto_{mode}_samples_per_s"] / best)
        fastest = max(row[f"fp32_{mode}_samples_per_s_fastest"], row[f"bf16_{mode}_samples_per_s_fastest"])
        assert row[f"auto_over_best_{mode}_fastest"] == pytest.approx(
            row[f"{chosen}_{mode}_samples_per_s_fastest"] / fastest)
        assert len(row[f"bf16_frozen_{mode if mode == 'eval' else 'step'}_times"]) == 2
    # one GPT-2 block: its 4 matrices (768x2304, 768x768, 768x3072, 3072x768) in bf16 instead of fp32
    assert row["bf16_frozen_params_cast"] == 7_077_888
    assert row["fp32_parameters_mb"] - row["bf16_frozen_parameters_mb"] == pytest.approx(7_077_888 * 2 / 2**20)
    table = capsys.readouterr().out
    assert "train auto/best" in table and "eval/s bf16 frozen-cast" in table
