"""`smoke` is seconds for every task: each built-in task's smoke cell is small (sizes pinned, not times: the
timings are in benchmarks/smoke_cells.py); ListOps's smoke cell reads a small set drawn in memory, never the
100,000-expression set; the full set is written while it is drawn (the writer never holds it)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import TINY

from fpt_bench.cells.profiles import resolve_hparams, task_options
from fpt_bench.cli import main
from fpt_bench.host.manager import get_host
from fpt_bench_plugins.tasks import listops_gen

# task -> (steps, batch size, eval every, validation examples, test examples, longest sequence) under smoke
SMOKE = {
    "bit_memory": (10, 1, 5, 8, 8, 120),
    "bit_xor": (20, 4, 10, 64, 64, 10),
    "listops": (10, 2, 5, 8, 8, 100),  # the small set: expressions of 20-100 tokens
    "mnist": (20, 2, 10, 16, 16, 49),
    "fashion_mnist": (20, 2, 10, 16, 16, 49),
    "cifar10": (20, 2, 10, 16, 16, 64),
    "cifar10_lra": (4, 1, 2, 4, 4, 1024),
    "remote_homology": (20, 2, 10, 16, 16, 128),  # sequences cut at 128 tokens under smoke
    "remote_homology_scope": (20, 2, 10, 16, 16, 128),
}


def smoke_shape(name: str) -> tuple[int, ...]:
    task = get_host().tasks.get(name)
    hp = resolve_hparams(task.spec, "smoke")
    spec = task.resolve_spec(task_options(task, {}, "smoke"))
    return hp.steps, hp.batch_size, hp.eval_every, hp.val_examples, hp.test_examples, spec.max_len


def test_every_builtin_task_has_a_small_smoke_cell() -> None:
    host = get_host()
    builtin = {n for origin in ("bits", "vision", "listops", "homology", "homology_scope")
               for n in host.tasks.added_by(origin)}
    assert builtin == set(SMOKE)
    for name, expected in SMOKE.items():
        assert smoke_shape(name) == expected, name
        steps, batch, every, n_val, n_test, longest = expected
        splits = len(get_host().tasks.get(name).spec.test_splits)
        evaluations = steps // every
        train_tokens = steps * batch * longest
        eval_tokens = (n_val * evaluations + 2 * n_test * splits) * longest  # final and selected parameters
        # a GPT-2 base cell (the largest backbone of an offline suite) stays within ~1-2 TFLOP on a CPU
        assert train_tokens <= 5_200 and eval_tokens <= 16_400, (name, train_tokens, eval_tokens)


def test_listops_smoke_reads_a_small_set_drawn_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_full_set(*args: object, **kwargs: object) -> None:
        raise AssertionError("the full ListOps set was generated")

    monkeypatch.setattr(listops_gen, "write_splits", no_full_set)
    task = get_host().tasks.get("listops")
    options = task_options(task, {}, "smoke")
    assert options.source == "small"
    assert task_options(task, {"source": "generated"}, "smoke").source == "generated"  # the cell's args win
    assert task_options(task, {}, "quick").source == "auto"
    task.prepare(tmp_path, False, options)
    splits = {s: task.load(s, options, tmp_path) for s in ("train", "val", "test")}
    assert {s: len(d) for s, d in splits.items()} == {"train": 256, "val": 64, "test": 64}
    assert all(20 < int(d.lengths.min()) and int(d.lengths.max()) < 100 for d in splits.values())
    assert list(tmp_path.iterdir()) == []  # nothing read, nothing written
    info = splits["test"].info
    assert info["source"] == "generated small set (LRA algorithm, 20-100 tokens, in memory)"
    assert info["md5"] == "7723c482e44a78e48b84bc15a63d71c7"
    rows = listops_gen.generate(384, 0, max_depth=6, max_args=5, min_length=20, max_length=100)[-64:]
    text = "".join(f"{t}\t{v}\n" for t, v, _ in rows)
    assert hashlib.md5(text.encode(), usedforsecurity=False).hexdigest() == info["md5"]
    assert splits["test"].y.tolist() == [v for _, v, _ in rows]


def test_a_listops_smoke_cell_records_the_small_set(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = main(["run", "--task", "listops", "--backbone-args", TINY, "--profile", "smoke", "--device", "cpu",
                 "--steps", "2", "--output-dir", str(out), "--data-dir", str(tmp_path / "data"), "--no-progress"])
    result = json.loads(next(out.rglob("*.json")).read_text())
    assert code == 0 and result["status"] == "ok"
    assert result["cell"]["task_args"] == {}  # the profile's data choice is no part of the cell's identity
    assert result["provenance"]["data"]["train"]["source"].startswith("generated small set")
    assert result["provenance"]["data"]["test"]["subset"] == 8  # the first 8 of the 64
    assert not (tmp_path / "data" / "listops-generated").exists()


def test_the_full_set_is_written_while_it_is_drawn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer streams: when the 200th expression is drawn, most of the 199 before it are already on disk
    (a writer holding the set would have written nothing yet). Memory therefore does not grow with the set."""
    drawn = listops_gen.iter_generate
    seen: list[int] = []

    def watched(seed: int, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        for i, row in enumerate(drawn(seed, *args, **kwargs), start=1):
            if i == 200:
                tmp = next(tmp_path.glob(".basic_train.tsv.*.tmp"))
                seen.append(tmp.stat().st_size)
            yield row

    monkeypatch.setattr(listops_gen, "iter_generate", watched)
    paths = listops_gen.write_splits(tmp_path, 7, {"train": 250, "val": 3, "test": 3})
    train = paths["train"].read_bytes()
    first_199 = len(b"\n".join(train.split(b"\n")[:200]))  # header + 199 rows
    assert seen and seen[0] >= first_199 - 16_384  # all but what the write buffers hold
    assert train.count(b"\n") == 251 and sorted(p.name for p in tmp_path.iterdir()) == [
        "basic_test.tsv", "basic_train.tsv", "basic_val.tsv"]


def test_openmp_threads_sleep_while_they_wait_unless_the_user_chose() -> None:
    import os
    import subprocess
    import sys

    code = "import os, fpt_bench, torch; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "PASSIVE"
    chosen = subprocess.run([sys.executable, "-c", code], env={**env, "OMP_WAIT_POLICY": "ACTIVE"},
                            capture_output=True, text=True, check=True)
    assert chosen.stdout.strip() == "ACTIVE"
