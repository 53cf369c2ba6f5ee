"""Remote homology: TAPE JSON and LMDB (restricted unpickler), IUPAC tokens, protocols; ASTRAL SCOPe FASTA
parsed with Biopython (multi-line sequences, ``x`` residues, malformed headers) and its held-out splits."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from fpt_bench import CorruptFileError, DataMissingError, Readout, UserError
from fpt_bench.cli import main
from fpt_bench.host.manager import get_host
from fpt_bench_plugins.tasks.homology import SPLITS, encode_protein, read_lmdb
from fpt_bench_plugins.tasks.homology_scope import read_astral, split_domains

RECORDS = [
    {"primary": "SLFEQX", "protein_length": 6, "fold_label": 3, "id": "d1a"},
    {"primary": "MKV", "protein_length": 3, "fold_label": 1194, "id": "d1b"},
    {"primary": "ACDEFGHIKLMNPQRSTVWYBZUO", "protein_length": 24, "fold_label": 0, "id": "d1c"},
]


def tape_json(data: Path, records: list[dict] = RECORDS) -> Path:
    folder = data / "remote_homology"
    folder.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        (folder / f"remote_homology_{split}.json").write_text(json.dumps(records))
    return folder


def tape_lmdb(folder: Path, records: list, count: int | None = None, raw: dict[bytes, bytes] | None = None) -> None:
    import lmdb

    folder.mkdir(parents=True, exist_ok=True)
    env = lmdb.open(str(folder), map_size=1 << 22)
    with env.begin(write=True) as txn:
        txn.put(b"num_examples", pickle.dumps(len(records) if count is None else count))
        for i, record in enumerate(records):
            txn.put(str(i).encode(), pickle.dumps(record))
        for key, value in (raw or {}).items():
            txn.put(key, value)
    env.close()


def test_iupac_tokens() -> None:
    assert encode_protein("SLFEQX").tolist() == [2, 22, 15, 10, 9, 20, 27, 3]
    assert encode_protein("slfeqx").tolist() == [2, 22, 15, 10, 9, 20, 27, 3]
    with pytest.raises(ValueError, match="unknown residue 'J' at position 2"):
        encode_protein("AJ")


def test_json_splits_and_default_protocol(tmp_path: Path) -> None:
    tape_json(tmp_path)
    task = get_host().tasks.get("remote_homology")
    options = task.options({"format": "json"})
    spec = task.resolve_spec(options)
    assert spec.test_splits == ["test_fold_holdout", "test_superfamily_holdout", "test_family_holdout"]
    assert spec.val_split == "valid" and spec.output.n_classes == 1195 and spec.output.readout == Readout.LAST_NONPAD
    task.prepare(tmp_path, False, options)
    for split in SPLITS:
        data = task.load(split, options, tmp_path)
        assert data.lengths.tolist() == [8, 5, 26] and data.y.tolist() == [3, 1194, 0]
        assert data.x[0, :8].tolist() == [2, 22, 15, 10, 9, 20, 27, 3] and data.x[1, 5:].eq(0).all()
    assert data.batch(torch.tensor([0, 1])).x.shape == (2, 8)
    cut = task.load("train", task.options({"format": "json", "max_len": 6}), tmp_path)
    assert cut.lengths.tolist() == [6, 5, 6] and cut.info["at_max_len"] == 2
    compat = task.options({"format": "json", "protocol": "paper-compat"})
    compat_spec = task.resolve_spec(compat)
    assert compat_spec.test_splits == ["valid"] and compat_spec.max_len == 1024
    assert compat_spec.output.readout == Readout.LAST


def test_lmdb_reads_the_same_records_with_numpy_fields(tmp_path: Path) -> None:
    folder = tmp_path / "remote_homology"
    records = [dict(r, secondary_structure=np.arange(len(r["primary"])) % 3, fold_label=np.int64(r["fold_label"]))
               for r in RECORDS]
    for split in SPLITS:
        tape_lmdb(folder / f"remote_homology_{split}.lmdb", records)
    assert read_lmdb(folder / "remote_homology_valid.lmdb")[0]["secondary_structure"].tolist() == [0, 1, 2, 0, 1, 2]
    task = get_host().tasks.get("remote_homology")
    options = task.options({})
    task.prepare(tmp_path, False, options)
    data = task.load("test_family_holdout", options, tmp_path)
    assert data.lengths.tolist() == [8, 5, 26] and data.y.tolist() == [3, 1194, 0]
    assert data.info["cache"] == "built" and task.load("test_family_holdout", options, tmp_path).info["cache"] == "hit"


class CallsAFunction:
    def __reduce__(self):  # noqa: ANN204
        return os.system, ("touch pwned-by-lmdb",)


@pytest.mark.parametrize("breakage, message", [
    ("missing_record", "record 2 is missing (num_examples says 3)"),
    ("function", "[record 1]: refusing to unpickle: it refers to"),
    ("no_count", "no 'num_examples' key"),
])
def test_broken_lmdb(tmp_path: Path, breakage: str, message: str) -> None:
    folder = tmp_path / "remote_homology_train.lmdb"
    if breakage == "missing_record":
        tape_lmdb(folder, RECORDS[:2], count=3)
    elif breakage == "function":
        tape_lmdb(folder, [RECORDS[0], {"primary": CallsAFunction(), "fold_label": 1}])
    else:
        import lmdb

        folder.mkdir()
        env = lmdb.open(str(folder))
        with env.begin(write=True) as txn:
            txn.put(b"0", pickle.dumps(RECORDS[0]))
        env.close()
    with pytest.raises(CorruptFileError) as err:
        read_lmdb(folder)
    assert str(folder) in str(err.value) and message in str(err.value)
    assert not Path("pwned-by-lmdb").exists()


@pytest.mark.parametrize("record, message", [
    ({"primary": "SLJ", "fold_label": 1}, "record 0 (?): unknown residue 'J' at position 3"),
    ({"primary": "SL*", "fold_label": 1}, "unknown residue '*'"),
    ({"primary": "SL", "fold_label": 1195}, "bad label 1195 (fold labels are 0..1194)"),
    ({"primary": "SL", "fold_label": "3"}, "bad label '3'"),
    ({"primary": "SL"}, "record 0 has no 'fold_label' field"),
])
def test_broken_json_records(tmp_path: Path, record: dict, message: str) -> None:
    folder = tape_json(tmp_path, [record])
    task = get_host().tasks.get("remote_homology")
    with pytest.raises(CorruptFileError) as err:
        task.load("valid", task.options({"format": "json"}), tmp_path)
    assert str(folder / "remote_homology_valid.json") in str(err.value) and message in str(err.value)


def test_missing_lmdb_points_at_present_json(tmp_path: Path) -> None:
    tape_json(tmp_path)
    task = get_host().tasks.get("remote_homology")
    with pytest.raises(DataMissingError, match="the JSON files are present: pass --task-args format=json"):
        task.prepare(tmp_path, False, task.options({}))


def test_broken_record_through_the_cli(tmp_path: Path, capsys) -> None:
    tape_json(tmp_path, [{"primary": "SLJ", "fold_label": 1}])
    code = main(["run", "--task", "remote_homology", "--task-args", "format=json", "--backbone-args",
                 "weights=random,n_layers=1,n_embd=16,n_head=2", "--profile", "smoke", "--device", "cpu",
                 "--output-dir", str(tmp_path / "out"), "--data-dir", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and "remote_homology_train.json: record 0 (?): unknown residue" in err


# ------------------------------------------------------------------------------------------- ASTRAL
def astral(path: Path, folds: int = 3, superfamilies: int = 3, families: int = 3, per_family: int = 3) -> Path:
    rng = np.random.default_rng(0)
    letters = np.array(list("acdefghiklmnpqrstvwy"))
    lines = []
    for f in range(1, folds + 1):
        for s in range(1, superfamilies + 1):
            for m in range(1, families + 1):
                for d in range(per_family):
                    seq = "".join(rng.choice(letters, 20 + 50 * (d % 3)))
                    if d == 1:
                        seq = seq[:5] + "x" + seq[6:]
                    lines.append(f">d{f}{s}{m}{d}a_ {'ab'[f % 2]}.{f}.{s}.{m} (A:) Some protein {{Org [TaxId: 1]}}")
                    lines += [seq[i:i + 60] for i in range(0, len(seq), 60)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_astral_parses_multiline_sequences_and_x(tmp_path: Path) -> None:
    path = astral(tmp_path / "a.fa")
    domains = read_astral(path)
    assert len(domains) == 81 and domains[0].id == "d1110a_" and domains[0].sccs == "b.1.1.1"
    assert domains[0].fold == "b.1" and domains[0].superfamily == "b.1.1"
    long = domains[2]
    assert len(long.sequence) == 120 and long.sequence.isupper()  # two FASTA lines joined
    assert domains[1].sequence[5] == "X" and encode_protein(domains[1].sequence)[6] == 27


@pytest.mark.parametrize("text, message", [
    (">d1abc_ a.1.1.1 (A:) ok\nACDE\n>d2abc_ (A:) no sccs here\nACDE\n", "record 2: malformed ASTRAL header"),
    (">d1abc_ a.1.1.1 (A:) ok\nACDJE\n", "record 1 (d1abc_): unknown residue 'J' at position 4"),
    ("some text\n>d1abc_ a.1.1.1\nAC\n", "not a FASTA file"),
    ("", "no FASTA records"),
])
def test_broken_astral(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "broken.fa"
    path.write_text(text)
    with pytest.raises(CorruptFileError) as err:
        read_astral(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_scope_splits_hold_out_whole_groups(tmp_path: Path) -> None:
    domains = read_astral(astral(tmp_path / "a.fa", folds=4, superfamilies=4, families=3, per_family=3))
    splits, labels, dropped = split_domains(domains, seed=1, superfamily_holdout=0.4, family_holdout=0.4,
                                            valid=0.1, in_family=0.1)
    train = splits["train"]
    assert all(len(splits[s]) > 0 for s in splits)
    assert sum(map(len, splits.values())) + sum(dropped.values()) == len(domains)
    assert labels == {f: i for i, f in enumerate(sorted({d.fold for d in train}))}
    assert not {d.superfamily for d in splits["test_superfamily_holdout"]} & {d.superfamily for d in train}
    assert {d.fold for d in splits["test_superfamily_holdout"]} <= {d.fold for d in train}
    assert not {d.sccs for d in splits["test_family_holdout"]} & {d.sccs for d in train}
    assert {d.superfamily for d in splits["test_family_holdout"]} <= {d.superfamily for d in train}
    assert {d.sccs for d in splits["test_in_family"]} <= {d.sccs for d in train}
    again, _, _ = split_domains(domains, seed=1, superfamily_holdout=0.4, family_holdout=0.4, valid=0.1, in_family=0.1)
    other, _, _ = split_domains(domains, seed=2, superfamily_holdout=0.4, family_holdout=0.4, valid=0.1, in_family=0.1)
    assert again == splits and other != splits


def test_scope_task_loads_through_the_data_dir(tmp_path: Path) -> None:
    astral(tmp_path / "scope" / "astral-scopedom-seqres-gd-sel-gs-bib-40-2.08.fa", folds=4, superfamilies=4)
    task = get_host().tasks.get("remote_homology_scope")
    args = {"superfamily_holdout": 0.4, "family_holdout": 0.4, "valid_fraction": 0.1, "in_family_fraction": 0.1,
            "split_seed": 1, "n_classes": 10}
    options = task.options(args)
    task.prepare(tmp_path, False, options)
    spec = task.resolve_spec(options)
    assert spec.output.n_classes == 10 and spec.test_splits[0] == "test_superfamily_holdout"
    train = task.load("train", options, tmp_path)
    held = task.load("test_superfamily_holdout", options, tmp_path)
    assert train.info["folds"] == 4 and set(train.y.tolist()) == {0, 1, 2, 3}
    assert held.x[:, 0].eq(2).all() and held.y.max() < 4
    with pytest.raises(UserError, match="more than n_classes=3"):
        task.load("valid", task.options(dict(args, n_classes=3)), tmp_path)
