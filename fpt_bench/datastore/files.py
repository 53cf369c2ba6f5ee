"""Where data lives and whether it is there: the data directory, checksums, status, and the errors that say
what to do when a file is missing or wrong.

The data directory is ``--data-dir``, else ``$FPT_BENCH_DATA``, else the user cache directory. A task lists its
files as :class:`~fpt_bench.api.task.DataFile` (path relative to the data directory, url, md5). A small manifest in
the data directory caches checksums (keyed by size and modification time, so a status check does not reread
gigabytes) and records where imported files came from. Downloading and importing live in
``fpt_bench.datastore``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fpt_bench.api.errors import CorruptFileError, DataMissingError
from fpt_bench.api.task import DataFile
from fpt_bench.infra.atomic import atomic_write
from fpt_bench.infra.safe_read import read_bytes

DATA_ENV = "FPT_BENCH_DATA"
MANIFEST = ".fpt-bench-manifest.json"
USABLE = ("ok", "unchecked", "unverified")  # states a loader may read


def default_data_dir() -> Path:
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "fpt-bench" / "data"


def resolve_data_dir(data_dir: str | Path | None) -> Path:
    return Path(data_dir).expanduser() if data_dir else default_data_dir()


# ------------------------------------------------------------------------------------------ checksums
def md5sum(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, lambda: hashlib.md5(usedforsecurity=False)).hexdigest()


def gz_content_md5(path: Path, chunk: int = 1 << 20) -> str:
    """md5 of a gzip file's decompressed bytes (a recompressed copy of the same content has the same one)."""
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with gzip.open(path, "rb") as handle:
            while block := handle.read(chunk):
                digest.update(block)
    except (OSError, EOFError) as exc:
        raise CorruptFileError(f"{path}: not a readable gzip file ({exc})") from None
    return digest.hexdigest()


class Manifest:
    """Checksums cached per file (valid while size and mtime are unchanged) and the origin of imported files."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / MANIFEST
        try:
            self.entries: dict[str, dict[str, Any]] = json.loads(read_bytes(self.path, 64 << 20, "manifest")).get(
                "files", {})
            if not isinstance(self.entries, dict) or not all(isinstance(e, dict) for e in self.entries.values()):
                raise ValueError("not a manifest")
        except (CorruptFileError, ValueError, AttributeError, RecursionError):  # a cache: rebuilt when damaged
            self.entries = {}
        self._dirty = False

    def _entry(self, rel: str, path: Path) -> dict[str, Any]:
        stat = path.stat()
        entry = self.entries.get(rel)
        if entry is None or entry.get("size") != stat.st_size or entry.get("mtime_ns") != stat.st_mtime_ns:
            entry = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
            self.entries[rel] = entry
            self._dirty = True
        return entry

    def checksum(self, rel: str, path: Path, kind: str = "md5") -> str:
        """``md5`` of the file or ``content_md5`` of a gzip file's content, cached."""
        entry = self._entry(rel, path)
        if kind not in entry:
            entry[kind] = md5sum(path) if kind == "md5" else gz_content_md5(path)
            self._dirty = True
        return str(entry[kind])

    def record_origin(self, rel: str, path: Path, **origin: Any) -> None:
        self._entry(rel, path).update(origin)
        self._dirty = True

    def origin(self, rel: str, path: Path) -> dict[str, Any]:
        return {k: v for k, v in self._entry(rel, path).items() if k in ("source", "verified", "imported_at")}

    def save(self) -> None:
        if not self._dirty or not self.data_dir.is_dir():
            return
        blob = json.dumps({"files": self.entries}, indent=1, sort_keys=True).encode()
        try:
            atomic_write(self.path, lambda handle: handle.write(blob))
        except OSError:  # a read-only data directory still works, without the cache
            return
        self._dirty = False


# ---------------------------------------------------------------------------------------------- status
@dataclass
class FileState:
    """One needed file: ``ok`` (checksum matches), ``unchecked`` (present, no published checksum),
    ``unverified`` (imported with --no-verify), ``mismatch`` (checksum differs) or ``missing``."""

    file: DataFile
    state: str
    location: Path | None = None
    detail: str = ""
    md5: str = ""

    @property
    def usable(self) -> bool:
        return self.state in USABLE


def candidates(data_dir: Path, file: DataFile) -> list[Path]:
    """Where ``file`` may be: its path, and for a ``.gz`` file the decompressed sibling as well."""
    path = Path(data_dir) / file.path
    return [path, path.with_suffix("")] if path.suffix == ".gz" else [path]


def locate(data_dir: Path, file: DataFile) -> Path | None:
    return next((p for p in candidates(data_dir, file) if p.is_file()), None)


def check_file(data_dir: Path, file: DataFile, manifest: Manifest | None = None) -> FileState:
    manifest = manifest or Manifest(data_dir)
    path = locate(data_dir, file)
    if path is None:
        return FileState(file, "missing")
    rel = path.relative_to(data_dir).as_posix()
    compressed = path.name == Path(file.path).name  # the file as listed (not its decompressed sibling)
    problems = []
    if compressed and file.md5:
        actual = manifest.checksum(rel, path, "md5")
        if actual == file.md5:
            source = manifest.origin(rel, path).get("source")
            return FileState(file, "ok", path, "md5 matches" + (f"; imported from {source}" if source else ""),
                             actual)
        problems.append(f"md5 {actual}, expected {file.md5}")
    if file.content_md5 and (path.suffix == ".gz" or not compressed):
        kind = "content_md5" if path.suffix == ".gz" else "md5"
        actual = manifest.checksum(rel, path, kind)
        if actual == file.content_md5:
            how = "md5 of the decompressed content matches" if kind == "content_md5" else "md5 matches"
            source = manifest.origin(rel, path).get("source")
            return FileState(file, "ok", path, how + (f"; imported from {source}" if source else ""), actual)
        problems.append(f"{'decompressed content ' if kind == 'content_md5' else ''}md5 {actual}, "
                        f"expected {file.content_md5}")
    origin = manifest.origin(rel, path)
    if origin.get("verified") == "unverified":
        return FileState(file, "unverified", path, f"imported from {origin.get('source')} with --no-verify")
    if not problems:
        why = "no published checksum" if compressed else "no published checksum for the decompressed file"
        return FileState(file, "unchecked", path, f"present ({why})")
    return FileState(file, "mismatch", path, "; ".join(problems), actual)


def check_files(data_dir: Path, files: list[DataFile]) -> list[FileState]:
    manifest = Manifest(data_dir)
    try:
        return [check_file(Path(data_dir), f, manifest) for f in files]
    finally:
        manifest.save()


def describe_file(file: DataFile) -> str:
    """``md5 …, from URL`` (or ``from URL, inside ARCHIVE (md5 …)``) for messages."""
    parts = []
    if file.md5:
        parts.append(f"md5 {file.md5}")
    elif file.content_md5:
        parts.append(f"md5 of decompressed content {file.content_md5}")
    else:
        parts.append("no published checksum")
    if file.url and file.archive:
        sums = f", md5 {file.archive_md5}" if file.archive_md5 else ""
        parts.append(f"inside {file.archive} ({file.url}{sums})")
    elif file.url:
        parts.append(f"from {file.url}")
    return ", ".join(parts)


def missing_message(task: str, data_dir: Path, states: list[FileState]) -> str:
    """One message: what is missing or wrong, where it goes, and the two ways to fix it."""
    bad = [s for s in states if not s.usable]
    missing = [s for s in bad if s.state == "missing"]
    folders = sorted({str((Path(data_dir) / s.file.path).parent) for s in bad})
    head = (f"data missing for task {task!r}: {len(missing)} of {len(states)} file(s) missing"
            if missing else f"data for task {task!r} does not verify")
    mismatched = len(bad) - len(missing)
    if missing and mismatched:
        head += f", {mismatched} with a wrong checksum"
    fetch = f"run `fpt-bench data fetch {task}` (needs the network), or " if all(s.file.url for s in bad) else ""
    copy = "copy the files from elsewhere and run" if fetch else "they have no download address: put them in place with"
    lines = [f"{head} in {', '.join(folders)} — {fetch}{copy} `fpt-bench data import {task} PATH` "
             f"(data dir {data_dir})"]
    for s in bad:
        what = "missing" if s.state == "missing" else f"wrong checksum ({s.detail}) at {s.location}"
        lines.append(f"  {s.file.path}: {what}; {describe_file(s.file)}")
    return "\n".join(lines)


def require_files(task: str, data_dir: Path, files: list[DataFile]) -> list[FileState]:
    """Check ``files``; raise DataMissingError (missing) or CorruptFileError (wrong checksum) saying what to do."""
    states = check_files(data_dir, files)
    if all(s.usable for s in states):
        return states
    error = DataMissingError if any(s.state == "missing" for s in states) else CorruptFileError
    raise error(missing_message(task, data_dir, states))


def provenance(states: list[FileState]) -> dict[str, Any]:
    """What a result records about the files a split was read from."""
    return {s.file.path: {"md5": s.md5 or None, "state": s.state, "check": s.detail, **({"location": str(s.location)}
            if s.location and s.location.name != Path(s.file.path).name else {})} for s in states}
