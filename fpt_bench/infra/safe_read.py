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
    try:
        with open_regular(path, what, max_bytes) as handle:
            data = handle.read(max_bytes + 1)
    except CorruptFileError:
        raise
    except OSError as exc:
        raise CorruptFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise CorruptFileError(f"{path}: more than {max_bytes} bytes; a {what} is at most {max_bytes} bytes")
    return data


def read_text(path: Path, max_bytes: int, what: str = "file") -> str:
    """``read_bytes`` decoded as UTF-8 (a decoding error is a CorruptFileError naming the file)."""
    data = read_bytes(path, max_bytes, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorruptFileError(f"{path}: not UTF-8 text ({exc})") from None
