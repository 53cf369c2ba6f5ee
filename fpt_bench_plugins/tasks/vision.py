"""Image tasks of the paper: MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-10 LRA, read from the original files.

- ``mnist`` / ``fashion_mnist``: IDX files (torchvision layout ``MNIST/raw``, ``FashionMNIST/raw``; ``.gz`` or
  decompressed). 28x28 pixels in [0, 1], cut into 4x4 patches: 49 tokens of 16 (the reference code's layout).
- ``cifar10``: the python-version pickles (``cifar-10-batches-py``), 4x4 patches of RGB: 64 tokens of 48,
  normalised with the paper's mean/std; training batches get crop(pad 4) + flip + rotation(20) on the device.
- ``cifar10_lra``: option ``variant=fpt`` (default; the paper's): continuous grayscale in [-1, 1], one pixel
  per token (1024 x 1), same augmentation; ``variant=lra`` (Long Range Arena's): 256 grayscale tokens, no
  augmentation.

Splits: ``train`` is the training file minus its last ``val_size`` images (5,000), ``val`` those last images
(LRA's 45k/5k for CIFAR), ``test`` the whole test file. Pixels are kept as uint8 and decoded per batch.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from fpt_bench import (
    Continuous,
    CorruptFileError,
    DataFile,
    DataMissingError,
    HParamOverrides,
    OutputSpec,
    PaperHParams,
    SplitData,
    Task,
    TaskSpec,
    Tokens,
    UserError,
    hookimpl,
)
from fpt_bench.api.files import (
    DECOMPRESS_ERRORS,
    FileState,
    at_end,
    check_promise,
    files_provenance,
    load_plain_pickle,
    open_data,
    open_regular,
    prepare_files,
    read_upto,
    require_files,
)

if TYPE_CHECKING:  # numpy and torch are imported when a split is read: listing the plugins loads without them
    import numpy as np
    import torch

CITATION = "Lu, Grover, Abbeel, Mordatch. Pretrained Transformers as Universal Computation Engines. 2021."
# quick on a 2-core CPU: the whole 10,000-image test pass dominates (GPT-2 base, fp32), so train 200 steps and
# validate once, at the end (one test pass: the selected step is the last)
QUICK = HParamOverrides(steps=200, batch_size=8, eval_every=200)
# smoke: 49-64 tokens an image; 2 images a step and 16 to evaluate keep a GPT-2 base cell in seconds on a CPU
SMOKE = HParamOverrides(batch_size=2, val_examples=16, test_examples=16)


class VisionOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    val_size: int = Field(default=5000, gt=0, description="last training images held out for validation")


# ------------------------------------------------------------------------------------------------ IDX
def read_idx(path: Path, ndim: int, expect: Callable[[tuple[int, ...]], None] | None = None) -> np.ndarray:
    """An IDX file (optionally gzipped) of unsigned bytes with ``ndim`` dimensions (``expect`` may refuse the
    header's shape before the data is read). The header says how many bytes follow; a ``.gz`` file is
    decompressed that far and no further (a gzip bomb stops there), a plain file's size is checked first."""
    import numpy as np

    try:
        with open_data(path, "IDX file") as handle:
            header = read_upto(handle, 4 + 4 * ndim)
            dims = _idx_dims(path, header, ndim)
            if expect is not None:
                expect(dims)
            need = math.prod(dims)  # exact: np.prod would wrap around int64 for a forged header
            if path.suffix == ".gz":
                check_promise(path, need, "pixels")
            else:
                _check_size(path, os.fstat(handle.fileno()).st_size - len(header), need, dims)
            raw = read_upto(handle, need)
            if len(raw) < need:
                raise CorruptFileError(f"{path}: truncated: {len(raw)} data bytes for shape {dims}, expected {need}")
            if not at_end(handle):
                raise CorruptFileError(f"{path}: has trailing bytes after the {need} data bytes of shape {dims}")
    except DECOMPRESS_ERRORS as exc:
        what = "truncated or damaged gzip file" if path.suffix == ".gz" else "cannot be read"
        raise CorruptFileError(f"{path}: {what} ({exc})") from None
    return np.frombuffer(raw, dtype=np.uint8).reshape(dims)


def _idx_dims(path: Path, header: bytes, ndim: int) -> tuple[int, ...]:
    expected_magic = 0x0800 | ndim
    if len(header) < 4:
        raise CorruptFileError(f"{path}: truncated: {len(header)} bytes, shorter than the IDX magic number")
    magic = int.from_bytes(header[:4], "big")
    if header[0] or header[1] or header[2] != 0x08 or header[3] != ndim:
        raise CorruptFileError(f"{path}: wrong magic number 0x{magic:08x}, expected 0x{expected_magic:08x} "
                               f"(an IDX file of unsigned bytes with {ndim} dimension(s))")
    if len(header) < 4 + 4 * ndim:
        raise CorruptFileError(f"{path}: truncated inside the IDX header ({len(header)} bytes)")
    return struct.unpack(f">{ndim}I", header[4:])


def _check_size(path: Path, have: int, need: int, dims: tuple[int, ...]) -> None:
    if have != need:
        what = "truncated" if have < need else "has trailing bytes"
        raise CorruptFileError(f"{path}: {what}: {have} data bytes for shape {dims}, expected {need}")


def read_idx_pair(images: Path, labels: Path, size: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    y = read_idx(labels, 1)

    def expect(dims: tuple[int, ...]) -> None:  # before the pixels are read: their size is bounded by the labels
        if dims[1:] != (size, size):
            raise CorruptFileError(f"{images}: images are {dims[1]}x{dims[2]}, expected {size}x{size}")
        if dims[0] != len(y):
            raise CorruptFileError(f"{labels}: {len(y)} labels for {dims[0]} images in {images.name}")

    x = read_idx(images, 3, expect)
    if len(y) and int(y.max()) >= classes:
        bad = int(np.argmax(y >= classes))
        raise CorruptFileError(f"{labels}: bad label {int(y[bad])} at index {bad} (labels are 0..{classes - 1})")
    return x, y


def _split(split: str, train: tuple[np.ndarray, np.ndarray], val_size: int, path: Path
           ) -> tuple[np.ndarray, np.ndarray]:
    x, y = train
    if val_size >= len(x):
        raise UserError(f"val_size={val_size} leaves no training images ({path} has {len(x)})")
    return (x[:-val_size], y[:-val_size]) if split == "train" else (x[-val_size:], y[-val_size:])


def _check_split(task: str, split: str) -> None:
    if split not in ("train", "val", "test"):
        raise UserError(f"task {task!r} has splits train, val and test, not {split!r}")


class IdxTask(Task):
    """MNIST-format data: four IDX files in ``<folder>/raw``."""

    Options = VisionOptions
    folder: ClassVar[str]
    base_url: ClassVar[str]
    md5: ClassVar[dict[str, str]]
    content_md5: ClassVar[dict[str, str]] = {}
    FILES: ClassVar[tuple[str, ...]] = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

    def data_files(self, options: BaseModel) -> list[DataFile]:
        return [DataFile(f"{self.folder}/raw/{name}.gz", f"{self.base_url}{name}.gz", self.md5[name],
                         content_md5=self.content_md5.get(name, "")) for name in self.FILES]

    offline_hint: ClassVar[str] = ""  # where the files come from without a network, added to "data missing"

    def prepare(self, data_dir: Path, download: bool, options: BaseModel) -> None:
        try:
            prepare_files(self.spec.name, data_dir, self.data_files(options), download)
        except DataMissingError as exc:
            if not self.offline_hint:
                raise
            raise DataMissingError(f"{exc}; {self.offline_hint}") from None

    def load(self, split: str, options: VisionOptions, data_dir: Path) -> SplitData:  # type: ignore[override]
        _check_split(self.spec.name, split)
        states = require_files(self.spec.name, data_dir, self.data_files(options))
        pair: list[FileState] = states[:2] if split != "test" else states[2:]
        x, y = read_idx_pair(pair[0].location, pair[1].location, 28, 10)  # type: ignore[arg-type]
        if split != "test":
            x, y = _split(split, (x, y), options.val_size, pair[0].location)  # type: ignore[arg-type]
        info = {"source": f"{self.folder} IDX files", "files": files_provenance(pair), "examples": len(x)}
        import numpy as np
        import torch

        from fpt_bench_plugins.tasks.vision_module import decode_mnist

        return SplitData(torch.from_numpy(x.copy()), torch.from_numpy(y.astype(np.int64)), info=info,
                         decode=decode_mnist)


def _mnist_spec(name: str, title: str) -> TaskSpec:
    return TaskSpec(
        name=name, description=f"{title}: 28x28 images as 49 tokens of 4x4 pixels, 10 classes",
        citation=CITATION, input=Continuous(dim=16), max_len=49, output=OutputSpec(n_classes=10),
        paper=PaperHParams(lr=1e-3, batch_size=16, steps=20_000), profiles={"quick": QUICK, "smoke": SMOKE},
    )


class MNIST(IdxTask):
    spec = _mnist_spec("mnist", "MNIST digits")
    folder = "MNIST"
    base_url = "https://ossci-datasets.s3.amazonaws.com/mnist/"
    md5 = {  # of the .gz files, as torchvision lists them
        "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
    }


class FashionMNIST(IdxTask):
    spec = _mnist_spec("fashion_mnist", "Fashion-MNIST (Zalando) clothing images")
    folder = "FashionMNIST"
    base_url = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
    md5 = {  # of the .gz files, as torchvision lists them
        "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
    }
    offline_hint = ("offline, Debian's package has the files: apt-get install dataset-fashion-mnist && fpt-bench "
                    "data import fashion_mnist /usr/share/datasets/fashion-mnist")
    # md5 of the decompressed IDX bytes, computed from Debian's dataset-fashion-mnist 0.0~git20200523.55506a9-1
    # (recompressed .gz files whose own md5s differ from the list above); it accepts any recompression.
    content_md5 = {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    }


# ---------------------------------------------------------------------------------------------- CIFAR
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR_ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR_FILES = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f", "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751", "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb", "test_batch": "40351d587109b95175f43aff81a1287e",
}


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One python-version CIFAR-10 batch: (N, 3, 32, 32) uint8 images and (N,) labels.

    The file is a pickled dict (Python 2: loaded with latin-1, keys str; re-pickled copies may have bytes keys)
    with ``data`` (N, 3072) uint8 -- 1024 R, 1024 G, 1024 B, row-major -- and ``labels``."""
    import numpy as np

    try:
        with open_regular(path, "CIFAR batch", 1 << 30) as handle:  # a fifo or a device is refused; ~30 MB each
            entry = load_plain_pickle(handle, str(path), encoding="latin1")
    except OSError as exc:
        raise CorruptFileError(f"{path}: cannot be read ({exc})") from None
    if not isinstance(entry, dict):
        raise CorruptFileError(f"{path}: expected a pickled dict, found {type(entry).__name__}")
    entry = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}
    for key in ("data", "labels"):
        if key not in entry:
            raise CorruptFileError(f"{path}: no {key!r} entry (keys: {', '.join(map(str, entry))})")
    data, labels = entry["data"], entry["labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        raise CorruptFileError(f"{path}: 'data' must be a uint8 array of shape (N, 3072), found "
                               f"{type(data).__name__} {getattr(data, 'dtype', '')} {shape}")
    try:  # integers only: a float label would be truncated, 2**64 or inf overflow
        raw = np.asarray(labels)
        if raw.dtype.kind not in "iu" and not (raw.dtype == object and all(type(v) is int for v in raw.ravel())):
            raise TypeError
        if raw.dtype == object:  # Python ints beyond int64: the first one out of range is named below
            bad = next((i for i, v in enumerate(raw.ravel()) if not 0 <= v <= 9), None)
            if bad is not None:
                raise CorruptFileError(f"{path}: bad label {raw.ravel()[bad]} at index {bad} (labels are 0..9)")
        y = raw.astype(np.int64)
    except (TypeError, ValueError, OverflowError):
        raise CorruptFileError(f"{path}: 'labels' must be integers 0..9") from None
    if y.ndim != 1 or len(y) != len(data):
        raise CorruptFileError(f"{path}: {y.size} labels for {len(data)} images")
    if len(y) and (y.min() < 0 or y.max() > 9):
        bad = int(np.argmax((y < 0) | (y > 9)))
        raise CorruptFileError(f"{path}: bad label {int(y[bad])} at index {bad} (labels are 0..9)")
    return data.reshape(-1, 3, 32, 32), y


class _CifarBase(Task):
    Options: ClassVar[type[BaseModel]] = VisionOptions

    def data_files(self, options: BaseModel) -> list[DataFile]:
        return [DataFile(f"cifar-10-batches-py/{name}", CIFAR_URL, md5, archive="cifar-10-python.tar.gz",
                         archive_md5=CIFAR_ARCHIVE_MD5) for name, md5 in CIFAR_FILES.items()]

    def prepare(self, data_dir: Path, download: bool, options: BaseModel) -> None:
        prepare_files(self.spec.name, data_dir, self.data_files(options), download)

    def _images(self, split: str, options: Any, data_dir: Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        import numpy as np

        _check_split(self.spec.name, split)
        states = require_files(self.spec.name, data_dir, self.data_files(options))
        used = states[-1:] if split == "test" else states[:-1]
        parts = [read_cifar_batch(s.location) for s in used]  # type: ignore[arg-type]
        x, y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        if split != "test":
            x, y = _split(split, (x, y), options.val_size, used[-1].location)  # type: ignore[arg-type]
        return x, y, {"source": "CIFAR-10 python batches", "files": files_provenance(used), "examples": len(x)}


class CIFAR10(_CifarBase):
    spec = TaskSpec(
        name="cifar10", description="CIFAR-10: 32x32 RGB images as 64 tokens of 4x4x3 pixels, 10 classes",
        citation=CITATION, input=Continuous(dim=48), max_len=64, output=OutputSpec(n_classes=10),
        paper=PaperHParams(lr=1e-3, batch_size=16, steps=400_000), profiles={"quick": QUICK, "smoke": SMOKE},
    )

    def load(self, split: str, options: VisionOptions, data_dir: Path) -> SplitData:  # type: ignore[override]
        import torch

        from fpt_bench_plugins.tasks.vision_module import decode_cifar

        x, y, info = self._images(split, options, data_dir)
        return SplitData(torch.from_numpy(x.copy()), torch.from_numpy(y), info=info, decode=decode_cifar)

    def augment(self, x: torch.Tensor, generator: torch.Generator, options: BaseModel) -> torch.Tensor:
        from fpt_bench_plugins.tasks.vision_module import augment_cifar

        return augment_cifar(x, generator)


class LraOptions(VisionOptions):
    variant: Literal["fpt", "lra"] = Field(
        default="fpt", description="fpt: continuous grayscale in [-1, 1] with augmentation (the paper); "
                                   "lra: 256 grayscale tokens, no augmentation (Long Range Arena)")


class CIFAR10LRA(_CifarBase):
    Options = LraOptions
    spec = TaskSpec(
        name="cifar10_lra", description="CIFAR-10 in grayscale, one pixel per token (1024 tokens), 10 classes",
        citation=CITATION + " Tay et al. Long Range Arena. 2020.", input=Continuous(dim=1), max_len=1024,
        output=OutputSpec(n_classes=10), paper=PaperHParams(lr=1e-3, batch_size=16, steps=600_000),
        # smoke: 1,024 tokens an image, so 4 steps of one image and 4 to evaluate (proves the pipeline)
        profiles={"quick": HParamOverrides(steps=100, batch_size=4, eval_every=50),
                  "smoke": HParamOverrides(steps=4, batch_size=1, eval_every=2, val_examples=4, test_examples=4)},
    )

    def resolve_spec(self, options: LraOptions) -> TaskSpec:  # type: ignore[override]
        if options.variant == "lra":
            return self.spec.model_copy(update={"input": Tokens(vocab_size=256, pad_id=0)})
        return self.spec

    def load(self, split: str, options: LraOptions, data_dir: Path) -> SplitData:  # type: ignore[override]
        import torch

        from fpt_bench_plugins.tasks.vision_module import decode_gray, decode_tokens, lra_grayscale

        x, y, info = self._images(split, options, data_dir)
        info["variant"] = options.variant
        if options.variant == "lra":
            tokens = lra_grayscale(x).reshape(len(x), -1)
            return SplitData(torch.from_numpy(tokens), torch.from_numpy(y), info=info, decode=decode_tokens)
        return SplitData(torch.from_numpy(x.copy()), torch.from_numpy(y), info=info, decode=decode_gray)

    def augments(self, options: LraOptions) -> bool:  # type: ignore[override]
        return options.variant != "lra"

    def augment(self, x: torch.Tensor, generator: torch.Generator, options: LraOptions) -> torch.Tensor:
        if options.variant == "lra":
            return x
        from fpt_bench_plugins.tasks.vision_module import augment_gray

        return augment_gray(x, generator)


@hookimpl
def fpt_bench_register_tasks(registry) -> None:  # type: ignore[no-untyped-def]
    for task in (MNIST(), FashionMNIST(), CIFAR10(), CIFAR10LRA()):
        registry.add(task)
