"""CIFAR-10 and CIFAR-10 LRA: python-version pickles (str and bytes keys), patching, grayscale, augmentation on
the device, broken twins (missing key, bad label, wrong shape, truncated, a pickle that calls a function)."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from fpt_bench import CorruptFileError
from fpt_bench.api.seeding import generator
from fpt_bench.datastore.importer import import_files
from fpt_bench.host.manager import get_host
from fpt_bench_plugins.tasks.image_augment import apply_affine, augment_params, patchify, unpatchify
from fpt_bench_plugins.tasks.vision import read_cifar_batch
from fpt_bench_plugins.tasks.vision_module import CIFAR_MEAN, CIFAR_STD, decode_cifar, lra_grayscale

BATCHES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch")


def batch_dict(n: int, seed: int, bytes_keys: bool = False) -> dict:
    rng = np.random.default_rng(seed)
    entry = {"batch_label": "training batch", "labels": [int(v) for v in rng.integers(0, 10, n)],
             "data": rng.integers(0, 256, (n, 3072)).astype(np.uint8), "filenames": [f"img{i}.png" for i in range(n)]}
    return {k.encode(): v for k, v in entry.items()} if bytes_keys else entry


def python2_style(entry: dict) -> bytes:
    """Protocol 2 with numpy's pre-2.0 module path, as the real (Python 2 era) files name it."""
    return pickle.dumps(entry, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def write_cifar_tar(path: Path, n: int = 4) -> dict[str, dict]:
    entries = {name: batch_dict(n, i, bytes_keys=i % 2 == 1) for i, name in enumerate(BATCHES)}
    with tarfile.open(path, "w:gz") as tar:
        for name, entry in entries.items():
            blob = python2_style(entry)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return entries


@pytest.mark.parametrize("bytes_keys", [False, True])
def test_reads_a_batch_with_str_or_bytes_keys(tmp_path: Path, bytes_keys: bool) -> None:
    entry = batch_dict(5, 1, bytes_keys)
    (tmp_path / "data_batch_1").write_bytes(python2_style(entry))
    x, y = read_cifar_batch(tmp_path / "data_batch_1")
    data = entry[b"data" if bytes_keys else "data"]
    assert x.shape == (5, 3, 32, 32) and x.dtype == np.uint8
    assert np.array_equal(x[2, 1], data[2, 1024:2048].reshape(32, 32))  # 1024 R, then G, then B; row-major
    assert y.tolist() == entry[b"labels" if bytes_keys else "labels"]


def test_cifar_patches_are_64_tokens_of_48_normalised() -> None:
    image = torch.arange(3 * 32 * 32).reshape(1, 3, 32, 32) % 256
    x = decode_cifar(image.to(torch.uint8))
    assert x.shape == (1, 64, 48)
    for c in range(3):
        for r, col in ((0, 0), (5, 9), (31, 31)):
            token, within = (r // 4) * 8 + col // 4, ((r % 4) * 4 + col % 4) * 3 + c  # (p1 p2 c)
            expected = (image[0, c, r, col].item() / 255 - CIFAR_MEAN[c]) / CIFAR_STD[c]
            assert x[0, token, within].item() == pytest.approx(expected, abs=1e-5)
    assert torch.equal(unpatchify(patchify(image.float(), 4), 3, 32, 4), image.float())


def test_lra_grayscale_formula() -> None:
    pixels = np.array([[255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255], [100, 150, 200], [0, 0, 0]])
    image = pixels.T.reshape(1, 3, 1, 6).astype(np.uint8)
    assert lra_grayscale(image).ravel().tolist() == [255, 76, 149, 29, 141, 0]


@pytest.mark.parametrize("breakage, message", [
    ("no_labels", "no 'labels' entry"),
    ("bad_label", "bad label 10 at index 2 (labels are 0..9)"),
    ("float_label", "'labels' must be integers 0..9"),  # 0.9 was truncated to 0 and trained on
    ("huge_label", "bad label 18446744073709551616 at index 1 (labels are 0..9)"),  # an OverflowError traceback
    ("inf_label", "'labels' must be integers 0..9"),
    ("shape", "'data' must be a uint8 array of shape (N, 3072)"),
    ("count", "3 labels for 4 images"),
    ("truncated", "truncated or damaged pickle"),
    ("not_dict", "expected a pickled dict, found list"),
])
def test_broken_batches(tmp_path: Path, breakage: str, message: str) -> None:
    entry = batch_dict(4, 0)
    if breakage == "no_labels":
        del entry["labels"]
    elif breakage == "bad_label":
        entry["labels"][2] = 10
    elif breakage in ("float_label", "huge_label", "inf_label"):
        entry["labels"][1] = {"float_label": 0.9, "huge_label": 2**64, "inf_label": float("inf")}[breakage]
    elif breakage == "shape":
        entry["data"] = entry["data"][:, :3000]
    elif breakage == "count":
        entry["labels"] = entry["labels"][:3]
    blob = python2_style([1, 2] if breakage == "not_dict" else entry)
    if breakage == "truncated":
        blob = blob[: len(blob) // 2]
    path = tmp_path / "data_batch_3"
    path.write_bytes(blob)
    with pytest.raises(CorruptFileError) as err:
        read_cifar_batch(path)
    assert str(path) in str(err.value) and message in str(err.value)


class CallsAFunction:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204 - what an attacker's pickle does
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_that_calls_a_function_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": CallsAFunction(marker), "labels": [1]}, protocol=2))
    with pytest.raises(CorruptFileError, match=r"refusing to unpickle: it refers to (posix|os)\.system") as err:
        read_cifar_batch(path)
    assert str(path) in str(err.value)
    assert not marker.exists()


def test_augmentation_pieces_are_exact() -> None:
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8) + 1
    none = torch.zeros(2, dtype=torch.bool)
    zero = torch.zeros(2)
    shifted = apply_affine(images, torch.tensor([[1, 0], [0, -2]]), none, zero)
    assert torch.equal(shifted[0, :, :, :7], images[0, :, :, 1:]) and (shifted[0, :, :, 7] == 0).all()
    assert torch.equal(shifted[1, :, 2:], images[1, :, :6]) and (shifted[1, :, :2] == 0).all()
    flipped = apply_affine(images, torch.zeros(2, 2, dtype=torch.long), ~none, zero)
    assert torch.equal(flipped, torch.flip(images, dims=[-1]))
    turned = apply_affine(images, torch.zeros(2, 2, dtype=torch.long), none, torch.full((2,), 90.0))
    assert torch.equal(turned, torch.rot90(images, k=1, dims=(-2, -1)))  # counter-clockwise, as torchvision
    fill = torch.tensor([-1.0, -2.0, -3.0])
    edge = apply_affine(images, torch.tensor([[4, 4], [4, 4]]), none, zero, fill)
    assert edge[0, :, -1, -1].tolist() == [-1.0, -2.0, -3.0]


def test_augmentation_is_batched_and_deterministic_per_generator() -> None:
    task = get_host().tasks.get("cifar10")
    options = task.options({})
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    x = decode_cifar(images)
    a = task.augment(x, generator(7), options)
    b = task.augment(x, generator(7), options)
    c = task.augment(x, generator(8), options)
    assert a.shape == (16, 64, 48) and torch.equal(a, b) and not torch.equal(a, c)
    shift, flips, angle = augment_params(1000, generator(0))
    assert shift.min() == -4 and shift.max() == 4 and 0.4 < flips.float().mean() < 0.6
    assert angle.abs().max() <= 20 and angle.abs().max() > 19
    pixels = (a[..., 0] * CIFAR_STD[0] + CIFAR_MEAN[0]) * 255  # nearest neighbour and black fill: still pixels
    assert (pixels - pixels.round()).abs().max() < 1e-3 and pixels.round().min() >= 0
    assert (pixels.round() == 0).float().mean() > (images[:, 0] == 0).float().mean()  # black borders appeared
    lra = get_host().tasks.get("cifar10_lra")
    gray = lra.augment(torch.rand(4, 1024, 1) * 2 - 1, generator(1), lra.options({}))
    assert gray.shape == (4, 1024, 1) and gray.min() >= -1 and gray.max() <= 1


def test_tasks_load_from_an_imported_archive(tmp_path: Path) -> None:
    entries = write_cifar_tar(tmp_path / "cifar-10-python.tar.gz")
    host = get_host()
    task = host.tasks.get("cifar10")
    options = task.options({"val_size": 2})
    states = import_files("cifar10", tmp_path / "data", task.data_files(options), tmp_path / "cifar-10-python.tar.gz",
                          verify=False)
    assert [s.state for s in states] == ["unverified"] * 6
    train, val, test = (task.load(s, options, tmp_path / "data") for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (18, 2, 4)
    assert val.y.tolist() == entries["data_batch_5"]["labels"][2:]  # str keys in even batches, bytes in odd
    assert test.y.tolist() == entries["test_batch"][b"labels"]
    assert train.batch(torch.arange(3)).x.shape == (3, 64, 48)
    lra = host.tasks.get("cifar10_lra")
    fpt = lra.load("test", lra.options({"val_size": 2}), tmp_path / "data")
    assert fpt.batch(torch.arange(4)).x.shape == (4, 1024, 1) and fpt.info["variant"] == "fpt"
    tokens_options = lra.options({"variant": "lra", "val_size": 2})
    tokens = lra.load("test", tokens_options, tmp_path / "data")
    batch = tokens.batch(torch.arange(4))
    assert batch.x.shape == (4, 1024) and batch.x.dtype == torch.long and tokens.info["variant"] == "lra"
    data = entries["test_batch"][b"data"].reshape(4, 3, 32, 32)
    assert batch.x[1].tolist() == lra_grayscale(data[1:2]).ravel().tolist()
    assert lra.resolve_spec(tokens_options).input.kind == "tokens"
    assert torch.equal(lra.augment(batch.x, generator(0), tokens_options), batch.x)  # LRA: no augmentation
