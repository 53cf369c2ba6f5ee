"""Downloads with urllib: a progress bar, an md5 check, and an atomic rename (a partial download never looks
complete: it lives under a temporary name until the whole file is written, synced and verified)."""

from __future__ import annotations

import hashlib
import http.client
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO, TextIO

from fpt_bench import __version__
from fpt_bench.api.errors import CorruptFileError, DataMissingError, UserError
from fpt_bench.infra.atomic import atomic_write
from fpt_bench.infra.progress import ByteProgress

CHUNK = 1 << 20


class _DiskError(Exception):
    """Writing the downloaded bytes failed (not the network): told apart so the message names the disk."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _write(out: BinaryIO, block: bytes) -> None:
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
    request = urllib.request.Request(url, headers={"User-Agent": f"fpt-bench/{__version__}"})

    def fetch(out: BinaryIO) -> None:  # into a temporary file that becomes dest only when whole and verified
        digest = hashlib.md5(usedforsecurity=False)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s)/file only
                total = int(response.headers.get("Content-Length") or 0) or size
                bar = ByteProgress(dest.name, total, stream)
                while block := response.read(CHUNK):
                    _write(out, block)
                    digest.update(block)
                    bar.update(len(block))
                bar.close()
        except http.client.IncompleteRead as exc:
            short = f" ({exc.expected} bytes short)" if exc.expected else ""
            raise _BadDownload(f"ended before its announced length{short}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise DataMissingError(
                f"could not download {url}: {reason}. Without a network, download it elsewhere and copy it "
                f"here with `fpt-bench data import TASK PATH`") from None
        if md5 and digest.hexdigest() != md5:
            raise _BadDownload(f"has md5 {digest.hexdigest()}, expected {md5}")

    try:
        atomic_write(dest, fetch)
    except _DiskError as exc:
        raise UserError(f"could not write the download of {url} to {dest.parent}: {exc.reason}; "
                        f"nothing was kept (free some space and fetch again)") from None
    except OSError as exc:  # the final sync or rename
        raise UserError(f"could not write the download of {url} to {dest.parent}: {exc.strerror or exc}; "
                        f"nothing was kept") from None
    return dest
