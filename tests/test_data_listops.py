"""ListOps: LRA TSV reader, the two tokenisations, broken twins, the seeded generator and the Arrow cache."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from fpt_bench import CorruptFileError, Readout
from fpt_bench.cli import main
from fpt_bench.host.manager import get_host
from fpt_bench_plugins.tasks import listops_gen
from fpt_bench_plugins.tasks.listops import PAPER_VOCAB, VOCAB, read_tsv, tokenize

# every operator, nesting, MED with an even count, SM wrapping around
ROWS = [
    ("( ( ( [MAX 2 ) 9 ) ] )", 9),
    ("( ( ( ( [MIN 4 ) ( ( ( [SM 3 ) 8 ) ] ) ) 7 ) ] )", 1),
    ("( ( ( ( ( [MED 1 ) 6 ) 3 ) 8 ) ] )", 4),
    ("( ( ( ( [SM 9 ) 8 ) ( ( ( [MAX 0 ) 5 ) ] ) ) ] )", 2),
]


def write_tsv(path: Path, rows: list[tuple[str, int]], header: str = "Source\tTarget") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + "".join(f"{s}\t{t}\n" for s, t in rows))
    return path


def lra_dir(data: Path) -> Path:
    return data / "lra_release" / "listops-1000"


def test_vocabularies_are_fixed_and_sorted() -> None:
    assert VOCAB == ["<pad>", *"0123456789", "[MAX", "[MED", "[MIN", "[SM", "]"]
    assert PAPER_VOCAB == ["<pad>", *"0123456789", "MAX", "MED", "MIN", "SM"]
    task = get_host().tasks.get("listops")
    assert task.spec.input.vocab_size == 16 and task.spec.max_len == 2000
    compat = task.resolve_spec(task.options({"protocol": "paper-compat"}))
    assert compat.input.vocab_size == 15 and compat.max_len == 512 and compat.test_splits == ["val"]
    assert task.spec.output.readout == Readout.LAST_NONPAD and compat.output.readout == Readout.LAST


def test_the_four_rows_evaluate_and_tokenise() -> None:
    for text, target in ROWS:
        assert listops_gen.evaluate_expression(text) == target
    assert tokenize(ROWS[0][0].encode()).tolist() == [11, 3, 10, 15]
    assert tokenize(ROWS[1][0].encode()).tolist() == [13, 5, 14, 4, 9, 15, 8, 15]
    assert tokenize(ROWS[1][0].encode(), "paper-compat").tolist() == [13, 5, 14, 4, 9, 8]
    long = ("( ( ( [MAX 2 ) " + "9 ) " * 600 + "] )").encode()
    assert len(tokenize(long, "paper-compat")) == 512 and len(tokenize(long)) == 603


def test_reader_gives_tokens_lengths_and_labels(tmp_path: Path) -> None:
    tokens = read_tsv(write_tsv(tmp_path / "basic_val.tsv", ROWS))
    x, lengths, y = tokens.padded()
    assert lengths.tolist() == [4, 8, 6, 8] and y.tolist() == [9, 1, 4, 2]
    assert x.shape == (4, 8) and x[0].tolist() == [11, 3, 10, 15, 0, 0, 0, 0]


@pytest.mark.parametrize("rows, header, message", [
    ([("( ( ( [MAX 2 ) 9 ) ] )", 9)], "Source", "line 1: expected the header 'Source<TAB>Target'"),
    ([("( ( ( [MAX 2 ) 9 ) ] )\t9", 9)], None, "line 2: 3 column(s), expected 2 (Source, Target)"),
    ([("( ( ( [MAX 2 ) 9 ) ] )", 12)], None, "line 2: bad label '12' (targets are 0..9)"),
    ([ROWS[0], ("( ( ( [MAX 2 ) 9 ) [FIRST ] )", 9)], None, "line 3: unknown token '[FIRST'"),
    ([("( ( ( [MAX 2 ) 19 ) ] )", 9)], None, "line 2: unknown token '19'"),
])
def test_broken_tsv(tmp_path: Path, rows: list, header: str | None, message: str) -> None:
    path = tmp_path / "basic_train.tsv"
    write_tsv(path, rows, header or "Source\tTarget")
    with pytest.raises(CorruptFileError) as err:
        read_tsv(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "basic_test.tsv"
    path.write_text("Source\tTarget\n( ( ( [MAX 2 ) 9 ) ] )\n")
    with pytest.raises(CorruptFileError, match=r"basic_test.tsv: line 2: 1 column\(s\), expected 2"):
        read_tsv(path)


def test_generator_matches_lra_distribution_and_is_seeded() -> None:
    rows = listops_gen.generate(1500, seed=0)
    lengths = [length for _, _, length in rows]
    assert min(lengths) > 500 and max(lengths) < 2000
    assert all(len([t for t in text.split() if t not in "()"]) == n for text, _, n in rows)
    assert len({text for text, _, _ in rows}) == 1500
    labels = Counter(value for _, value, _ in rows)
    assert 0.12 < labels[0] / 1500 < 0.23 and 0.12 < labels[9] / 1500 < 0.23
    assert all(0.04 < labels[d] / 1500 < 0.13 for d in range(1, 9))
    assert all(listops_gen.evaluate_expression(text) == value for text, value, _ in rows[:300])
    assert listops_gen.generate(20, seed=0) == rows[:20]
    assert listops_gen.generate(20, seed=1) != rows[:20]


def test_fast_generator_draws_the_same_trees_as_the_tree_version() -> None:
    small = {"min_length": 20, "max_length": 200}
    assert listops_gen.generate(100, 3, **small) == listops_gen.generate_reference(100, 3, **small)


def test_data_generate_writes_lra_layout(tmp_path: Path, capsys) -> None:
    out = tmp_path / "gen"
    args = ["data", "generate", "listops", "--seed", "4", "--out", str(out), "--sizes", "train=6,val=2,test=2"]
    assert main(args) == 0
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(first) == ["basic_test.tsv", "basic_train.tsv", "basic_val.tsv"]
    assert first["basic_val.tsv"].startswith(b"Source\tTarget\n") and first["basic_val.tsv"].count(b"\n") == 3
    assert main(args) == 0 and {p.name: p.read_bytes() for p in out.iterdir()} == first
    tokens = read_tsv(out / "basic_train.tsv")
    assert len(tokens) == 6 and (tokens.offsets[1:] - tokens.offsets[:-1] > 500).all()
    assert main(["data", "generate", "listops", "--sizes", "train=x", "--out", str(out)]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_task_reads_lra_files_and_caches_tokens(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for split in ("train", "val", "test"):
        write_tsv(lra_dir(data) / f"basic_{split}.tsv", ROWS)
    task = get_host().tasks.get("listops")
    options = task.options({})
    task.prepare(data, False, options)
    first = task.load("val", options, data)
    assert first.info["source"] == "LRA listops-1000" and first.info["cache"] == "built"
    assert first.lengths.tolist() == [4, 8, 6, 8] and first.y.tolist() == [9, 1, 4, 2]
    assert first.x.dtype == torch.uint8 and first.batch(torch.tensor([0, 2])).x.dtype == torch.long
    assert first.batch(torch.tensor([0, 2])).x.shape == (2, 6)  # padded to the batch's longest
    second = task.load("val", options, data)
    assert second.info["cache"] == "hit" and torch.equal(second.x, first.x) and torch.equal(second.y, first.y)
    arrow = next(Path(second.info["cache_path"]).rglob("*.arrow"))
    arrow.write_bytes(arrow.read_bytes()[:40])  # damage the cache: it is rebuilt, not trusted
    third = task.load("val", options, data)
    assert third.info["cache"] == "built" and torch.equal(third.x, first.x)
    compat = task.load("val", task.options({"protocol": "paper-compat"}), data)
    assert compat.lengths is None and compat.x.shape == (4, 512) and compat.x[1, :7].tolist() == [13, 5, 14, 4, 9, 8, 0]
    write_tsv(lra_dir(data) / "basic_val.tsv", ROWS[:2])  # new content, new key
    assert task.load("val", options, data).info["cache"] == "built"


def test_generated_source_when_lra_files_are_absent(tmp_path: Path) -> None:
    task = get_host().tasks.get("listops")
    options = task.options({"generator_seed": 3})
    task.generate_data(tmp_path, 3, sizes={"train": 5, "val": 2, "test": 2})
    state, note = task.data_state(tmp_path, options)
    assert state == "ready" and "generated set (seed 3)" in note
    test = task.load("test", options, tmp_path)
    assert test.info["source"] == "generated (LRA algorithm)" and test.info["generator_seed"] == 3
    assert len(test) == 2 and (test.lengths > 500).all()


def test_broken_lra_file_fails_the_cell_with_exit_2(tmp_path: Path, capsys) -> None:
    data = tmp_path / "data"
    for split in ("train", "val", "test"):
        write_tsv(lra_dir(data) / f"basic_{split}.tsv", ROWS)
    write_tsv(lra_dir(data) / "basic_train.tsv", [ROWS[0], ("( ( ( [MAX 2 ) 9 ) ] )", 10)])
    code = main(["run", "--task", "listops", "--task-args", "source=lra", "--backbone-args",
                 "weights=random,n_layers=1,n_embd=16,n_head=2", "--profile", "smoke", "--device", "cpu",
                 "--output-dir", str(tmp_path / "out"), "--data-dir", str(data), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and "basic_train.tsv: line 3: bad label '10'" in err
