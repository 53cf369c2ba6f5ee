"""Fuzzed parsers (hypothesis): IDX, CIFAR pickles, ListOps TSV, ASTRAL FASTA, TAPE JSON and LMDB records, TOML
config files, result files offered to the leaderboard, and archives. Inputs are valid files, valid files with
bytes flipped, cut, inserted or deleted, structured nonsense in the right container (plain-data pickles, JSON,
TOML of any shape) and random bytes. Every input must end within a few seconds either parsed or in one
UserError that names the file -- never another exception (a traceback) and never a hang.

Examples are derandomised (the same cases on every run) and counted; the counts are printed in pytest's
terminal summary ("reliability figures")."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import pickle
import struct
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lb_support import make_result
from reliability_support import tally, within

from fpt_bench import UserError

FUZZ = settings(deadline=None, derandomize=True, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.large_base_example])


def fuzz(examples: int) -> settings:
    return settings(FUZZ, max_examples=examples)


PER_INPUT_SECONDS = 20  # "never hangs": each input is parsed or refused within this (a loaded 2-core CPU)


def bounded(seconds: float = PER_INPUT_SECONDS) -> contextlib.AbstractContextManager[None]:
    return within(seconds, "a parser ran on one input")


def check(parser: str, where: Path, parse: Callable[[], Any]) -> Any:
    """Parse; a refusal must be one UserError naming ``where``. Counts the case."""
    tally("fuzz cases", parser)
    try:
        with bounded():
            value = parse()
    except UserError as exc:
        tally("fuzz refused (clear error)", parser)
        message = str(exc)
        assert str(where) in message, f"the error does not name {where}: {message}"
        assert "Traceback" not in message
        return None
    tally("fuzz parsed", parser)
    return value


# ------------------------------------------------------------------------------------------- mutations
@st.composite
def mutated(draw: st.DrawFn, blob: bytes) -> bytes:
    """``blob`` with 1-4 edits: a byte changed, a cut, bytes inserted or deleted, a 32-bit field overwritten."""
    data = bytearray(blob)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "delete", "u32"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 16))]
        elif op == "u32" and len(data) >= 4:
            at = min(at, len(data) - 4)
            data[at:at + 4] = struct.pack(">I", draw(st.sampled_from([0, 1, 255, 2**16, 2**31, 2**32 - 1])))
    return bytes(data)


def variants(blob: bytes) -> st.SearchStrategy[bytes]:
    """``blob`` itself, ``blob`` mutated, or random bytes instead."""
    return st.one_of(st.just(blob), mutated(blob), st.binary(max_size=512))


def file_bytes(valid: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """Valid files, mutated valid files, and random bytes."""
    return valid.flatmap(variants)


def big(make: Callable[[], bytes]) -> st.SearchStrategy[bytes]:
    """One large fixed input, built lazily (its repr stays short in hypothesis reports)."""
    return st.just(None).map(lambda _: make())


# ------------------------------------------------------------------------------------------------- IDX
def idx_blob(array: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


@st.composite
def idx_pairs(draw: st.DrawFn) -> tuple[bytes, bytes]:
    n = draw(st.integers(0, 3))
    images = np.frombuffer(draw(st.binary(min_size=n * 784, max_size=n * 784)), np.uint8).reshape(n, 28, 28)
    labels = np.array(draw(st.lists(st.integers(0, 12), min_size=n, max_size=n)), np.uint8)
    return idx_blob(images), idx_blob(labels)


@fuzz(150)
@given(pair=idx_pairs().flatmap(lambda p: st.tuples(variants(p[0]), variants(p[1]))),
       gz=st.booleans())
def test_idx(tmp_path: Path, pair: tuple[bytes, bytes], gz: bool) -> None:
    from fpt_bench_plugins.tasks.vision import read_idx_pair

    suffix = ".gz" if gz else ""
    images, labels = tmp_path / f"images{suffix}", tmp_path / f"labels{suffix}"
    for path, blob in zip((images, labels), pair, strict=True):
        path.write_bytes(gzip.compress(blob, mtime=0) if gz else blob)
    tally("fuzz cases", "IDX")
    try:
        with bounded():
            x, y = read_idx_pair(images, labels, 28, 10)
    except UserError as exc:
        tally("fuzz refused (clear error)", "IDX")
        assert str(images) in str(exc) or str(labels) in str(exc), str(exc)
        return
    tally("fuzz parsed", "IDX")
    assert x.shape[1:] == (28, 28) and len(x) == len(y) and (y < 10).all()


@fuzz(40)
@given(blob=st.binary(max_size=256))
def test_idx_gzip_stream_damage(tmp_path: Path, blob: bytes) -> None:
    from fpt_bench_plugins.tasks.vision import read_idx

    path = tmp_path / "damaged.gz"
    good = gzip.compress(idx_blob(np.zeros((2, 28, 28), np.uint8)), mtime=0)
    path.write_bytes(good[: len(blob) % len(good)] + blob)  # a cut gzip stream with garbage after it
    check("IDX", path, lambda: read_idx(path, 3))


# ----------------------------------------------------------------------------------------------- CIFAR
plain = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True), st.text(max_size=8),
              st.binary(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4),
                            st.tuples(inner, inner)),
    max_leaves=12,
)
arrays = st.builds(
    lambda shape, dtype, seed: np.random.default_rng(seed).integers(0, 256, shape).astype(dtype),
    st.sampled_from([(0, 3072), (2, 3072), (2, 3000), (3072,), (1, 3, 32, 32)]),
    st.sampled_from([np.uint8, np.int16, np.float32, np.int64]), st.integers(0, 9),
)


@st.composite
def cifar_entries(draw: st.DrawFn) -> Any:
    n = draw(st.integers(0, 3))
    if draw(st.booleans()):  # a well-formed batch (then maybe mutated as bytes)
        pixels = np.frombuffer(draw(st.binary(min_size=n * 3072, max_size=n * 3072)), np.uint8).reshape(n, 3072)
        clean = {"data": pixels, "labels": draw(st.lists(st.integers(0, 9), min_size=n, max_size=n)),
                 "batch_label": "training batch"}
        return {k.encode(): v for k, v in clean.items()} if draw(st.booleans()) else clean
    entry: dict[Any, Any] = {
        "data": draw(st.one_of(st.just(np.zeros((n, 3072), np.uint8)), arrays, plain)),
        "labels": draw(st.one_of(st.lists(st.integers(-1, 11), min_size=n, max_size=n), plain, arrays)),
        "batch_label": "training batch",
    }
    for key in draw(st.lists(st.sampled_from(["data", "labels"]), max_size=1)):
        del entry[key]
    if draw(st.booleans()):
        entry = {k.encode(): v for k, v in entry.items()}
    return draw(st.one_of(st.just(entry), plain))


def cifar_pickle(entry: Any, protocol: int) -> bytes:
    blob = pickle.dumps(entry, protocol=protocol)
    return blob.replace(b"numpy._core.multiarray", b"numpy.core.multiarray") if protocol <= 2 else blob


@fuzz(150)
@given(blob=file_bytes(st.builds(cifar_pickle, cifar_entries(), st.integers(0, 5))))
def test_cifar_pickles(tmp_path: Path, blob: bytes) -> None:
    from fpt_bench_plugins.tasks.vision import read_cifar_batch

    path = tmp_path / "data_batch_1"
    path.write_bytes(blob)
    parsed = check("CIFAR pickle", path, lambda: read_cifar_batch(path))
    if parsed is not None:
        x, y = parsed
        assert x.shape[1:] == (3, 32, 32) and x.dtype == np.uint8 and len(x) == len(y) and ((y >= 0) & (y < 10)).all()


# -------------------------------------------------------------------------------------------- ListOps TSV
LISTOPS_TOKENS = ["[MAX", "[MIN", "[MED", "[SM", "]", "(", ")", *"0123456789"]


@st.composite
def expressions(draw: st.DrawFn, depth: int = 0) -> str:
    if depth > 2 or draw(st.booleans()):
        return draw(st.sampled_from("0123456789"))
    op = draw(st.sampled_from(["[MAX", "[MIN", "[MED", "[SM"]))
    args = [draw(expressions(depth + 1)) for _ in range(draw(st.integers(1, 3)))]
    return "( " * (len(args) + 1) + op + " " + " ) ".join(args) + " ) ] )"


@st.composite
def tsv_files(draw: st.DrawFn) -> bytes:
    rows = draw(st.lists(st.tuples(expressions(), st.integers(0, 9)), min_size=1, max_size=4))
    junk = st.lists(st.one_of(st.sampled_from(LISTOPS_TOKENS), st.text(max_size=4)), max_size=8).map(" ".join)
    extra = draw(st.lists(st.tuples(junk, st.text(max_size=3)), max_size=2))
    header = draw(st.sampled_from(["Source\tTarget", "Source\tTarget\r", "Target\tSource", ""]))
    body = "".join(f"{s}\t{t}\n" for s, t in rows + extra)
    return (header + "\n" + body).encode("utf-8", errors="surrogatepass")


@fuzz(150)
@given(blob=file_bytes(tsv_files()), protocol=st.sampled_from(["default", "paper-compat"]))
def test_listops_tsv(tmp_path: Path, blob: bytes, protocol: str) -> None:
    from fpt_bench_plugins.tasks.listops import read_tsv

    path = tmp_path / "basic_val.tsv"
    path.write_bytes(blob)
    tokens = check("ListOps TSV", path, lambda: read_tsv(path, protocol))
    if tokens is not None:
        x, lengths, y = tokens.padded()
        assert len(y) == len(lengths) > 0 and int(lengths.min()) > 0 and int(y.max()) < 10


# ----------------------------------------------------------------------------------------------- FASTA
RESIDUES = "ACDEFGHIKLMNPQRSTVWYXBZUOacdexjJ*-1 ßé"


@st.composite
def fasta_files(draw: st.DrawFn) -> bytes:
    records = []
    for i in range(draw(st.integers(0, 3))):
        if draw(st.booleans()):  # a well-formed ASTRAL record
            sccs = ".".join([draw(st.sampled_from("abcdefg")), *map(str, draw(st.tuples(*[st.integers(1, 99)] * 3)))])
            lines = draw(st.lists(st.text("ACDEFGHIKLMNPQRSTVWYXacdex", min_size=1, max_size=30), min_size=1,
                                  max_size=3))
            records.append("\n".join([f">d{i}abc_ {sccs} (A:) protein {{Org [TaxId: 1]}}", *lines]))
            continue
        sccs = draw(st.sampled_from(["a.1.1.1", "g.3.7.12", "m.1.1.1", "a.1.1", "a.b.c.d", ""]))
        header = draw(st.sampled_from([f">d{i}abc_ {sccs} (A:) protein", f">d{i}abc_", ">", f"d{i} {sccs}"]))
        lines = draw(st.lists(st.text(RESIDUES, max_size=30), max_size=3))
        records.append("\n".join([header, *lines]))
    lead = draw(st.sampled_from(["", "; comment\n", "\n\n"]))
    return (lead + "\n".join(records) + "\n").encode("utf-8")


@fuzz(100)
@given(blob=file_bytes(fasta_files()))
def test_astral_fasta(tmp_path: Path, blob: bytes) -> None:
    from fpt_bench_plugins.tasks.homology import encode_protein
    from fpt_bench_plugins.tasks.homology_scope import read_astral

    path = tmp_path / "astral.fa"
    path.write_bytes(blob)
    domains = check("ASTRAL FASTA", path, lambda: read_astral(path))
    for d in domains or []:
        assert d.sequence and d.fold.count(".") == 1 and len(encode_protein(d.sequence)) == len(d.sequence) + 2


# ------------------------------------------------------------------------------------------ TAPE records
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**64, 2**64), st.floats(allow_nan=False), st.text(max_size=10)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=10,
)
tape_record = st.fixed_dictionaries(
    {},
    optional={"primary": st.one_of(st.text("ACDEFGHIKLMNPQRSTVWYXacxJ*ßé", max_size=20), json_values),
              "fold_label": st.one_of(st.integers(-2, 1200), json_values),
              "id": st.text(max_size=6), "protein_length": st.integers(0, 30)},
)
clean_record = st.fixed_dictionaries({"primary": st.text("ACDEFGHIKLMNPQRSTVWYXBZUOacx", min_size=1, max_size=40),
                                      "fold_label": st.integers(0, 1194), "id": st.text(max_size=6)})
tape_records = st.one_of(st.lists(clean_record, min_size=1, max_size=4),
                         st.lists(st.one_of(clean_record, tape_record, json_values), max_size=4), json_values)


def tape_pipeline(raw: Any, where: str) -> Any:
    from fpt_bench import CorruptFileError
    from fpt_bench_plugins.tasks.homology import N_FOLDS, tape_records, tokenize_records

    if not isinstance(raw, list):
        raise CorruptFileError(f"{where}: expected a list of records")  # read_json's own check, for LMDB lists
    return tokenize_records(tape_records(raw, where), where, 16, N_FOLDS)


@fuzz(150)
@given(blob=st.one_of(file_bytes(tape_records.map(lambda r: json.dumps(r).encode())),
                      st.integers(500, 5000).map(lambda depth: b"[" * depth + b"]" * depth),
                      big(lambda: b'[{"primary": "SL", "fold_label": ' + b"9" * 5000 + b"}]")))
def test_tape_json(tmp_path: Path, blob: bytes) -> None:
    from fpt_bench_plugins.tasks.homology import read_json

    path = tmp_path / "remote_homology_valid.json"
    path.write_bytes(blob)
    parsed = check("TAPE JSON", path, lambda: tape_pipeline(read_json(path), str(path)))
    if parsed is not None:
        tokens, _ = parsed
        assert len(tokens) > 0 and int(np.diff(tokens.offsets).max()) <= 16


pickled = st.one_of(st.tuples(st.one_of(tape_record, plain), st.integers(0, 5)).map(lambda t: pickle.dumps(*t)),
                    st.binary(max_size=64))


@fuzz(60)
@given(values=st.lists(st.one_of(clean_record.map(pickle.dumps), pickled), max_size=4),
       count=st.one_of(st.none(), st.integers(-1, 4).map(pickle.dumps), pickled),
       cut=st.one_of(st.none(), st.integers(0, 3 * 4096)))
def test_tape_lmdb(tmp_path: Path, values: list[bytes], count: bytes | None, cut: int | None) -> None:
    import shutil

    import lmdb

    from fpt_bench_plugins.tasks.homology import read_lmdb

    folder = tmp_path / "remote_homology_valid.lmdb"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    env = lmdb.open(str(folder), map_size=1 << 22)
    with env.begin(write=True) as txn:
        txn.put(b"num_examples", pickle.dumps(len(values)) if count is None else count)
        for i, value in enumerate(values):
            txn.put(str(i).encode(), value)
    env.close()
    if cut is not None:  # a copy cut short (an interrupted cp): must never be a bus error
        data = folder / "data.mdb"
        data.write_bytes(data.read_bytes()[:cut])
    check("TAPE LMDB", folder, lambda: tape_pipeline(read_lmdb(folder), str(folder)))


# ------------------------------------------------------------------------------------------ TOML config
CONFIG_KEYS = ["tasks", "all_tasks", "suite", "task_args", "backbone", "backbone_args", "policy", "policy_args",
               "seeds", "profile", "device", "overwrite", "executor", "executor_args", "hparams", "sweep",
               "required_plugins", "progress", "deterministic", "log", "workers", "unknown_key"]
HPARAM_KEYS = ["steps", "batch_size", "lr", "grad_accum", "eval_every", "precision", "checkpoint_every", "typo"]
toml_scalars = st.one_of(st.booleans(), st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=False),
                         st.text(max_size=12), st.sampled_from(["bit_xor", "gpt2", "fpt", "smoke", "cpu", "quick"]))
toml_values = st.recursive(toml_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)), max_leaves=8)


@st.composite
def config_documents(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):  # a well-formed run configuration (values from their domains)
        clean: dict[str, Any] = {
            "tasks": draw(st.lists(st.sampled_from(["bit_xor", "bit_memory"]), min_size=1, max_size=2, unique=True)),
            "profile": draw(st.sampled_from(["smoke", "quick", "paper"])), "device": "cpu",
            "seeds": draw(st.lists(st.integers(0, 2**31), min_size=1, max_size=3, unique=True)),
            "backbone_args": {"weights": "random", "n_layers": draw(st.integers(1, 4))},
            "policy": draw(st.sampled_from(["fpt", "full", "output_only", "no_such_policy"])),
            "hparams": {"steps": draw(st.integers(1, 50)), "lr": draw(st.floats(1e-5, 1.0))},
            "deterministic": draw(st.booleans()), "overwrite": draw(st.sampled_from(["missing", "never", "always"])),
        }
        return tomli_w.dumps(clean).encode()
    doc: dict[str, Any] = {}
    for key in draw(st.lists(st.sampled_from(CONFIG_KEYS), max_size=6, unique=True)):
        doc[key] = draw(toml_values)
    if draw(st.booleans()):
        doc["tasks"], doc["profile"], doc["device"] = ["bit_xor"], "smoke", "cpu"
        doc["backbone_args"] = {"weights": "random", "n_layers": 1}
    if draw(st.booleans()):
        doc["hparams"] = {k: draw(toml_values) for k in draw(st.lists(st.sampled_from(HPARAM_KEYS), max_size=3))}
    return tomli_w.dumps(doc).encode()


@fuzz(150)
@given(blob=st.one_of(file_bytes(config_documents()), big(lambda: b"a = " + b"[" * 3000 + b"]" * 3000),
                      st.just(b"\xff\xfe not utf-8")))
def test_toml_config(tmp_path: Path, blob: bytes, monkeypatch: pytest.MonkeyPatch,
                     capsys: pytest.CaptureFixture[str]) -> None:
    """Through ``fpt-bench run --config FILE`` with the sweep itself stubbed out (a valid file would train)."""
    from fpt_bench.cells import sweep as executors
    from fpt_bench.cli import main

    monkeypatch.setattr(executors, "run_sweep", lambda *a, **k: executors.SweepSummary())
    path = tmp_path / "run.toml"
    path.write_bytes(blob)
    tally("fuzz cases", "TOML config")
    with bounded():
        code = main(["run", "--config", str(path)])  # anything but a UserError propagates: the test fails
    err = capsys.readouterr().err
    assert code in (0, 2) and "Traceback" not in err
    if code == 2:
        tally("fuzz refused (clear error)", "TOML config")
        assert str(path) in err, f"the error does not name {path}: {err}"
    else:
        tally("fuzz parsed", "TOML config")


# ------------------------------------------------------------------------------------------ result files
def result_json() -> dict[str, Any]:
    return json.loads(make_result("bit_xor", seed=0, test=0.75, val=0.75).model_dump_json())


valid_results = st.builds(
    lambda task, seed, test, val, steps, lr, status: make_result(task, seed=seed, test=test, val=val, steps=steps,
                                                                 lr=lr, status=status).model_dump_json().encode(),
    st.sampled_from(["bit_xor", "bit_memory", "some_plugin_task"]), st.integers(0, 2**31), st.floats(0, 1),
    st.floats(0, 1), st.integers(1, 1000), st.floats(1e-6, 1.0), st.sampled_from(["ok", "diverged", "failed"]),
)


@st.composite
def edited_results(draw: st.DrawFn) -> bytes:
    """A consistent result file with one to three JSON-level edits: a leaf replaced, a key deleted or added."""
    data = result_json()
    for _ in range(draw(st.integers(1, 3))):
        parent: Any = None
        key: Any = None
        node: Any = data
        while isinstance(node, dict | list) and node and (parent is None or draw(st.booleans())):
            key = draw(st.sampled_from(list(node) if isinstance(node, dict) else list(range(len(node)))))
            parent, node = node, node[key]
        if parent is None:
            continue
        op = draw(st.sampled_from(["replace", "delete", "add"]))
        if op == "replace":
            parent[key] = draw(st.one_of(json_values, st.just("<script>alert(1)</script>"), st.just(10**400)))
        elif op == "delete" and isinstance(parent, dict):
            del parent[key]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=6))] = draw(json_values)
    return json.dumps(data).encode()


def deeply_nested_result(depth: int) -> bytes:
    data, value = result_json(), 1
    for _ in range(depth):
        value = [value]
    data["cell"]["task_args"] = {"deep": value}
    return json.dumps(data).encode()


@fuzz(150)
@given(blob=st.one_of(valid_results, edited_results(), file_bytes(valid_results),
                      st.integers(100, 990).map(deeply_nested_result),
                      big(lambda: b"[" * 100_000), big(lambda: b'{"schema_version": ' + b"1" * 5000 + b"}")))
def test_result_files_offered_to_the_leaderboard(tmp_path: Path, blob: bytes) -> None:
    import shutil

    from fpt_bench.leaderboard.add import add_results
    from fpt_bench.leaderboard.validate import check_result_file

    offered = tmp_path / "offered.json"
    offered.write_bytes(blob)
    published = tmp_path / "published"
    shutil.rmtree(published, ignore_errors=True)
    tally("fuzz cases", "result file (--add)")
    with bounded():
        report = add_results([offered], published)  # must not raise, whatever the file holds
    if report.refused:
        tally("fuzz refused (clear error)", "result file (--add)")
        [reason] = report.refused
        assert str(offered) in reason and "Traceback" not in reason
    else:
        tally("fuzz parsed", "result file (--add)")
        [copy] = report.added
        check_result_file(copy)  # what was published is itself a valid, consistent result


# ------------------------------------------------------------------------------------------------ archives
def archive_blob(kind: str, names: list[str]) -> bytes:
    buffer = io.BytesIO()
    if kind == "zip":
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
            for name in names:
                zf.writestr(name, b"content of " + name.encode())
    else:
        with tarfile.open(fileobj=buffer, mode="w:gz" if kind == "tgz" else "w") as tar:
            for name in names:
                blob = b"content of " + name.encode()
                info = tarfile.TarInfo(name)
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
    return buffer.getvalue()


member_names = st.lists(st.sampled_from(["a.txt", "dir/b.txt", "../up.txt", "/abs.txt", "dir/../../up2.txt",
                                         "C:/win.txt", "./c.txt", "dir\\..\\..\\back.txt"]), min_size=1, max_size=3,
                        unique=True)


@fuzz(80)
@given(blob=file_bytes(st.builds(archive_blob, st.sampled_from(["tar", "tgz", "zip"]), member_names)))
def test_archives(tmp_path: Path, blob: bytes) -> None:
    import shutil

    from fpt_bench.datastore.archive import safe_extract

    archive = tmp_path / "pack.bin"
    archive.write_bytes(blob)
    dest = tmp_path / "root" / "dest"
    shutil.rmtree(tmp_path / "root", ignore_errors=True)
    dest.mkdir(parents=True)
    written = check("archive", archive, lambda: safe_extract(archive, dest))
    outside = [p for p in (tmp_path / "root").rglob("*") if not p.is_relative_to(dest)]
    assert outside == [] and not (tmp_path / "up.txt").exists() and not Path("/abs.txt").exists()
    for path in written or []:
        assert path.resolve().is_relative_to(dest.resolve())


@pytest.mark.parametrize("blob", [b"suites = " + b"[" * 3000 + b"]" * 3000, b"\xff\xfe", b"suites = 3",
                                  b"overrides = {run_args = {a = 1}}"])
def test_leaderboard_toml(tmp_path: Path, blob: bytes) -> None:
    from fpt_bench.leaderboard.page import load_config

    (tmp_path / "leaderboard.toml").write_bytes(blob)
    check("leaderboard.toml", tmp_path / "leaderboard.toml", lambda: load_config(tmp_path))
