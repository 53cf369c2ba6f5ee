"""Downloads with urllib: a progress bar, an md5 check, and an atomic rename (a partial download never looks
complete: it lives under a temporary name until the whole file is written, synced and verified)."""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO, TextIO

from fpt_bench import __version__
from fpt_bench.api.errors import CorruptFileError, DataMissingError, UserError

CHUNK = 1 << 20


class ByteProgress:
    """A one-line byte counter: a bar on a terminal, a line at the start and end otherwise."""

    def __init__(self, label: str, total: int | None, stream: TextIO | None = None) -> None:
        self.label, self.total, self.done = label, total, 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._t0 = self._last = time.perf_counter()
        if not self.tty:
            size = f" ({_human(total)})" if total else ""
            print(f"downloading {label}{size}", file=self.stream, flush=True)

    def update(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if not self.tty or now - self._last < 0.2:
            return
        self._last = now
        rate = self.done / max(now - self._t0, 1e-9)
        if self.total:
            filled = int(24 * self.done / self.total)
            bar = f"[{'#' * filled}{'.' * (24 - filled)}] {_human(self.done)}/{_human(self.total)}"
        else:
            bar = _human(self.done)
        self.stream.write(f"\r{self.label} {bar} {_human(rate)}/s\x1b[K")
        self.stream.flush()

    def close(self) -> None:
        elapsed = time.perf_counter() - self._t0
        if self.tty:
            self.stream.write("\n")
        self.stream.write(f"{self.label}: {_human(self.done)} in {elapsed:.1f}s\n")
        self.stream.flush()


def _human(n: float | None) -> str:
    n = float(n or 0)
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


class _DiskError(Exception):
    """Writing the downloaded bytes failed (not the network): told apart so the message names the disk."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _write(out: BinaryIO, block: bytes, dest: Path) -> None:
    try:
        out.write(block)
    except OSError as exc:
        raise _DiskError(exc.strerror or str(exc)) from None


class _BadDownload(Exception):
    """The bytes arrived but are wrong (checksum) or incomplete: worth fetching again."""


def download(url: str, dest: Path, md5: str = "", size: int | None = None, stream: TextIO | None = None,
             timeout: float = 60.0, attempts: int = 2) -> Path:
    """Fetch ``url`` to ``dest`` (atomically), checking ``md5`` when given. A download whose md5 differs, or that
    ends before its announced length, is discarded and fetched again (``attempts`` tries in all): wrong bytes
    never reach ``dest``. Raises DataMissingError when the network fails, CorruptFileError when every try was
    wrong."""
    for attempt in range(1, attempts + 1):
        try:
            return _download_once(url, Path(dest), md5, size, stream, timeout)
        except _BadDownload as exc:
            if attempt == attempts:
                raise CorruptFileError(
                    f"the download of {url} {exc}: it was discarded (tried {attempts} time(s); if it persists, "
                    f"the server's copy changed)") from None
            print(f"{Path(dest).name}: the download {exc}; discarded, fetching it again", file=stream or sys.stderr,
                  flush=True)
    raise AssertionError("unreachable")


def _download_once(url: str, dest: Path, md5: str, size: int | None, stream: TextIO | None,
                   timeout: float) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    digest = hashlib.md5(usedforsecurity=False)
    request = urllib.request.Request(url, headers={"User-Agent": f"fpt-bench/{__version__}"})
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s)/file only
                    total = int(response.headers.get("Content-Length") or 0) or size
                    bar = ByteProgress(dest.name, total, stream)
                    while block := response.read(CHUNK):
                        _write(out, block, dest)
                        digest.update(block)
                        bar.update(len(block))
                    bar.close()
            except _DiskError as exc:
                raise UserError(f"could not write the download of {url} to {dest.parent}: {exc.reason}; "
                                f"nothing was kept (free some space and fetch again)") from None
            except http.client.IncompleteRead as exc:
                short = f" ({exc.expected} bytes short)" if exc.expected else ""
                raise _BadDownload(f"ended before its announced length{short}") from None
            except (urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError, ValueError) as exc:
                reason = getattr(exc, "reason", None) or exc
                raise DataMissingError(
                    f"could not download {url}: {reason}. Without a network, download it elsewhere and copy it "
                    f"here with `fpt-bench data import TASK PATH`") from None
            try:
                out.flush()
                os.fsync(out.fileno())
            except OSError as exc:
                raise UserError(f"could not write the download of {url} to {dest.parent}: "
                                f"{exc.strerror or exc}; nothing was kept") from None
        if md5 and digest.hexdigest() != md5:
            raise _BadDownload(f"has md5 {digest.hexdigest()}, expected {md5}")
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest
