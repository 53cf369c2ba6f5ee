"""Reading a file a user (or a stranger) points at: a regular file, of bounded size, or one clear error.

``open`` on a fifo blocks until someone writes to it, and a character device (``/dev/zero``) never ends, so
checking ``Path.is_file()`` first is not enough (a symlink can be swapped between the check and the open). Here
the file is opened with ``O_NONBLOCK`` (a fifo opens at once), checked with ``fstat`` on the open descriptor
(so the check and the read see the same file) and read up to a limit; anything else is a ``CorruptFileError``
naming the file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from fpt_bench.api.errors import CorruptFileError

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a fifo (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def kind_of(mode: int) -> str:
    """What a file of ``mode`` is, in words ("a fifo (named pipe)", "a folder", ...)."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def open_regular(path: Path, what: str = "file", max_bytes: int | None = None) -> BinaryIO:
    """Open ``path`` for reading if it is a regular file (of at most ``max_bytes``); else CorruptFileError."""
    path = Path(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise CorruptFileError(f"{path}: no such {what}") from None
    except OSError as exc:
        raise CorruptFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise CorruptFileError(f"{path}: is {kind_of(info.st_mode)}, not a regular {what}")
        if max_bytes is not None and info.st_size > max_bytes:
            raise CorruptFileError(f"{path}: {info.st_size} bytes; a {what} is at most {max_bytes} bytes")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: Path, max_bytes: int, what: str = "file") -> bytes:
    """The bytes of the regular file ``path``, at most ``max_bytes`` of them (a file that grows past the limit
    while it is read is refused too)."""
    chunks, total = [], 0
    try:
        with open_regular(path, what, max_bytes) as handle:
            while total <= max_bytes and (block := handle.read(min(1 << 20, max_bytes + 1 - total))):
                chunks.append(block)
                total += len(block)
    except OSError as exc:
        raise CorruptFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if total > max_bytes:
        raise CorruptFileError(f"{path}: more than {max_bytes} bytes; a {what} is at most {max_bytes} bytes")
    return b"".join(chunks)


def read_text(path: Path, max_bytes: int, what: str = "file") -> str:
    """``read_bytes`` decoded as UTF-8 (a decoding error is a CorruptFileError naming the file)."""
    data = read_bytes(path, max_bytes, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorruptFileError(f"{path}: not UTF-8 text ({exc})") from None


def is_plain_name(name: str) -> bool:
    """A bare file name: no folder part (either slash), not ``.``/``..``, no ``~`` (which ``expanduser`` would
    turn into a home folder), no NUL, nothing a path could climb out with."""
    return (bool(name) and name not in (".", "..") and not any(c in name for c in "/\\\0")
            and not name.startswith("~") and ":" not in name)


def child_path(folder: Path, name: str, what: str, where: Path) -> Path:
    """``folder / name`` for a file ``where`` names, confined to ``folder``: ``name`` must be a plain file name
    and must not lead out of ``folder`` through a symbolic link. Else a CorruptFileError naming ``where``."""
    if not isinstance(name, str) or not is_plain_name(name):
        raise CorruptFileError(f"{where}: {what} {name!r} is not a plain file name in {folder}; refusing to follow it")
    path = Path(folder) / name
    if path.resolve().parent != Path(folder).resolve():
        raise CorruptFileError(f"{where}: {what} {name!r} leads out of {folder} (a symbolic link); refusing to "
                               f"follow it")
    return path
