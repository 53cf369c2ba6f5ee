"""Safe archive extraction: only regular files, only inside the destination, only the members asked for.

A member whose name is absolute or climbs out with ``..``, a link, a device or a fifo is refused with an error
naming the archive and the member; nothing is written outside the destination. Tar members go through Python's
``data`` extraction filter first; zip members (zipfile has no filter) through the same name checks. Each file is
written through a temporary name and renamed, so an interrupted extraction never leaves a file that looks complete.
"""

from __future__ import annotations

import lzma
import shutil
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO

from fpt_bench.api.errors import CorruptFileError, UserError
from fpt_bench.infra.atomic import atomic_write

# what zipfile raises for a member it cannot read: encrypted (RuntimeError), a compression method it does not
# implement (NotImplementedError), broken LZMA or bz2 data (LZMAError, ValueError)
MEMBER_ERRORS = (RuntimeError, NotImplementedError, lzma.LZMAError, ValueError)


def is_archive(path: Path) -> bool:
    path = Path(path)
    return path.is_file() and (tarfile.is_tarfile(path) or zipfile.is_zipfile(path))


def safe_member_name(archive: Path, name: str) -> str:
    """The member's normalised relative path, or CorruptFileError when it would leave the destination."""
    clean = name.replace("\\", "/")
    pure = PurePosixPath(clean)
    if pure.is_absolute() or clean.startswith("/") or (pure.parts and ":" in pure.parts[0]):
        raise CorruptFileError(f"{archive}: member {name!r} has an absolute path; refusing to extract")
    parts = [p for p in pure.parts if p not in ("", ".")]
    if ".." in parts:
        raise CorruptFileError(f"{archive}: member {name!r} climbs out of the destination ('..'); refusing")
    return "/".join(parts)


def _checked_tar_member(archive: Path, member: tarfile.TarInfo) -> str:
    """A tar member's normalised name, after Python's ``data`` extraction filter (PEP 706): absolute paths, paths
    that leave the destination, device files and links pointing outside are refused, as ``tar --data`` would."""
    try:
        tarfile.data_filter(member, _NOWHERE)
    except tarfile.AbsolutePathError:
        raise CorruptFileError(f"{archive}: member {member.name!r} has an absolute path; refusing to extract") from None
    except tarfile.OutsideDestinationError:
        raise CorruptFileError(f"{archive}: member {member.name!r} climbs out of the destination ('..'); "
                               f"refusing") from None
    except tarfile.FilterError as exc:  # special files, links that leave the destination
        raise CorruptFileError(f"{archive}: member {member.name!r}: {exc}; refusing") from None
    return safe_member_name(archive, member.name)


_NOWHERE = "/fpt-bench-extraction-root"  # the filter's checks are relative to the destination; any absolute root


def list_members(archive: Path) -> list[str]:
    """Names of the regular files in ``archive`` (normalised; unsafe names raise)."""
    return [name for name, _, _ in _files(Path(archive), None)]


def _files(archive: Path, wanted: set[str] | None) -> Iterator[tuple[str, IO[bytes] | None, int]]:
    """(normalised name, readable, size its header declares) for each regular file (readable only for wanted
    ones)."""
    try:
        if tarfile.is_tarfile(archive):
            with tarfile.open(archive, "r:*") as tar:
                for member in tar:
                    name = _checked_tar_member(archive, member)
                    if member.isdir():
                        continue
                    selected = wanted is None or name in wanted
                    if not member.isfile():
                        if selected:
                            kind = "a link" if member.issym() or member.islnk() else "not a regular file"
                            raise CorruptFileError(f"{archive}: member {member.name!r} is {kind}; refusing")
                        continue
                    yield name, tar.extractfile(member) if selected else None, member.size
        elif zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    name = safe_member_name(archive, info.filename)
                    if info.is_dir():
                        continue
                    mode = (info.external_attr >> 16) & 0o170000
                    selected = wanted is None or name in wanted
                    if mode and mode != 0o100000 and selected:
                        raise CorruptFileError(f"{archive}: member {info.filename!r} is not a regular file; refusing")
                    yield name, zf.open(info) if selected else None, info.file_size
        else:
            raise CorruptFileError(f"{archive}: not a tar or zip archive")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, *MEMBER_ERRORS) as exc:
        raise CorruptFileError(f"{archive}: damaged or unsupported archive ({exc})") from None


def _copy(src: IO[bytes], out: IO[bytes], archive: Path, name: str, size: int) -> None:
    """Copy one member, no more than the ``size`` its header declares (a member that decompresses to more is a
    damaged archive, and the copy stops there); a read that fails (truncated or corrupt compressed data, a bad
    CRC) is a damaged archive, a write that fails is the disk's problem (the caller says so)."""
    copied = 0
    while True:
        try:
            block = src.read(min(1 << 20, size - copied + 1))
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, zlib.error, *MEMBER_ERRORS) as exc:
            raise CorruptFileError(f"{archive}: damaged or unsupported archive: member {name!r} cannot be read "
                                   f"({type(exc).__name__}: {exc})") from None
        if not block:
            if copied != size:
                raise CorruptFileError(f"{archive}: damaged archive: member {name!r} holds {copied} bytes, its "
                                       f"header says {size}")
            return
        copied += len(block)
        if copied > size:
            raise CorruptFileError(f"{archive}: damaged archive: member {name!r} holds more than the {size} bytes "
                                   f"its header declares")
        out.write(block)


def _free_space(folder: Path) -> int | None:
    """Bytes free on the file system that holds ``folder`` (or its nearest existing parent); None if unknown."""
    for place in (Path(folder), *Path(folder).parents):
        if place.exists():
            try:
                return shutil.disk_usage(place).free
            except OSError:
                return None
    return None


def safe_extract(archive: Path, dest: Path, members: dict[str, str] | None = None) -> list[Path]:
    """Extract ``archive`` into ``dest``. ``members`` maps member names to output paths relative to ``dest``
    (default: every regular file under its own name). Returns the written paths; a wanted member the archive
    lacks is an error."""
    archive, dest = Path(archive), Path(dest)
    wanted = None if members is None else {safe_member_name(archive, m): out for m, out in members.items()}
    root = dest.resolve()
    written: list[Path] = []
    for name, handle, size in _files(archive, None if wanted is None else set(wanted)):
        if handle is None:
            continue
        rel = name if wanted is None else safe_member_name(archive, wanted[name])
        target = dest / rel
        if not target.resolve().is_relative_to(root):
            raise CorruptFileError(f"{archive}: member {name!r} would land outside {dest}; refusing")
        free = _free_space(dest)  # a 459-byte tar.bz2 declared 477 MB: what cannot fit is refused before writing
        if free is not None and size > free:
            raise CorruptFileError(f"{archive}: member {name!r} declares {size} bytes, more than the {free} bytes "
                                   f"free at {dest}; refusing")
        with handle:
            try:
                atomic_write(target, lambda out, src=handle, name=name, size=size: _copy(src, out, archive, name, size))
            except OSError as exc:  # a full disk: the member was not written (no partial file is left)
                raise UserError(f"{archive}: could not write {target}: {exc.strerror or exc} (free some space "
                                f"and try again)") from None
        written.append(target)
    if wanted is not None:
        found = {p.relative_to(dest).as_posix() for p in written}
        lacking = sorted(m for m, out in wanted.items() if out not in found)
        if lacking:
            raise CorruptFileError(f"{archive}: does not contain {', '.join(lacking)}")
    return written
