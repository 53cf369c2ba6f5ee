"""MNIST / Fashion-MNIST: IDX files (exact headers), 4x4 patching, broken twins, import and verification."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from fpt_bench import CorruptFileError, DataMissingError
from fpt_bench.cli import main
from fpt_bench.datastore.importer import import_files
from fpt_bench.host.manager import get_host
from fpt_bench_plugins.tasks.vision import read_idx, read_idx_pair
from fpt_bench_plugins.tasks.vision_module import decode_mnist

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def idx_bytes(array: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + \
        array.astype(np.uint8).tobytes()


def write_mnist(folder: Path, n_train: int = 12, n_test: int = 4, gz: bool = True) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {
        NAMES[0]: rng.integers(0, 256, (n_train, 28, 28)), NAMES[1]: np.arange(n_train) % 10,
        NAMES[2]: rng.integers(0, 256, (n_test, 28, 28)), NAMES[3]: (np.arange(n_test) + 3) % 10,
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        blob = idx_bytes(array)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(blob))
        else:
            (folder / name).write_bytes(blob)
    return arrays


def test_idx_header_is_the_real_layout(tmp_path: Path) -> None:
    images = np.zeros((3, 28, 28), dtype=np.uint8)
    blob = idx_bytes(images)
    assert blob[:16] == b"\x00\x00\x08\x03" + b"\x00\x00\x00\x03" + b"\x00\x00\x00\x1c" * 2
    labels = idx_bytes(np.array([7, 0, 9]))
    assert labels == b"\x00\x00\x08\x01\x00\x00\x00\x03\x07\x00\x09"
    (tmp_path / "l").write_bytes(labels)
    assert read_idx(tmp_path / "l", 1).tolist() == [7, 0, 9]


def test_mnist_patching_is_49_tokens_of_16_row_major() -> None:
    image = (np.arange(784) % 256).reshape(28, 28).astype(np.uint8)
    x = decode_mnist(torch.from_numpy(image)[None])
    assert x.shape == (1, 49, 16) and x.dtype == torch.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert torch.allclose(x[0, 0], torch.tensor([0, 1, 2, 3, 28, 29, 30, 31, 56, 57, 58, 59, 84, 85, 86, 87]) / 255)
    assert x[0, 8, 0].item() == pytest.approx(116 / 255)  # patch row 1, column 1 starts at pixel (4, 4)
    for r in range(28):
        for c in range(28):
            assert x[0, (r // 4) * 7 + c // 4, (r % 4) * 4 + c % 4] == image[r, c] / 255


@pytest.mark.parametrize("gz", [True, False])
def test_task_loads_splits_after_import(tmp_path: Path, gz: bool) -> None:
    arrays = write_mnist(tmp_path / "copy", gz=gz)
    task = get_host().tasks.get("mnist")
    options = task.options({"val_size": 2})
    data = tmp_path / "data"
    with pytest.raises(DataMissingError, match="fpt-bench data import mnist"):
        task.prepare(data, False, options)
    if gz:  # a fixture is not the real file: it does not verify, and says so
        with pytest.raises(CorruptFileError, match="do not verify") as err:
            import_files("mnist", data, task.data_files(options), tmp_path / "copy")
        assert "train-images-idx3-ubyte" in str(err.value) and "--no-verify" in str(err.value)
    states = import_files("mnist", data, task.data_files(options), tmp_path / "copy", verify=False)
    # MNIST publishes md5s of the .gz files only: a decompressed copy is present but unchecked
    assert {s.state for s in states} == ({"unverified"} if gz else {"unchecked"})
    task.prepare(data, False, options)
    train, val, test = (task.load(s, options, data) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (10, 2, 4)
    assert torch.equal(train.x, torch.from_numpy(arrays[NAMES[0]][:10].astype(np.uint8)))
    assert val.y.tolist() == [0, 1] and test.y.tolist() == [3, 4, 5, 6]
    batch = test.batch(torch.arange(4))
    assert batch.x.shape == (4, 49, 16) and batch.y.dtype == torch.long
    assert train.info["files"]["MNIST/raw/train-images-idx3-ubyte.gz"]["state"] == states[0].state


@pytest.mark.parametrize("breakage, message", [
    ("magic", "wrong magic number 0x00000804, expected 0x00000803"),
    ("truncated", "truncated: 1560 data bytes for shape (2, 28, 28), expected 1568"),
    ("trailing", "has trailing bytes"),
    ("gzip", "truncated or damaged gzip file"),
    ("short", "shorter than the IDX magic number"),
])
def test_broken_image_files(tmp_path: Path, breakage: str, message: str) -> None:
    blob = idx_bytes(np.zeros((2, 28, 28)))
    path = tmp_path / "train-images-idx3-ubyte"
    if breakage == "magic":
        blob = b"\x00\x00\x08\x04" + blob[4:]
    elif breakage == "truncated":
        blob = blob[:-8]
    elif breakage == "trailing":
        blob += b"\x00"
    elif breakage == "short":
        blob = b"\x00\x00"
    if breakage == "gzip":
        path = path.with_suffix(".gz")
        blob = gzip.compress(blob)[:-20]
    path.write_bytes(blob)
    with pytest.raises(CorruptFileError) as err:
        read_idx(path, 3)
    assert str(path) in str(err.value) and message in str(err.value)


def test_bad_label_and_count_mismatch(tmp_path: Path) -> None:
    (tmp_path / "i").write_bytes(idx_bytes(np.zeros((3, 28, 28))))
    (tmp_path / "l").write_bytes(idx_bytes(np.array([1, 10, 2])))
    with pytest.raises(CorruptFileError, match=r"l: bad label 10 at index 1 \(labels are 0..9\)"):
        read_idx_pair(tmp_path / "i", tmp_path / "l", 28, 10)
    (tmp_path / "l").write_bytes(idx_bytes(np.array([1, 2])))
    with pytest.raises(CorruptFileError, match="2 labels for 3 images"):
        read_idx_pair(tmp_path / "i", tmp_path / "l", 28, 10)


def test_broken_file_through_the_cli_exits_2_without_traceback(tmp_path: Path, capsys) -> None:
    write_mnist(tmp_path / "copy")
    (tmp_path / "copy" / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.array([1, 2, 3, 11]))))
    data = str(tmp_path / "data")
    assert main(["data", "import", "mnist", str(tmp_path / "copy"), "--data-dir", data, "--no-verify"]) == 0
    code = main(["run", "--task", "mnist", "--task-args", "val_size=2", "--backbone-args",
                 "weights=random,n_layers=1,n_embd=16,n_head=2", "--profile", "smoke", "--device", "cpu",
                 "--output-dir", str(tmp_path / "out"), "--data-dir", data, "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "t10k-labels-idx1-ubyte.gz: bad label 11 at index 3" in err


@pytest.mark.skipif(not DEBIAN.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_debian_fashion_mnist_imports_and_verifies(tmp_path: Path) -> None:
    task = get_host().tasks.get("fashion_mnist")
    options = task.options({})
    states = import_files("fashion_mnist", tmp_path, task.data_files(options), DEBIAN)
    assert [s.state for s in states] == ["ok"] * 4
    assert all("decompressed content" in s.detail for s in states)
    test = task.load("test", options, tmp_path)
    assert test.x.shape == (10_000, 28, 28)
    assert torch.bincount(test.y).tolist() == [1000] * 10
