"""Tokenised splits cached as Hugging Face ``datasets`` Arrow files under the data directory.

A cache entry is keyed by what the tokens depend on (the source files' checksums, the tokenisation and its
version, the options that change it): ``<data dir>/.cache/<task>/<split>-<key>/``. It is written to a temporary
folder and renamed, and a ``complete.json`` beside the Arrow file records the row and token counts; an entry
that fails to load or disagrees with them is rebuilt. Without ``datasets`` installed nothing is cached.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fpt_bench.infra.atomic import atomic_directory

if TYPE_CHECKING:  # numpy and torch are imported where arrays are met: listing the plugins loads without them
    import numpy as np
    import torch

CACHE_DIR = ".cache"
MARKER = "complete.json"


@dataclass
class RaggedTokens:
    """Variable-length token sequences: ``values`` (all tokens back to back), ``offsets`` (n + 1) and labels."""

    values: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray

    @classmethod
    def from_lists(cls, seqs: list[np.ndarray], labels: list[int], dtype: Any = None) -> RaggedTokens:
        import numpy as np

        """Sequences of token ids stored back to back in ``dtype``: by default the smallest of uint8, uint16,
        uint32 and int64 that holds every id (the harness widens a batch to int64 when it is used). A ``dtype``
        that cannot hold every id is a ValueError, never a silent wrap-around."""
        lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        joined = np.concatenate(seqs) if seqs else np.zeros(0, dtype=np.int64)
        if joined.size and not np.issubdtype(joined.dtype, np.integer):
            raise ValueError(f"token ids must be integers, got {joined.dtype}")
        low, high = (int(joined.min()), int(joined.max())) if joined.size else (0, 0)
        if dtype is None:
            dtype = next(t for t in (np.uint8, np.uint16, np.uint32, np.int64)
                         if np.iinfo(t).min <= low and high <= np.iinfo(t).max)
        elif not (np.iinfo(dtype).min <= low and high <= np.iinfo(dtype).max):
            raise ValueError(f"token ids {low}..{high} do not fit in {np.dtype(dtype).name}")
        return cls(joined.astype(dtype, copy=False), offsets, np.asarray(labels, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.labels)

    def padded(self, pad: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x padded to the longest sequence, lengths, labels) as tensors."""
        import numpy as np
        import torch

        lengths = np.diff(self.offsets)
        longest = int(lengths.max()) if len(lengths) else 0
        x = np.full((len(lengths), longest), pad, dtype=self.values.dtype)
        rows = np.repeat(np.arange(len(lengths)), lengths)
        cols = np.arange(len(self.values)) - np.repeat(self.offsets[:-1], lengths)
        x[rows, cols] = self.values
        return torch.from_numpy(x), torch.from_numpy(lengths), torch.from_numpy(self.labels.copy())


def cache_key(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cached_tokens(data_dir: Path, task: str, split: str, key_parts: dict[str, Any],
                  build: Callable[[], RaggedTokens]) -> tuple[RaggedTokens, dict[str, Any]]:
    """The split's tokens from the cache when a valid entry exists, else built, cached and returned.

    Returns the tokens and a provenance dict (``cache``: ``hit``, ``built`` or ``off``, and the key)."""
    try:
        import datasets
        import pyarrow as pa
        from datasets.table import InMemoryTable
    except ImportError:
        return build(), {"cache": "off"}
    key = cache_key(key_parts)
    folder = Path(data_dir) / CACHE_DIR / task / f"{split}-{key}"
    info = {"cache_key": key, "cache_path": str(folder)}
    tokens = _read(folder, datasets)
    if tokens is not None:
        return tokens, {"cache": "hit", **info}
    tokens = build()
    datasets.disable_progress_bars()
    try:
        with atomic_directory(folder) as tmp:
            table = pa.table({
                "tokens": pa.ListArray.from_arrays(pa.array(tokens.offsets), pa.array(tokens.values)),
                "label": pa.array(tokens.labels),
            })
            datasets.Dataset(InMemoryTable(table)).save_to_disk(str(tmp / "arrow"))
            marker = {"rows": len(tokens), "tokens": int(tokens.offsets[-1]), "key_parts": key_parts}
            (tmp / MARKER).write_text(json.dumps(marker, default=str))
    except OSError:  # a read-only or full data directory: go on without the cache
        return tokens, {"cache": "unwritable", **info}
    return tokens, {"cache": "built", **info}


def _read(folder: Path, datasets: Any) -> RaggedTokens | None:
    import numpy as np

    if not (folder / MARKER).is_file():
        return None
    try:
        marker = json.loads((folder / MARKER).read_text())
        table = datasets.load_from_disk(str(folder / "arrow")).data.table
        column = table.column("tokens").combine_chunks()
        tokens = RaggedTokens(column.values.to_numpy(zero_copy_only=False).copy(),
                              column.offsets.to_numpy().astype(np.int64),
                              table.column("label").to_numpy().astype(np.int64))
        if len(tokens) != marker["rows"] or int(tokens.offsets[-1]) != marker["tokens"]:
            raise ValueError("counts differ from the marker")
        first, last = int(tokens.offsets[0]), int(tokens.offsets[-1])
        tokens.values, tokens.offsets = tokens.values[first:last], tokens.offsets - first
        return tokens
    except Exception:  # noqa: BLE001 - any damage means: rebuild
        shutil.rmtree(folder, ignore_errors=True)
        return None
