"""Atomic files and folders: what a reader sees is the old version or the new one, never a partial one.

Everything fpt-bench writes (results, checkpoints, caches, downloads, published pages, generated data) goes through
here. New files get the permissions any new file gets (``0o666`` less the umask), not the ``0o600`` of a bare
temporary file, so a result written on a shared grid is readable by the group that shares it.

A destination that refuses (a file where a folder belongs, a read-only file system, no permission, a full disk)
is one :class:`~fpt_bench.infra.destination.DestinationError` naming it; an error raised by the caller's own
``write`` (reading its source, say) passes through unchanged.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from fpt_bench.infra.destination import FULL, refused, writing_to


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it; set back at once
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write`` on a temporary file in ``path``'s folder, fsync, then rename it over ``path``.

    On any error (a full disk, an exception in ``write``) the old file stays as it was and the temporary file is
    removed."""
    path = Path(path)
    with writing_to(path):  # the error names the file asked for, and says which part of its path refused
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with writing_to(path):
            os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            try:
                write(handle)
            except OSError as exc:  # the disk filled up under the writer: the destination's problem
                if exc.errno in FULL and exc.filename is None:
                    raise refused(exc, path) from exc
                raise
            with writing_to(path):
                handle.flush()
                os.fsync(handle.fileno())
        with writing_to(path):
            os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


@contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Fill the yielded temporary folder; on success it replaces ``path`` (a folder), on error it is removed."""
    path = Path(path)
    with writing_to(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
        shutil.rmtree(path, ignore_errors=True)
        with writing_to(path):
            tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
