"""Hostile inputs of the classes an adversarial review found (issue 18), one test per class, each written from
the failure's description rather than only its example:

1. numpy-shaped pickles that forge pointers or ask for memory they do not hold: refused, never a signal;
2. decompression bombs: decompression stops where the header says;
3. an empty evaluation split: the cell fails with a user error, it is never scored;
5. a result file naming a path outside its folder: refused;
7. special files (fifos, devices, folders) where a file is expected: one clear error, never a hang.

Loading a forged pickle could kill the process, so the loaders run in a child process here: a signal fails the
test with the child's output instead of taking pytest down."""

from __future__ import annotations

import functools
import gzip
import json
import os
import pickle
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from hostile_support import (
    BUILD,
    FALSE,
    MARK,
    STOP,
    TUPLE,
    dtype,
    forged_object_array,
    glob,
    hostile_numpy_pickles,
    integer,
)
from lb_support import make_result, write
from reliability_support import tally, within
from test_data_idx import idx_bytes, write_mnist

from fpt_bench import CorruptFileError, UserError
from fpt_bench.datastore import safepickle

TINY = "weights=random,n_layers=1,n_embd=16,n_head=2"


def child(script: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=timeout)




# ----------------------------------------------------------------------------------------------- 1. pickles
LOADERS = r"""
import pickle, resource, sys
from pathlib import Path
import lmdb
from fpt_bench import CorruptFileError
from fpt_bench_plugins.tasks.homology import read_lmdb
from fpt_bench_plugins.tasks.vision import read_cifar_batch

before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for name in sys.argv[1:]:
    path = Path(name)
    folder = path.with_suffix(".lmdb")
    env = lmdb.open(str(folder), map_size=1 << 26)
    with env.begin(write=True) as txn:
        txn.put(b"num_examples", pickle.dumps(1))
        txn.put(b"0", path.read_bytes())
    env.close()
    for how, load in (("cifar", lambda: read_cifar_batch(path)), ("tape", lambda: read_lmdb(folder))):
        print("TRY", how, path.name, flush=True)
        try:
            print("LOADED", how, path.name, repr(load())[:100], flush=True)  # repr touches every element
        except CorruptFileError as exc:
            print("REFUSED", how, path.name, str(exc).replace(chr(10), " "), flush=True)
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print("GREW_KB", grown, flush=True)
"""


def test_forged_object_array_is_live_under_a_plain_unpickler(tmp_path: Path) -> None:
    """The issue's payload kills a process that unpickles it without restriction and prints it (so the refusal
    below proves something)."""
    path = tmp_path / "forged"
    path.write_bytes(forged_object_array())
    proc = child("import pickle, sys; print(repr(pickle.loads(open(sys.argv[1], 'rb').read())))", str(path))
    assert proc.returncode < 0, (proc.returncode, proc.stdout, proc.stderr)  # killed by a signal (SIGSEGV)


def test_hostile_numpy_pickles_are_refused_and_never_crash(tmp_path: Path) -> None:
    """Forged dtypes (object, void with an object field, a lying item size, a subarray), arrays whose shape asks
    for memory the file does not hold, ndarray called directly, an object scalar, one object reused to multiply
    memory (arrays, _codecs.encode, set()) and deep nesting: as a CIFAR batch and as a TAPE LMDB record, each is
    a CorruptFileError that says it refuses to unpickle; the child process never dies and barely grows."""
    cases = hostile_numpy_pickles()
    paths = []
    for i, blob in enumerate(cases.values()):
        paths.append(tmp_path / f"case{i}")
        paths[-1].write_bytes(blob)
    proc = child(LOADERS, *map(str, paths))
    assert proc.returncode == 0, f"the loader died ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    lines = proc.stdout.splitlines()
    for i, name in enumerate(cases):
        for how in ("cifar", "tape"):
            [line] = [x for x in lines if x.startswith(("REFUSED", "LOADED")) and x.split()[1:3] == [how, f"case{i}"]]
            assert line.startswith("REFUSED") and "refusing to unpickle" in line, (name, how, line)
            assert str(paths[i].with_suffix(".lmdb") if how == "tape" else paths[i]) in line, line
    grown_mb = int(next(x for x in lines if x.startswith("GREW_KB")).split()[1]) / 1024
    assert grown_mb < 64, f"refusing the payloads grew the process by {grown_mb:.0f} MB"
    tally("untrusted inputs refused", "forged numpy pickles (CIFAR + TAPE LMDB)", 2 * len(cases))


def py2_str(raw: bytes) -> bytes:
    """A Python 2 ``str`` (BINSTRING): what CIFAR's original pickles hold; read back with latin-1 as a str."""
    return b"T" + struct.pack("<I", len(raw)) + raw


def test_real_world_numpy_pickles_still_load() -> None:
    """What the restriction must keep: every plain dtype at protocols 0-5, both byte orders, Fortran order, empty
    and 0-d arrays, strings, numpy scalars, and CIFAR's own Python 2 layout (latin-1 str data)."""
    values = {"u1": np.arange(12, dtype=np.uint8).reshape(3, 4), "be": np.arange(3, dtype=">i4"),
              "le": np.arange(3, dtype="<f8"), "f2": np.ones(2, np.float16), "c": np.array([1 + 2j]),
              "bool": np.array([True, False]), "U": np.array(["ab", "c"]), "S": np.array([b"xy"]),
              "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)), "empty": np.zeros((0, 3)),
              "zero_d": np.array(5), "scalar": np.int64(-7), "shared": [np.arange(2)] * 2}
    for protocol in range(6):
        back = safepickle.loads(pickle.dumps(values, protocol=protocol), "x")
        for key, want in values.items():
            got = back[key]
            if key == "shared":
                assert got[0] is got[1]  # one object pickled once stays one object
                continue
            assert type(got) is type(want) and got.dtype == want.dtype and np.array_equal(got, want), key
            if isinstance(got, np.ndarray):
                assert got.flags.writeable and got.flags.f_contiguous == want.flags.f_contiguous, key
    big = np.random.default_rng(0).integers(0, 256, (700, 3072), dtype=np.uint8)  # 2 MB: beyond any slack
    for protocol in range(6):  # at protocol 2 its bytes travel as a str through _codecs.encode, then are copied
        assert np.array_equal(safepickle.loads(pickle.dumps({"data": big}, protocol=protocol), "big")["data"], big)
    raw = bytes(range(256)) * 12  # 3072 bytes: one CIFAR image, every byte value (latin-1 round trip)
    cifar = (b"\x80\x02" + b"}" + b"U\x04data" + glob("numpy.core.multiarray", "_reconstruct")
             + glob("numpy", "ndarray") + integer(0) + b"\x85" + b"U\x01b" + b"\x87R" + MARK + integer(1)
             + MARK + integer(1) + b"M\x00\x0c" + TUPLE + dtype("u1") + FALSE + py2_str(raw) + TUPLE + BUILD
             + b"s" + STOP)
    back = safepickle.loads(cifar, "cifar", encoding="latin1")
    assert back["data"].shape == (1, 3072) and back["data"].tobytes() == raw


# -------------------------------------------------------------------------------------------- 2. bombs
BOMB = r"""
import resource, sys
from pathlib import Path
from fpt_bench import CorruptFileError
from fpt_bench_plugins.tasks.vision import read_idx, read_idx_pair
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
args = [Path(a) for a in sys.argv[1:]]
try:
    read_idx(args[0], 3) if len(args) == 1 else read_idx_pair(args[0], args[1], 28, 10)
    print("LOADED")
except CorruptFileError as exc:
    print("REFUSED", exc)
print("GREW_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


@functools.cache
def zeros_member(megabytes: int) -> bytes:
    """A gzip member of ``megabytes`` MiB of zeros (about 1 KiB per MiB), compressed once per test run."""
    out = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    return b"".join(out.compress(block) for _ in range(megabytes)) + out.flush()


def gzip_bomb(header: bytes, real: bytes, zeros_mb: int) -> bytes:
    """A gzip file of ``header + real`` followed by ``zeros_mb`` MiB of zeros (a second member, which gzip
    readers continue into)."""
    return gzip.compress(header + real) + zeros_member(zeros_mb)


def idx_header(*dims: int) -> bytes:
    return bytes([0, 0, 0x08, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


@pytest.mark.parametrize("case", ["trailing bomb", "header promises more than memory", "labels bound the images"])
def test_gzip_bomb_stops_where_the_header_says(tmp_path: Path, case: str) -> None:
    """A 0.5 MB .gz IDX file that inflates to 512 MiB: its header says 10 images (7,840 bytes), so reading stops
    there ("trailing bytes"); a header promising 2^32-1 images is refused before anything is inflated; a header
    promising more images than the labels file has labels is refused before the pixels are read. The reader's
    memory never grows with the bomb."""
    images = tmp_path / "train-images-idx3-ubyte.gz"
    labels = tmp_path / "train-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(idx_bytes(np.arange(10) % 10)))
    count = {"trailing bomb": 10, "header promises more than memory": 2**32 - 1, "labels bound the images": 60000}
    images.write_bytes(gzip_bomb(idx_header(count[case], 28, 28), bytes(7840), 512))
    assert images.stat().st_size < 1 << 20
    proc = child(BOMB, *([str(images)] if case != "labels bound the images" else [str(images), str(labels)]))
    assert proc.returncode == 0, proc.stderr[-2000:]
    expected = {"trailing bomb": "has trailing bytes", "header promises more than memory": "of memory free here",
                "labels bound the images": "10 labels for 60000 images"}[case]
    assert proc.stdout.startswith("REFUSED") and expected in proc.stdout, proc.stdout
    grown_mb = int(proc.stdout.split("GREW_KB")[1]) / 1024
    assert grown_mb < 64, f"reading the bomb grew the process by {grown_mb:.0f} MB"
    tally("untrusted inputs refused", "decompression bombs", 1)


def test_archive_member_longer_than_its_header_is_refused(tmp_path: Path) -> None:
    """A zip member whose headers declare 100 bytes but whose data inflates to 1 MiB: refused, nothing kept."""
    from fpt_bench.datastore.archive import safe_extract

    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.bin", bytes(1 << 20))
    raw = bytearray(archive.read_bytes())
    raw[22:26] = struct.pack("<I", 100)  # the local header's uncompressed size
    central = raw.index(b"PK\x01\x02")
    raw[central + 24:central + 28] = struct.pack("<I", 100)  # and the central directory's
    archive.write_bytes(raw)
    with pytest.raises(CorruptFileError, match="damaged or unsupported archive: member .a.bin. cannot be read"):
        safe_extract(archive, tmp_path / "out")
    assert not list((tmp_path / "out").rglob("*")) if (tmp_path / "out").exists() else True
    tally("untrusted inputs refused", "decompression bombs", 1)


# ------------------------------------------------------------------------------------ 3. empty splits
def test_empty_idx_test_split_fails_the_cell(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's case: an IDX test split with 0 images gave status ok and test_accuracy 0.0."""
    write_mnist(tmp_path / "copy", n_train=12, n_test=0)
    data = str(tmp_path / "data")
    assert run_cli("data", "import", "mnist", str(tmp_path / "copy"), "--data-dir", data, "--no-verify")[0] == 0
    code, _, err = run_cli("run", "--task", "mnist", "--task-args", "val_size=2", "--backbone-args", TINY,
                           "--profile", "smoke", "--steps", "2", "--device", "cpu", "--output-dir",
                           str(tmp_path / "out"), "--data-dir", data, "--no-progress", capsys=capsys)
    assert code == 2 and "Traceback" not in err and "the 'test' split has no examples" in err
    [path] = list((tmp_path / "out").rglob("*.json"))
    result = json.loads(path.read_text())
    assert result["status"] == "failed" and result["error_kind"] == "user"
    assert result["metrics"]["test_accuracy"] is None


def test_empty_validation_split_of_any_task_fails_the_cell(tmp_path: Path) -> None:
    """Not only IDX files: a task whose validation split comes back empty (here a generated task) fails the
    cell with a user error naming the split, before any training."""
    from fpt_bench import SplitData, hookimpl
    from fpt_bench.api.cell import CellConfig
    from fpt_bench.api.hparams import HParamOverrides
    from fpt_bench.cells.context import RunContext
    from fpt_bench.cells.profiles import resolve_hparams
    from fpt_bench.cells.runner import run_cell
    from fpt_bench.host.manager import Host
    from fpt_bench_plugins.tasks.bits import BitXOR

    class EmptyVal(BitXOR):
        spec = BitXOR.spec.model_copy(update={"name": "empty_val_xor"})

        def load(self, split, options, data_dir):  # type: ignore[no-untyped-def]
            full = super().load(split, options, data_dir)
            return SplitData(full.x[:0], full.y[:0]) if split == "val" else full

    class Plugin:
        @hookimpl
        def fpt_bench_register_tasks(self, registry) -> None:  # type: ignore[no-untyped-def]
            registry.add(EmptyVal())

    host = Host(strict=True).load_entry_points()
    host.register(Plugin(), "empty-val")
    hparams = resolve_hparams(EmptyVal.spec, "smoke", HParamOverrides(steps=2))
    cell = CellConfig(task="empty_val_xor", backbone="gpt2", backbone_args=dict(
        kv.split("=") for kv in TINY.split(",")), policy="fpt", seed=0, profile="smoke", hparams=hparams)
    ctx = RunContext(device="cpu", data_dir=tmp_path, output_dir=tmp_path, progress=False, plugin_host=host)
    result = run_cell(cell, tmp_path / "r.json", ctx)
    assert result.status == "failed" and result.error_kind == "user"
    assert result.error == ("task 'empty_val_xor': the 'val' split has no examples; check the task's data files "
                            "(`fpt-bench data status empty_val_xor`) and its options")


# ----------------------------------------------------------------------------------- 5. confined paths
@pytest.mark.parametrize("name", ["/etc/passwd.backbone.safetensors", "../x.backbone.safetensors",
                                  "sub/x.backbone.safetensors", "..\\x.backbone.safetensors",
                                  "~root/x.backbone.safetensors", "x.safetensors", "link.backbone.safetensors"])
def test_a_result_file_cannot_point_the_loader_outside_its_folder(tmp_path: Path, name: str) -> None:
    """``weights=result:R.json`` follows ``provenance.saved_backbone`` only to a plain backbone file name in the
    result's own folder (an absolute path, a climb, a sub-folder, a home folder, another suffix, or a symbolic
    link out are refused); the leaderboard refuses such a result as well."""
    from fpt_bench.api.weights import checkpoint_file, parse_weights
    from fpt_bench.leaderboard.validate import provenance_problems

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "x.backbone.safetensors").write_bytes(b"secret")
    result = make_result()
    result.provenance.saved_backbone = name
    path = write(tmp_path / "results", result)
    (path.parent / "link.backbone.safetensors").symlink_to(outside / "x.backbone.safetensors")
    with pytest.raises(CorruptFileError, match="refusing to follow it") as err:
        checkpoint_file(parse_weights(f"result:{path}"))
    assert str(path) in str(err.value)
    if name != "link.backbone.safetensors":  # a plain name: the file's content is judged when it is opened
        assert any("saved_backbone" in p for p in provenance_problems(result))
    tally("untrusted inputs refused", "paths a result names", 1)


# ---------------------------------------------------------------------------------------- 7. special files
@pytest.fixture
def specials(tmp_path: Path) -> dict[str, Path]:
    """A fifo named like a result file, a .json symlink to /dev/zero, and a folder named like a file."""
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.json"
    zero.symlink_to("/dev/zero")
    folder = tmp_path / "folder.json"
    folder.mkdir()
    return {"fifo": fifo, "/dev/zero": zero, "folder": folder}


def test_special_files_given_to_the_leaderboard_are_refused_at_once(
        tmp_path: Path, specials: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """``leaderboard --add X`` and ``leaderboard X`` for a fifo (hung before), a symlink to /dev/zero (a
    MemoryError before) and a folder named like a file: exit 2 with the file named, within seconds."""
    for kind, path in specials.items():
        with within(30):
            code, _, err = run_cli("leaderboard", "--add", str(path), "--publish", str(tmp_path / "lb"),
                                   capsys=capsys)
        assert code == 2 and str(path) in err and "Traceback" not in err, (kind, err)
        if kind != "folder":
            with within(30):
                code, out, err = run_cli("leaderboard", str(path), capsys=capsys)
            assert code == 2 and str(path) in err and "regular" in err, (kind, out, err)
    tally("untrusted inputs refused", "special files (leaderboard)", 2 * len(specials) - 1)


def test_special_files_as_configs_and_data_are_refused_at_once(
        tmp_path: Path, specials: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """The same files as a run config, as leaderboard.toml, and as data files (a CIFAR batch, an IDX file, a
    ListOps TSV): one clear error each, never a hang."""
    from fpt_bench_plugins.tasks.listops import read_tsv
    from fpt_bench_plugins.tasks.vision import read_cifar_batch, read_idx

    for kind, path in specials.items():
        with within(30):
            code, _, err = run_cli("run", "--config", str(path), capsys=capsys)
        assert code == 2 and str(path) in err and "Traceback" not in err, (kind, err)
        board = tmp_path / f"board-{kind.strip('/').replace('/', '-')}"
        board.mkdir()
        (board / "leaderboard.toml").symlink_to(path)
        with within(30):
            code, _, err = run_cli("leaderboard", "--publish", str(board), capsys=capsys)
        assert code == 2 and "leaderboard.toml" in err and "Traceback" not in err, (kind, err)
        for read in (read_cifar_batch, lambda p: read_idx(p, 1), read_tsv):
            with within(30), pytest.raises(UserError, match="not a regular"):
                read(path)
    tally("untrusted inputs refused", "special files (configs, data)", 5 * len(specials))


def test_a_header_promise_must_fit_twice(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A loader holds what it read and the array made of it: a promise of 60 % of free memory passed a 1x check,
    then the process peaked at 1.85x and was killed."""
    from fpt_bench.datastore import bounded
    from fpt_bench.datastore.bounded import check_promise

    monkeypatch.setattr(bounded, "available_memory", lambda: 1500)
    check_promise(tmp_path / "f.gz", 750, "pixels")
    with pytest.raises(CorruptFileError, match=r"f.gz: its header promises 1000 bytes of pixels; 2 copies of that "
                                               r"are more than the 1500 bytes of memory free here"):
        check_promise(tmp_path / "f.gz", 1000, "pixels")


def test_zip_members_zipfile_cannot_read_and_huge_toml_integers_are_one_message(tmp_path: Path) -> None:
    import io
    import zipfile

    from fpt_bench.cells.config import load_config_file
    from fpt_bench.datastore.archive import safe_extract

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("a.bin", b"x" * 100)
    data = bytearray(buf.getvalue())
    data[8] = 99  # compression method 99 (AES) in the local and the central header: NotImplementedError
    data[data.rfind(b"PK\x01\x02") + 10] = 99
    (tmp_path / "m99.zip").write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="m99.zip: damaged or unsupported archive"):
        safe_extract(tmp_path / "m99.zip", tmp_path / "out")
    (tmp_path / "big.toml").write_text("seeds = [" + "9" * 5000 + "]\n")
    with pytest.raises(UserError, match="big.toml is not valid TOML: Exceeds the limit"):
        load_config_file(tmp_path / "big.toml")
    tally("hostile inputs handled", "zip methods and TOML integers beyond the readers", 2)


def test_paths_the_os_cannot_take_are_one_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fpt_bench.cli import main

    config = tmp_path / "nul.toml"
    config.write_text('tasks = ["bit_xor"]\noutput_dir = "a\\u0000b"\nprofile = "smoke"\n'
                      '[backbone_args]\nweights = "random"\nn_layers = 1\nn_embd = 16\nn_head = 2\n')
    assert main(["run", "--config", str(config)]) == 2
    assert capsys.readouterr().err == ("fpt-bench: error: a path (an option, a config file's value or an environment "
                                       "variable) contains a NUL byte\n")
    assert main(["data", "status", "mnist", "--data-dir", "~no-such-user-here/data"]) == 2
    assert "a path starts with ~USER for a user this machine does not know" in capsys.readouterr().err
    tally("hostile inputs handled", "paths with NUL bytes or unknown ~users", 2)


def test_an_archive_member_larger_than_the_free_disk_is_refused_before_writing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil
    import tarfile

    from fpt_bench.datastore import archive as archive_module
    from fpt_bench.datastore.archive import safe_extract

    source = tmp_path / "big.bin"
    source.write_bytes(b"\0" * 100_000)
    with tarfile.open(tmp_path / "b.tar.bz2", "w:bz2") as tar:
        tar.add(source, arcname="train-images-idx3-ubyte")
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(archive_module.shutil, "disk_usage", lambda p: usage._replace(free=50_000))
    with pytest.raises(CorruptFileError, match="member 'train-images-idx3-ubyte' declares 100000 bytes, more than "
                                               "the 50000 bytes free"):
        safe_extract(tmp_path / "b.tar.bz2", tmp_path / "out")
    assert not (tmp_path / "out" / "train-images-idx3-ubyte").exists()
    tally("hostile inputs handled", "archive members larger than the free disk", 1)
