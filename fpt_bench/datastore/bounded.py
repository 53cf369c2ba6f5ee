"""Decompressing untrusted files no further than their header promises.

A few megabytes of gzip can expand to gigabytes. A reader that knows from the file's own header how many bytes
it needs reads exactly that many, in chunks (memory grows with the data that really arrives, never with a number
the file states), then checks that the stream ends there; a header that promises more than this machine's free
memory is refused before anything is decompressed.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from fpt_bench.api.errors import CorruptFileError
from fpt_bench.infra.memory import available_memory
from fpt_bench.infra.safe_read import open_regular

CHUNK = 1 << 20
DECOMPRESS_ERRORS = (OSError, EOFError, zlib.error)  # gzip.BadGzipFile is an OSError


COPIES = 2  # a loader holds what it read and one array made from it (measured: a 1.57 GB promise peaked at 3.6 GB)


def check_promise(path: Path, need: int, what: str) -> None:
    """Refuse ``need`` bytes (from ``path``'s header) when ``COPIES`` of them cannot fit in memory."""
    free = available_memory()
    if free is not None and COPIES * need > free:
        raise CorruptFileError(f"{path}: its header promises {need} bytes of {what}; {COPIES} copies of that are "
                               f"more than the {free} bytes of memory free here (a damaged or forged header?)")


@contextmanager
def open_data(path: Path, what: str = "data file") -> Iterator[BinaryIO]:
    """``path`` opened for reading (a regular file; ``.gz`` files decompressed as they are read)."""
    path = Path(path)
    with open_regular(path, what) as raw:
        if path.suffix == ".gz":
            with gzip.GzipFile(fileobj=raw, mode="rb") as handle:
                yield handle  # type: ignore[misc]
        else:
            yield raw


def read_upto(handle: BinaryIO, n: int) -> bytearray:
    """Up to ``n`` bytes of ``handle``, read in chunks (fewer when the stream ends first)."""
    out = bytearray()
    while len(out) < n:
        block = handle.read(min(CHUNK, n - len(out)))
        if not block:
            break
        out += block
    return out


def at_end(handle: BinaryIO) -> bool:
    """Whether ``handle`` has nothing more (reads one byte; for gzip this also checks the stream's CRC)."""
    return not handle.read(1)
