"""Putting a task's files into the data directory: ``fetch`` (download, verify, extract) and ``import``
(files a user copied from elsewhere: a folder, an archive or one file), both verified before they count."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections import defaultdict
from pathlib import Path, PurePosixPath
from typing import TextIO

from fpt_bench.api.errors import CorruptFileError, DataMissingError, UserError
from fpt_bench.api.task import DataFile
from fpt_bench.datastore.archive import is_archive, list_members, safe_extract
from fpt_bench.datastore.download import download
from fpt_bench.datastore.files import FileState, Manifest, check_file, check_files, describe_file, md5sum, require_files
from fpt_bench.datastore.staging import staging_folder
from fpt_bench.infra.destination import make_folder, refused, writing_to
from fpt_bench.infra.safe_read import kind_of

DOWNLOADS = "downloads"


def fetch_files(task: str, data_dir: Path, files: list[DataFile], stream: TextIO | None = None) -> list[FileState]:
    """Download what is missing or wrong, verify it, extract archives safely; return the final states."""
    data_dir = Path(data_dir)
    todo = [s.file for s in check_files(data_dir, files) if not s.usable]
    groups: dict[tuple[str, str], list[DataFile]] = defaultdict(list)
    for f in todo:
        groups[(f.url, f.archive)].append(f)
    for (url, archive), group in groups.items():
        if not url:
            names = ", ".join(f.path for f in group)
            raise DataMissingError(f"task {task!r}: no download address is known for {names}; copy the files "
                                   f"from elsewhere and run `fpt-bench data import {task} PATH`")
        if archive:
            stored = data_dir / DOWNLOADS / archive
            md5 = group[0].archive_md5
            if not stored.is_file() or (md5 and md5sum(stored) != md5):
                download(url, stored, md5, stream=stream)
            safe_extract(stored, data_dir, {f.path: f.path for f in group})
        else:
            for f in group:
                download(url, data_dir / f.path, f.md5, f.size, stream=stream)
    states = check_files(data_dir, files)
    bad = [s for s in states if not s.usable]
    if bad:
        lines = [f"  {s.file.path}: {s.state} ({s.detail})" for s in bad]
        raise CorruptFileError(f"task {task!r}: after fetching, some files do not verify:\n" + "\n".join(lines))
    return states


def _match(needed: str, names: list[str]) -> list[str]:
    """Names in ``names`` that end with ``needed``'s last k path parts, for the smallest k that is unique
    (a basename is enough unless several files share it)."""
    parts = PurePosixPath(needed).parts
    found: list[str] = []
    for k in range(1, len(parts) + 1):
        tail = parts[-k:]
        found = [n for n in names if PurePosixPath(n).parts[-k:] == tail]
        if len(found) <= 1:
            return found
    return found


def _variants(file: DataFile) -> list[str]:
    """Names a copy of ``file`` may have: itself and, for ``x.gz``, the decompressed ``x``."""
    return [file.path, file.path[:-3]] if file.path.endswith(".gz") else [file.path]


def import_files(task: str, data_dir: Path, files: list[DataFile], source: Path,
                 verify: bool = True) -> list[FileState]:
    """Copy the task's files from ``source`` (a folder, an archive or a single file) into the data directory.

    Each copy is verified before it replaces anything (md5, or the md5 of a gzip file's decompressed content);
    with ``verify=False`` a copy that does not verify is kept and recorded as ``unverified``, with its origin.
    """
    data_dir, source = Path(data_dir), Path(source).expanduser()
    if not source.exists():
        raise UserError(f"import: {source} does not exist")
    if not (source.is_dir() or source.is_file()):  # a fifo would block the copy, /dev/zero would fill the disk
        raise UserError(f"import: {source} is {kind_of(source.stat().st_mode)}; give a folder, an archive or a file")
    archive = source.is_file() and is_archive(source) and not any(
        source.name == PurePosixPath(v).name for f in files for v in _variants(f))
    if source.is_dir():
        names = sorted(p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file())
    elif archive:
        names = list_members(source)
    else:
        names = [source.name]
    plan: list[tuple[DataFile, str, str]] = []  # (file, name in source, destination relative path)
    not_found = []
    for f in files:
        for variant in _variants(f):
            found = _match(variant, names)
            if len(found) > 1:
                raise UserError(f"import: {source} holds several candidates for {f.path}: "
                                f"{', '.join(map(repr, found[:5]))}")  # repr: a name cannot drive the terminal
            if found:
                plan.append((f, found[0], variant))
                break
        else:
            not_found.append(f)
    if not plan:
        wanted = "\n".join(f"  {f.path}: {describe_file(f)}" for f in files)
        raise DataMissingError(f"import: none of the files of task {task!r} are in {source}; it needs:\n{wanted}")
    manifest = Manifest(data_dir)
    with staging_folder(data_dir) as staging:  # those a killed import left are removed first
        if archive:
            safe_extract(source, Path(staging), {name: rel for _, name, rel in plan})
        states, errors = [], []
        for f, name, rel in plan:
            src = Path(staging) / rel if archive else (source / name if source.is_dir() else source)
            state = _place(data_dir, f, src, rel, Path(staging), manifest, verify, origin=f"{source}:{name}"
                           if archive else str(src))
            states.append(state)
            if not state.usable:
                errors.append(f"  {f.path} (from {src}): {state.detail}")
    manifest.save()
    if errors:
        raise CorruptFileError(
            f"import: {len(errors)} file(s) of task {task!r} do not verify and were not imported:\n"
            + "\n".join(errors) + "\nIf you trust these copies, rerun with --no-verify (they are then recorded as "
            "unverified, with their origin)")
    if not_found:
        states += [FileState(f, "missing") for f in not_found]
    return states


def _place(data_dir: Path, file: DataFile, src: Path, rel: str, staging: Path, manifest: Manifest,
           verify: bool, origin: str) -> FileState:
    """Copy ``src`` into the staging folder, verify it as ``file``, then move it to ``data_dir/rel``."""
    target = data_dir / rel
    staged = staging / ("placed-" + rel.replace("/", "_"))
    try:
        shutil.copyfile(src, staged)
    except OSError as exc:
        if exc.filename is not None and Path(exc.filename) == Path(src):
            raise UserError(f"import: cannot read {src}: {exc.strerror or exc}") from None
        raise refused(exc, data_dir) from exc  # the data folder refused the copy (full, read-only)
    probe = Manifest(staging)
    state = check_file(staging, DataFile(staged.name if rel == file.path else staged.name + ".gz", file.url,
                                         file.md5, file.size, file.content_md5), probe)
    if not state.usable and verify:
        return FileState(file, "mismatch", None, state.detail, state.md5)
    make_folder(target.parent)
    with writing_to(target):
        for other in {data_dir / v for v in _variants(file)} - {target}:
            other.unlink(missing_ok=True)  # one copy only: the loader must not read a stale sibling
    sums = {k: v for k, v in probe.entries.get(staged.name, {}).items() if k in ("md5", "content_md5")}
    with writing_to(target):
        os.replace(staged, target)
    verified = {"ok": "content-md5" if "decompressed" in state.detail else "md5",
                "unchecked": "no published checksum"}.get(state.state, "unverified")
    manifest.record_origin(rel, target, source=origin, verified=verified,
                           imported_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **sums)
    return check_file(data_dir, file, manifest)


def prepare_files(task: str, data_dir: Path, files: list[DataFile], download: bool) -> list[FileState]:
    """A file task's ``prepare``: fetch what is missing when ``download``, else check and explain what to do."""
    if download:
        return fetch_files(task, Path(data_dir), files)
    return require_files(task, Path(data_dir), files)
