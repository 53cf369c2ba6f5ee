"""Results that prove themselves (issue 18, class 6): a result file offered to the leaderboard must agree with
itself (fpt_bench/leaderboard/consistency.py lists exactly what is cross-checked), and a cell counts each seed
once, whatever spelling its options were given in. Each forgery is a JSON edit of an honest result file, as a
person with a text editor would make it."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from lb_support import make_result, write
from reliability_support import tally

from fpt_bench import CorruptFileError
from fpt_bench.leaderboard import build_table, check_result_file, load_results


def _edited(tmp_path: Path, edit: Callable[[dict[str, Any]], None], **kwargs: Any) -> Path:
    path = write(tmp_path / "results", make_result(**kwargs))
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))  # json writes NaN and Infinity as the bare words Python reads back
    return path


def _set(where: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        *parents, last = where.split(".")
        node = data
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[int(last) if isinstance(node, list) else last] = value
    return edit


FORGERIES: dict[str, tuple[Callable[[dict[str, Any]], None], dict[str, Any], str]] = {
    # name -> (edit, make_result arguments, the reason the refusal must give)
    "test_accuracy edited (the selected step is the last)": (
        _set("metrics.test_accuracy", 0.99), {"test": 0.51}, "differs from test_accuracy_final"),
    "empty curve, every accuracy 1.0": (
        lambda d: d["metrics"].update(curve=[], test_accuracy=1.0, test_accuracy_final=1.0, val_accuracy=1.0,
                                      val_accuracy_final=1.0), {}, "must have every evaluation up to step 4"),
    "NaN timing": (_set("timing.train_seconds", float("nan")), {}, "not finite: timing.train_seconds"),
    "infinite trainable fraction": (_set("parameters.trainable_fraction", float("inf")), {},
                                    "not finite: parameters.trainable_fraction"),
    "NaN train loss in the curve": (_set("metrics.curve.0.train_loss", float("nan")), {},
                                    "not finite: metrics.curve[0].train_loss"),
    "curve stops before the budget": (lambda d: d["metrics"]["curve"].pop(), {},
                                      "must have every evaluation up to step 4"),
    "curve step off the evaluation grid": (_set("metrics.curve.0.step", 1), {"curve": [(2, 0.25), (4, 0.5)]},
                                           "are not evaluation steps"),
    "best step not in the curve": (_set("metrics.best_step", 3), {}, "not the best point of the learning curve"),
    "val accuracy not the curve's best": (_set("metrics.val_accuracy", 0.9), {}, "not the best point"),
    "final val accuracy not the last point": (_set("metrics.val_accuracy_final", 0.1), {}, "not the last point"),
    "train loss not the curve's last": (_set("metrics.train_loss", 0.01), {}, "metrics.train_loss is not the last"),
    "test_accuracy not the mean of the splits": (
        lambda d: d["metrics"].update(test_splits={"a": 0.2, "b": 0.4}), {}, "not the mean of metrics.test_splits"),
    "a single test split": (lambda d: d["metrics"].update(test_splits={"a": 0.5}), {},
                            "test_splits has one split"),
    "ok without test_accuracy_final": (_set("metrics.test_accuracy_final", None), {}, "lacks test_accuracy_final"),
    "ok without best_step": (_set("metrics.best_step", None), {}, "lacks best_step"),
    "ok after fewer steps than asked": (_set("timing.steps", 2), {}, "after 2 steps"),
    "accuracy above 1": (_set("metrics.test_splits", {"a": 1.5, "b": 0.5}), {}, "outside [0, 1]"),
}


@pytest.mark.parametrize("case", list(FORGERIES))
def test_inconsistent_result_is_refused_with_the_reason(tmp_path: Path, case: str) -> None:
    edit, kwargs, reason = FORGERIES[case]
    path = _edited(tmp_path, edit, **kwargs)
    with pytest.raises(CorruptFileError) as err:
        check_result_file(path)
    assert str(err.value).startswith(f"{path}: refused: ") and reason in str(err.value), str(err.value)
    tally("untrusted inputs refused", "inconsistent result files", 1)


@pytest.mark.parametrize("kwargs", [{}, {"status": "diverged", "curve": [(2, 0.3)], "test": 0.3},
                                    {"status": "failed", "val": None, "test": None}, {"steps": 5},
                                    {"curve": [(2, 0.9), (4, 0.5)], "test": 0.7}])
def test_honest_results_pass(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    """ok (the curve's last point at the budget, also when the budget is not a multiple of eval_every),
    diverged, failed, and a best step before the last (then test_accuracy may differ from the final one)."""
    if kwargs.get("steps") == 5:
        kwargs["curve"] = [(2, 0.2), (4, 0.3), (5, 0.5)]
    check_result_file(write(tmp_path, make_result(**kwargs)))


def test_add_refuses_the_issue_forgeries_and_publishes_nothing_of_them(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    board = tmp_path / "board"
    names = ("test_accuracy edited (the selected step is the last)", "empty curve, every accuracy 1.0", "NaN timing")
    files = [_edited(tmp_path / str(i), FORGERIES[name][0], **FORGERIES[name][1]) for i, name in enumerate(names)]
    code, _, err = run_cli("leaderboard", "--add", *map(str, files), "--publish", str(board), capsys=capsys)
    assert code == 2 and err.count("refused    ") == 3 and "Traceback" not in err
    assert not list((board / "results").rglob("*.json")) if (board / "results").exists() else True


# --------------------------------------------------------------------------------------------- one per seed
def _seeds(root: Path, values: list[float]) -> list[Path]:
    return [write(root, make_result(seed=s, test=v, val=v)) for s, v in enumerate(values)]


@pytest.mark.parametrize("padding", [{"task_args": {"n_val": 500}}, {"task_args": {"n_test": 1000, "n_val": 500}},
                                     {"backbone_args": {"weights": "random", "n_layers": 2, "n_embd": 32,
                                                        "n_head": 2, "dropout": 0.1}},
                                     {"task_args": {"n_val": 500.0}}, {"task_args": {"protocol": "default"}}])
def test_a_copy_with_a_no_op_option_counts_once(tmp_path: Path, padding: dict[str, Any]) -> None:
    """The issue's case: three seeds, then seed 0 again with an option spelled out at its default value (a
    different config hash, the same experiment), even written earlier. The copy is refused (of twins the
    plainest spelling is kept) and the mean stays the three seeds'."""
    values = [0.45, 0.50, 0.50]
    _seeds(tmp_path, values)
    twin = make_result(seed=0, test=0.99, val=0.5, **padding)
    twin.provenance.created_at = "2025-01-01T00:00:00+00:00"
    write(tmp_path, twin)
    results, refused = load_results([tmp_path])
    assert len(results) == 3 and len(refused) == 1
    assert "the same cell and seed as" in refused[0] and "normalised against their defaults" in refused[0]
    [stat] = build_table(results, None, layout="long").long
    assert stat.n == 3 and stat.mean == pytest.approx(100 * statistics.fmean(values))
    tally("untrusted inputs refused", "duplicate seeds in other spellings", 1)


def test_real_differences_are_not_duplicates(tmp_path: Path) -> None:
    """Another seed, another learning rate, or an option with a value other than its default: separate runs."""
    write(tmp_path, make_result(seed=0))
    write(tmp_path, make_result(seed=1))
    write(tmp_path, make_result(seed=0, lr=3e-4))
    write(tmp_path, make_result(seed=0, task_args={"n_val": 100}))
    results, refused = load_results([tmp_path])
    assert len(results) == 4 and refused == []


def test_add_refuses_a_twin_of_a_published_seed(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    board = tmp_path / "board"
    _seeds(board / "results", [0.45, 0.50, 0.50])
    twin = write(tmp_path / "incoming", make_result(seed=0, test=0.99, val=0.5, task_args={"n_val": 500}))
    fresh = write(tmp_path / "incoming", make_result(seed=3, test=0.5, val=0.5))
    code, out, err = run_cli("leaderboard", "--add", str(twin), str(fresh), "--publish", str(board), capsys=capsys)
    assert code == 2 and f"refused    {twin}: refused: the same cell and seed as the published" in err
    assert "added" in out and len(list((board / "results").rglob("*.json"))) == 4
    # the same file again is "unchanged", not a duplicate of itself
    code, out, _ = run_cli("leaderboard", "--add", str(fresh), "--publish", str(board), capsys=capsys)
    assert code == 0 and "unchanged" in out
