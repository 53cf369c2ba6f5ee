"""The data store: checksums and their cache, atomic downloads (file:// URLs only: never the network), safe
archive extraction, import of copied files, the Arrow token cache, the restricted unpickler, ``fpt-bench data``
and a run whose data is missing."""

from __future__ import annotations

import codecs
import gzip
import hashlib
import io
import json
import os
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import write_tar

from fpt_bench import CorruptFileError, DataFile, DataMissingError, UserError
from fpt_bench.cli import main
from fpt_bench.datastore import files as store
from fpt_bench.datastore import safepickle
from fpt_bench.datastore.archive import safe_extract
from fpt_bench.datastore.cache import RaggedTokens, cached_tokens
from fpt_bench.datastore.download import download
from fpt_bench.datastore.importer import fetch_files, import_files

TINY = "weights=random,n_layers=1,n_embd=16,n_head=2"


def md5(blob: bytes) -> str:
    return hashlib.md5(blob).hexdigest()


def test_data_dir_resolution(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FPT_BENCH_DATA", str(tmp_path / "env"))
    assert store.resolve_data_dir(None) == tmp_path / "env"
    assert store.resolve_data_dir(tmp_path / "flag") == tmp_path / "flag"
    monkeypatch.delenv("FPT_BENCH_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert store.resolve_data_dir(None) == tmp_path / "cache" / "fpt-bench" / "data"


def test_file_states(tmp_path: Path) -> None:
    content = b"\x00\x00\x08\x01\x00\x00\x00\x02\x05\x06"
    gz = gzip.compress(content, mtime=0)
    (tmp_path / "a.gz").write_bytes(gz)
    recompressed = gzip.compress(content, compresslevel=1, mtime=12345)
    assert md5(recompressed) != md5(gz)
    (tmp_path / "b.gz").write_bytes(recompressed)
    (tmp_path / "c").write_bytes(content)  # only the decompressed sibling of c.gz
    (tmp_path / "d").write_bytes(b"other")
    files = [DataFile("a.gz", md5=md5(gz)), DataFile("b.gz", md5=md5(gz), content_md5=md5(content)),
             DataFile("c.gz", md5=md5(gz), content_md5=md5(content)), DataFile("d", md5=md5(b"x")),
             DataFile("e"), DataFile("d2", md5="")]
    (tmp_path / "d2").write_bytes(b"y")
    states = store.check_files(tmp_path, files)
    assert [s.state for s in states] == ["ok", "ok", "ok", "mismatch", "missing", "unchecked"]
    assert states[1].detail == "md5 of the decompressed content matches" and states[2].location == tmp_path / "c"
    assert states[3].detail == f"md5 {md5(b'other')}, expected {md5(b'x')}"
    with pytest.raises(DataMissingError) as err:
        store.require_files("demo", tmp_path, files)
    message = str(err.value)
    assert message.startswith("data missing for task 'demo': 1 of 6 file(s) missing, 1 with a wrong checksum")
    assert "fpt-bench data fetch" not in message  # these files have no download address: fetching cannot help
    assert "they have no download address: put them in place with `fpt-bench data import demo PATH`" in message
    with pytest.raises(DataMissingError) as err:
        store.require_files("demo", tmp_path, [DataFile("e", url="https://example.org/e")])
    assert "run `fpt-bench data fetch demo` (needs the network), or copy the files from elsewhere and run " \
           "`fpt-bench data import demo PATH`" in str(err.value)
    with pytest.raises(CorruptFileError, match="does not verify"):
        store.require_files("demo", tmp_path, files[3:4])


def test_checksums_are_cached_by_size_and_mtime(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "f").write_bytes(b"abc")
    file = DataFile("f", md5=md5(b"abc"))
    calls = []
    real = store.md5sum
    monkeypatch.setattr(store, "md5sum", lambda p, *a: calls.append(p) or real(p, *a))
    assert store.check_files(tmp_path, [file])[0].state == "ok"
    assert store.check_files(tmp_path, [file])[0].state == "ok"
    assert len(calls) == 1
    (tmp_path / "f").write_bytes(b"abd")
    assert store.check_files(tmp_path, [file])[0].state == "mismatch" and len(calls) == 2


def test_download_is_atomic_and_verified(tmp_path: Path) -> None:
    source = tmp_path / "remote.bin"
    source.write_bytes(b"payload" * 1000)
    dest = tmp_path / "data" / "x" / "file.bin"
    stream = io.StringIO()
    download(source.as_uri(), dest, md5(source.read_bytes()), stream=stream)
    assert dest.read_bytes() == source.read_bytes() and "file.bin" in stream.getvalue()
    with pytest.raises(CorruptFileError, match="has md5 .* expected 0{32}: it was discarded"):
        download(source.as_uri(), tmp_path / "data" / "bad.bin", "0" * 32, stream=stream)
    with pytest.raises(DataMissingError, match="could not download"):
        download((tmp_path / "absent").as_uri(), tmp_path / "data" / "absent.bin", stream=stream)
    left = sorted(p.name for p in (tmp_path / "data").rglob("*") if p.is_file())
    assert left == ["file.bin"]  # no partial file, no temporary left behind


def test_fetch_downloads_verifies_and_extracts_an_archive(tmp_path: Path) -> None:
    archive = tmp_path / "remote" / "pack.tar.gz"
    archive.parent.mkdir()
    members = {"pack/one.txt": b"one", "pack/two.txt": b"two", "pack/unwanted.txt": b"x"}
    with tarfile.open(archive, "w:gz") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    files = [DataFile(name, archive.as_uri(), md5(members[name]), archive="pack.tar.gz",
                      archive_md5=md5(archive.read_bytes())) for name in ("pack/one.txt", "pack/two.txt")]
    data = tmp_path / "data"
    states = fetch_files("demo", data, files, stream=io.StringIO())
    assert [s.state for s in states] == ["ok", "ok"]
    assert (data / "pack" / "two.txt").read_bytes() == b"two" and not (data / "pack" / "unwanted.txt").exists()
    assert (data / "downloads" / "pack.tar.gz").is_file()
    with pytest.raises(DataMissingError, match="no download address is known for a.bin"):
        fetch_files("demo", data, [DataFile("a.bin")])


@pytest.mark.parametrize("kind, message", [
    ("dotdot", "climbs out of the destination"),
    ("absolute", "has an absolute path"),
    ("symlink", "is a link"),
    ("zip", "climbs out of the destination"),
])
def test_extraction_refuses_escaping_members(tmp_path: Path, kind: str, message: str) -> None:
    dest = tmp_path / "dest"
    if kind == "zip":
        archive = tmp_path / "a.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("ok.txt", "fine")
            zf.writestr("../escaped.txt", "evil")
    else:
        bad = tarfile.TarInfo({"dotdot": "sub/../../escaped.txt", "absolute": str(tmp_path / "escaped.txt"),
                               "symlink": "link"}[kind])
        if kind == "symlink":
            bad.type, bad.linkname = tarfile.SYMTYPE, str(tmp_path / "escaped.txt")
        archive = write_tar(tmp_path / "a.tar", [tarfile.TarInfo("ok.txt"), bad])
    with pytest.raises(CorruptFileError) as err:
        safe_extract(archive, dest)
    assert str(archive) in str(err.value) and message in str(err.value)
    assert not (tmp_path / "escaped.txt").exists()


def test_extraction_of_selected_members_only(tmp_path: Path) -> None:
    archive = write_tar(tmp_path / "a.tar", [tarfile.TarInfo("x/keep.txt"), tarfile.TarInfo("x/other.txt")])
    written = safe_extract(archive, tmp_path / "d", {"x/keep.txt": "renamed/keep.txt"})
    assert written == [tmp_path / "d" / "renamed" / "keep.txt"] and written[0].read_bytes() == b"evil"
    assert sorted(p.name for p in (tmp_path / "d").rglob("*")) == ["keep.txt", "renamed"]
    with pytest.raises(CorruptFileError, match="does not contain x/absent.txt"):
        safe_extract(archive, tmp_path / "d", {"x/absent.txt": "absent.txt"})
    hostile = write_tar(tmp_path / "b.tar", [tarfile.TarInfo("x/keep.txt"), tarfile.TarInfo("../unwanted.txt")])
    with pytest.raises(CorruptFileError, match="climbs out"):  # a hostile archive is refused as a whole
        safe_extract(hostile, tmp_path / "e", {"x/keep.txt": "keep.txt"})


def test_import_matches_by_path_tail_and_records_the_source(tmp_path: Path) -> None:
    copy = tmp_path / "copy" / "nested"
    for split in ("train", "valid"):
        (copy / f"{split}.lmdb").mkdir(parents=True)
        (copy / f"{split}.lmdb" / "data.mdb").write_bytes(split.encode())
    files = [DataFile(f"task/{s}.lmdb/data.mdb", md5=md5(s.encode())) for s in ("train", "valid")]
    files.append(DataFile("task/extra.bin", md5=md5(b"extra")))
    data = tmp_path / "data"
    states = import_files("demo", data, files, tmp_path / "copy")
    assert [s.state for s in states] == ["ok", "ok", "missing"]
    assert (data / "task" / "valid.lmdb" / "data.mdb").read_bytes() == b"valid"
    manifest = json.loads((data / ".fpt-bench-manifest.json").read_text())["files"]
    assert manifest["task/train.lmdb/data.mdb"]["source"] == str(copy / "train.lmdb" / "data.mdb")
    assert manifest["task/train.lmdb/data.mdb"]["verified"] == "md5"
    (tmp_path / "extra.bin").write_bytes(b"not extra")
    with pytest.raises(CorruptFileError, match="rerun with --no-verify"):
        import_files("demo", data, files[2:], tmp_path / "extra.bin")
    assert not (data / "task" / "extra.bin").exists()
    (tmp_path / "wrong.bin").write_bytes(b"extra")  # the name must match what the task needs
    state = import_files("demo", data, files[2:], tmp_path / "extra.bin", verify=False)[0]
    assert state.state == "unverified" and str(tmp_path / "extra.bin") in state.detail
    with pytest.raises(DataMissingError, match="none of the files of task 'demo' are in"):
        import_files("demo", data, files[2:], tmp_path / "wrong.bin")
    with pytest.raises(UserError, match="does not exist"):
        import_files("demo", data, files, tmp_path / "nowhere")


def test_arrow_cache_hits_and_rebuilds(tmp_path: Path) -> None:
    built = []

    def build() -> RaggedTokens:
        built.append(1)
        return RaggedTokens.from_lists([np.array([1, 2, 3]), np.array([4])], [7, 8])

    first, info = cached_tokens(tmp_path, "demo", "train", {"md5": "a", "v": 1}, build)
    second, again = cached_tokens(tmp_path, "demo", "train", {"md5": "a", "v": 1}, build)
    assert (info["cache"], again["cache"], len(built)) == ("built", "hit", 1)
    x, lengths, y = second.padded()
    assert x.tolist() == [[1, 2, 3], [4, 0, 0]] and lengths.tolist() == [3, 1] and y.tolist() == [7, 8]
    (Path(info["cache_path"]) / "complete.json").write_text(json.dumps({"rows": 3, "tokens": 4}))
    assert cached_tokens(tmp_path, "demo", "train", {"md5": "a", "v": 1}, build)[1]["cache"] == "built"
    assert cached_tokens(tmp_path, "demo", "train", {"md5": "b", "v": 1}, build)[1]["cache"] == "built"
    assert len(built) == 3


def test_restricted_unpickler() -> None:
    plain = {"a": [1, 2.5, "s", b"b", (None, True)], "arr": np.arange(4, dtype=np.int16), "set": {1, 2}}
    back = safepickle.loads(pickle.dumps(plain), "x")
    assert back["arr"].tolist() == [0, 1, 2, 3] and back["set"] == {1, 2} and back["a"][3] == b"b"
    assert safepickle.loads(pickle.dumps(b"\xff\x00", protocol=2), "x") == b"\xff\x00"
    for evil in (os.system, eval, io.BytesIO):
        blob = pickle.dumps(evil)
        with pytest.raises(CorruptFileError, match="where: refusing to unpickle"):
            safepickle.loads(blob, "where")
    with pytest.raises(CorruptFileError, match="refusing to unpickle"):
        safepickle.loads(pickle.dumps(Rot13()), "where")


class Rot13:
    def __reduce__(self):  # noqa: ANN204 - _codecs.encode is admitted for latin-1 only
        return codecs.encode, ("text", "rot13")


def test_data_status_table_and_json(tmp_path: Path, capsys) -> None:
    data = str(tmp_path)
    assert main(["data", "status", "mnist", "bit_xor", "--data-dir", data]) == 0
    out = capsys.readouterr().out
    assert f"data directory: {data}" in out and "mnist" in out and "missing" in out and "generated" in out
    assert f"goes in {tmp_path / 'MNIST' / 'raw'}/" in out
    assert "train-images-idx3-ubyte.gz  md5 f68b3c2dcbeaaa9fbdd348bbdeb94873  https://" in out
    assert "fpt-bench data import TASK PATH" in out
    assert main(["data", "status", "--json", "--data-dir", data]) == 0
    rows = {r["task"]: r for r in json.loads(capsys.readouterr().out)["tasks"]}
    assert rows["cifar10"]["state"] == "missing" and rows["bit_memory"]["state"] == "generated"
    assert rows["cifar10"]["files"][0]["archive_md5"] == "c58f30108f718f92721af3b95e74349a"
    assert main(["data", "status", "no_such_task", "--data-dir", data]) == 2
    assert main(["data", "import", "mnist", str(tmp_path / "nowhere"), "--data-dir", data]) == 2
    assert main(["data", "import", "bit_xor", data, "--data-dir", data]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "does not exist" in err and "nothing to import" in err


def test_a_cell_without_data_fails_alone_with_the_fix(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    code = main(["run", "--task", "mnist", "--task", "bit_xor", "--backbone-args", TINY, "--profile", "smoke",
                 "--device", "cpu", "--output-dir", str(out), "--data-dir", str(tmp_path / "empty"),
                 "--no-progress"])
    captured = capsys.readouterr()
    assert code == 2 and "Traceback" not in captured.err
    assert "1 ok, 0 diverged, 1 failed" in captured.out
    results = {json.loads(p.read_text())["cell"]["task"]: json.loads(p.read_text()) for p in out.rglob("*.json")}
    assert results["bit_xor"]["status"] == "ok"
    failed = results["mnist"]
    assert failed["status"] == "failed" and failed["error_kind"] == "user"
    for needed in ("MNIST/raw/t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c",
                   "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz",
                   str(tmp_path / "empty" / "MNIST" / "raw"), "fpt-bench data fetch mnist"):
        assert needed in failed["error"] and needed in captured.err
    assert not (tmp_path / "empty").exists()  # checking does not create the data directory


def test_ragged_tokens_keep_every_id_in_the_smallest_type_that_holds_it(tmp_path: Path) -> None:
    small = RaggedTokens.from_lists([np.array([1, 255]), np.array([0])], [0, 1])
    wide = RaggedTokens.from_lists([np.array([1, 300, 70000])], [0])
    assert (small.values.dtype, wide.values.dtype) == (np.uint8, np.uint32)
    assert wide.values.tolist() == [1, 300, 70000]  # it wrapped to [1, 44, 112] when uint8 was the default
    tokens, _ = cached_tokens(tmp_path, "demo", "train", {"md5": "w"}, lambda: wide)
    again, info = cached_tokens(tmp_path, "demo", "train", {"md5": "w"}, lambda: wide)
    assert info["cache"] == "hit" and again.padded()[0].tolist() == [[1, 300, 70000]]
    with pytest.raises(ValueError, match="token ids 1..70000 do not fit in uint16"):
        RaggedTokens.from_lists([np.array([1, 70000])], [0], dtype=np.uint16)
