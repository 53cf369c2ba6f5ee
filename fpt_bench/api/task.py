"""The Task plugin interface: a task owns its data and its I/O contract, nothing about models."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from fpt_bench.api.options import Configurable
from fpt_bench.api.specs import TaskSpec

if TYPE_CHECKING:  # torch is imported where a tensor is met: listing the plugins loads without it
    import torch


@dataclass
class Batch:
    x: torch.Tensor  # (B, T, D) float for continuous inputs, (B, T) long for tokens
    y: torch.Tensor  # (B,) or (B, n_predictions) long
    lengths: torch.Tensor | None = None  # (B,) valid lengths when sequences vary

    def to(self, device: torch.device | str) -> Batch:
        lengths = None if self.lengths is None else self.lengths.to(device, non_blocking=True)
        return Batch(self.x.to(device, non_blocking=True), self.y.to(device, non_blocking=True), lengths)

    def __len__(self) -> int:
        return self.x.shape[0]


@dataclass
class SplitData:
    """A whole split as tensors (padded to the split's longest sequence when lengths vary).

    ``x`` may be stored compactly (uint8 pixels, uint8 token ids) with ``decode`` turning a batch of it into the
    model's input on the batch's device (patching, normalising, ``long()``); ``batch`` applies it.
    """

    x: torch.Tensor
    y: torch.Tensor
    lengths: torch.Tensor | None = None
    info: dict[str, Any] = field(default_factory=dict)  # provenance: source, checksums, generator seed
    decode: Callable[[torch.Tensor], torch.Tensor] | None = None

    def __len__(self) -> int:
        return self.x.shape[0]

    def head(self, n: int | None) -> SplitData:
        """The first ``n`` examples (all when ``n`` is None)."""
        if n is None or n >= len(self):
            return self
        lengths = None if self.lengths is None else self.lengths[:n]
        return SplitData(self.x[:n], self.y[:n], lengths, dict(self.info, subset=n), self.decode)

    def to(self, device: torch.device | str) -> SplitData:
        lengths = None if self.lengths is None else self.lengths.to(device)
        return SplitData(self.x.to(device), self.y.to(device), lengths, self.info, self.decode)

    def batch(self, index: torch.Tensor) -> Batch:
        """Examples ``index``, padded to the longest of them (not the split's maximum)."""
        x, y = self.x[index], self.y[index]
        lengths = None
        if self.lengths is not None:
            lengths = self.lengths[index]
            x = x[:, : int(lengths.max())]
        if self.decode is not None:
            x = self.decode(x)
        return Batch(x, y, lengths)


@dataclass(frozen=True)
class DataFile:
    """A file a task needs, where it goes (relative to the data directory) and how to check it.

    ``md5``/``size`` describe the file itself. A ``.gz`` file may also carry ``content_md5``, the md5 of its
    decompressed bytes, so a recompressed copy still verifies. When the file comes out of an archive,
    ``url`` is the archive's address, ``archive`` the archive's file name (kept under ``downloads/`` in the
    data directory) and ``archive_md5`` its checksum; the archive's member path equals ``path``.
    """

    path: str
    url: str = ""
    md5: str = ""
    size: int | None = None
    content_md5: str = ""
    archive: str = ""
    archive_md5: str = ""


class Task(Configurable):
    """Base class for tasks. Subclasses set ``spec`` and implement ``load`` (and ``sample`` when generated)."""

    spec: ClassVar[TaskSpec]
    component_kind = "task"
    options_flag = "--task-args"

    def resolve_spec(self, options: BaseModel) -> TaskSpec:
        """The spec under these options (an option may change the input kind or the maximum length)."""
        return self.spec

    def load(self, split: str, options: BaseModel, data_dir: Path) -> SplitData:
        """Return a whole split as tensors. Generated tasks return a fixed, seeded evaluation set."""
        raise NotImplementedError

    def sample(self, batch_size: int, generator: torch.Generator, options: BaseModel) -> Batch:
        """Draw one training batch on ``generator``'s device (generated tasks only)."""
        raise NotImplementedError(f"task {self.spec.name!r} is not generated")

    def augment(self, x: torch.Tensor, generator: torch.Generator, options: BaseModel) -> torch.Tensor:
        """Augment a training batch on its device (default: none)."""
        return x

    def augments(self, options: BaseModel) -> bool:
        """Whether ``augment`` changes batches under these options (default: whether the task overrides it).
        A task that does not augment may have its backbone features cached for output-layer-only policies."""
        return type(self).augment is not Task.augment

    def data_files(self, options: BaseModel) -> list[DataFile]:
        """The files ``load`` reads (for ``fpt-bench data status``); none for generated tasks."""
        return []

    def prepare(self, data_dir: Path, download: bool, options: BaseModel) -> None:
        """Make sure the data is present and verified; raise DataMissingError saying what to do if not."""
