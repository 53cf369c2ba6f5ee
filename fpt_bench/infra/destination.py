"""Places fpt-bench writes to, and one message for every way they can refuse.

A destination (``run --output-dir``, ``schema --output``, ``leaderboard --output/--plots/--publish``, ``data
import/generate``, ``new-plugin --dir``, a cell's lock or result) can be a file where a folder is needed, lie under
a file, be on a read-only file system, belong to someone else, or be full. Every write helper
(``fpt_bench.infra.atomic``, cell locks, the data importer, plots) turns the operating system's error into a
:class:`DestinationError`: a ``UserError`` (one message naming the path and the problem, exit code 2, no
traceback) that is still an ``OSError`` with the original ``errno``, so code that handles a full disk keeps
working. The command line's top-level handler uses :func:`problem` for any OS error that escapes elsewhere.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fpt_bench.api.errors import UserError

FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class DestinationError(UserError, OSError):
    """A place fpt-bench must write to refused (its ``errno``, ``strerror`` and ``filename`` are the OS's)."""

    def __init__(self, path: Path | str, exc: OSError, what: str = "write") -> None:
        OSError.__init__(self, exc.errno, exc.strerror, str(path))
        self.message = f"cannot {what} {path}: {problem(exc, path)}"

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple:  # type: ignore[type-arg]  # crosses worker processes whole
        return _rebuild, (self.message, self.errno, self.strerror, self.filename)


def _rebuild(message: str, code: int | None, strerror: str | None, filename: str | None) -> DestinationError:
    error = DestinationError(filename or "", OSError(code, strerror))
    error.message = message
    return error


def _blocking_ancestor(path: Path) -> Path | None:
    """The nearest ancestor of ``path`` (or ``path`` itself) that exists and is not a folder."""
    for candidate in (path, *path.parents):
        try:
            mode = os.stat(candidate).st_mode
        except OSError:
            continue
        return None if stat.S_ISDIR(mode) else candidate
    return None


def _kind(path: Path) -> str:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return "a file"
    return "a file" if stat.S_ISREG(mode) else "a fifo" if stat.S_ISFIFO(mode) else \
        "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "a file"


def problem(exc: OSError, path: Path | str | None = None) -> str:
    """What ``exc`` means for the destination ``path``, and what to do, in words."""
    where = Path(path if path is not None else exc.filename or ".")
    code = exc.errno
    if code in (errno.ENOTDIR, errno.EEXIST):
        blocker = _blocking_ancestor(where)
        if blocker is not None:
            return f"{blocker} is {_kind(blocker)}, not a folder; choose another destination or move that file away"
    if code == errno.EISDIR:
        return "it is a folder, where a file is written; give a file name"
    if code == errno.EROFS:
        return "the file system is read-only; choose a destination on a writable one"
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied (this user may not write there); choose a folder you can write to"
    if code in FULL:
        return (f"{exc.strerror or 'no space left'} (the disk is full or the quota used up); files are written "
                "atomically, so what was there before is intact. Free some space and run the command again")
    if code == errno.ENOENT:
        return "a folder on the way does not exist and cannot be created there; choose another destination"
    if code == errno.ENAMETOOLONG:
        return "the name is too long for the file system; choose a shorter path"
    if code == errno.ELOOP:
        return "too many symbolic links on the way (a link loop?)"
    return f"{exc.strerror or exc}"


def refused(exc: OSError, path: Path | str, what: str = "write") -> DestinationError:
    """``exc`` as the one error for the destination ``path`` (itself when it already is one)."""
    return exc if isinstance(exc, DestinationError) else DestinationError(path, exc, what)


@contextmanager
def writing_to(path: Path | str, what: str = "write") -> Iterator[None]:
    """Any OS error inside becomes a :class:`DestinationError` naming ``path``."""
    try:
        yield
    except OSError as exc:
        raise refused(exc, path, what) from exc


def make_folder(path: Path | str) -> Path:
    """``mkdir -p path`` (a DestinationError naming ``path`` when it cannot be)."""
    path = Path(path)
    with writing_to(path, "create the folder"):
        path.mkdir(parents=True, exist_ok=True)
    return path


def writable_folder(path: Path | str) -> Path:
    """``path`` as a folder this process can create files in, checked now (before hours of work): created when
    missing, then a temporary file is made and removed in it."""
    path = make_folder(path)
    with writing_to(path, "write to"):
        fd, probe = tempfile.mkstemp(prefix=".fpt-bench-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    return path


def check_writable(folder: Path | str) -> None:
    """Whether files can be created in the folder ``folder`` (or, when it does not exist yet, made on the way to
    it), checked now without leaving anything behind: a DestinationError naming ``folder`` when not."""
    folder = Path(folder)
    existing = next((p for p in (folder, *folder.parents) if os.path.lexists(p)), Path("."))
    blocker = _blocking_ancestor(folder)
    if blocker is not None:
        raise DestinationError(folder, OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(blocker)), "write to")
    with writing_to(folder, "write to"):
        fd, probe = tempfile.mkstemp(prefix=".fpt-bench-probe-", dir=existing)
        os.close(fd)
        os.unlink(probe)


def os_error_message(exc: OSError) -> str | None:
    """The command line's one message for an OS error no write helper turned into a DestinationError (a
    plugin's own file, a library writing a path itself): the path and the problem; None when the error names no
    path and is not a full disk (a bug, or the network: its traceback is worth more)."""
    if exc.errno in FULL:
        where = f" writing {exc.filename}" if exc.filename else ""
        return (f"no space left on the device{where} ({exc.strerror}); files are written atomically, so what was "
                "there before is intact. Free some space and run the command again")
    if exc.filename is None:
        return None
    return f"{exc.filename}: {problem(exc, exc.filename)}"
