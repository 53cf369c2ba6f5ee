"""The staging folders of ``fpt-bench data import``: where copies wait until they verify.

A staging folder is ``DATA_DIR/.import-<host>-<pid>-<random>``: it names its owner. An import that ends (or is
interrupted: Ctrl-C, SIGTERM, SIGHUP) removes its own; one that was killed outright (SIGKILL, a power cut)
cannot, so every import first removes the staging folders left behind: those whose owner is a dead process on
this host, and those of another host (or of an older fpt-bench, which did not name the owner) that have not
changed for ``STALE_AFTER`` seconds. A live import on another host changes its folder as it copies, so it is
never taken for a dead one while it works.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fpt_bench.infra.destination import make_folder, writing_to

PREFIX = ".import-"
STALE_AFTER = 24 * 3600.0
_OWNED = re.compile(r"^\.import-(?P<host>.+)-(?P<pid>\d{1,10})-[A-Za-z0-9_]+$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def is_abandoned(folder: Path, now: float | None = None) -> bool:
    """Whether ``folder`` (a staging folder) belongs to no running import."""
    match = _OWNED.match(folder.name)
    if match and match["host"] == _host() and 0 < int(match["pid"]) < 2**31:
        return not _alive(int(match["pid"]))
    try:
        age = (now or time.time()) - folder.lstat().st_mtime
    except FileNotFoundError:
        return False
    return age > STALE_AFTER


def remove_abandoned(data_dir: Path) -> list[Path]:
    """Remove the staging folders in ``data_dir`` that no running import owns; returns them."""
    removed = []
    try:
        entries = list(Path(data_dir).iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(PREFIX) or entry.is_symlink() or not entry.is_dir():
            continue
        if is_abandoned(entry):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


@contextmanager
def staging_folder(data_dir: Path) -> Iterator[Path]:
    """A new staging folder in ``data_dir`` (abandoned ones removed first), removed when the block ends."""
    make_folder(data_dir)
    remove_abandoned(data_dir)
    with writing_to(data_dir, "write to"):
        folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{_host()}-{os.getpid()}-", dir=data_dir))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
