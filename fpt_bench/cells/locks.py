"""Cell claims: a lock file next to a cell's result, so two workers (or two users on a shared file system)
never run the same cell at once.

A lock records its owner (host, pid) and is refreshed by a heartbeat while the cell runs. It is stale when its
owner is a dead process on this host, or when its heartbeat is older than ``STALE_AFTER`` seconds (an owner on
another host that died); a stale lock is taken over: exactly one contender wins the takeover by renaming it.

A lock's content is validated (:class:`LockOwner`). A lock that is not one (wrong types, a pid no process can
have, a list) is foreign: judged by its heartbeat alone, with a warning; an empty or cut-off one (a writer that
died between creating and filling it) is stale after ``PARTIAL_GRACE`` seconds. A folder (or a fifo, a device)
where a cell's lock, checkpoint or result should be makes that cell fail with one clear error
(:func:`check_cell_paths`); the other cells run.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import sys
import threading
import time
import uuid
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fpt_bench.api.errors import CorruptFileError, UserError
from fpt_bench.infra.destination import make_folder, refused
from fpt_bench.infra.safe_read import kind_of, read_text

STALE_AFTER = 300.0
HEARTBEAT_EVERY = 30.0
PARTIAL_GRACE = 10.0  # an empty or cut-off lock older than this was left by a writer that died while creating it
MAX_LOCK_BYTES = 1 << 16
_warned: set[str] = set()


class LockOwner(BaseModel):
    """What a lock file holds (fields added by later versions are kept, not refused)."""

    model_config = ConfigDict(extra="allow", strict=True)
    host: str
    pid: int = Field(ge=1, le=2**31 - 1)  # a pid_t
    token: str = ""
    since: float | None = None


PARTIAL, FOREIGN = "partial", "foreign"


def read_owner(path: Path) -> LockOwner | str | None:
    """The lock's owner; ``PARTIAL`` (empty or not JSON) or ``FOREIGN`` (JSON, but not a lock this fpt-bench
    wrote); None when there is no lock. A folder or other non-file there is a UserError."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError:
        return FOREIGN  # unreadable: someone else's
    if not stat.S_ISREG(mode):
        raise UserError(f"{path} is {kind_of(mode)} where a cell's lock file belongs; remove it and run again")
    try:
        text = read_text(path, MAX_LOCK_BYTES, "lock file")
    except CorruptFileError:
        return None if not path.exists() else FOREIGN
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return PARTIAL
    try:
        return LockOwner.model_validate(data)
    except ValidationError:
        return FOREIGN


def _warn(path: Path, owner: str, limit: float) -> None:
    if str(path) in _warned:
        return
    _warned.add(str(path))
    what = "is empty or cut off" if owner == PARTIAL else "does not hold a lock this fpt-bench wrote"
    print(f"fpt-bench: warning: {path} {what}; it is taken over once it has had no heartbeat for {limit:.0f}s",
          file=sys.stderr)


def lock_path(result: Path) -> Path:
    return result.with_suffix(".lock")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(path: Path, now: float | None = None) -> bool:
    owner = read_owner(path)
    try:
        age = (now or time.time()) - path.stat().st_mtime
    except FileNotFoundError:
        return False  # gone: not stale, simply free
    if age < -STALE_AFTER:  # dated further ahead than any clock skew: no heartbeat wrote that; it would never age
        age = float("inf")
    if owner is None:
        return False
    if isinstance(owner, str):
        limit = PARTIAL_GRACE if owner == PARTIAL else STALE_AFTER
        _warn(path, owner, limit)
        return age > limit
    if owner.host == socket.gethostname() and not _pid_alive(owner.pid):
        return True
    return age > STALE_AFTER


def check_cell_paths(paths: dict[str, Path]) -> None:
    """A UserError when one of a cell's files (``{"result": path, ...}``) is a folder, fifo or device: the
    cell cannot run, and the message says which path to remove."""
    for what, path in paths.items():
        try:
            mode = os.stat(path).st_mode
        except OSError:
            continue
        if not stat.S_ISREG(mode):
            raise UserError(f"{path} is {kind_of(mode)} where the cell's {what} file belongs; remove it and run "
                            f"again")


class CellLock:
    """``with CellLock(result_path) as claimed:`` — ``claimed`` is False when another live owner holds it."""

    def __init__(self, result: Path) -> None:
        self.path = lock_path(result)
        self.token = uuid.uuid4().hex
        self.claimed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> bool:
        make_folder(self.path.parent)  # a file there, a read-only disk: one error naming the folder
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not is_stale(self.path):
                    return False
                grave = self.path.with_name(f"{self.path.name}.stale-{self.token}")
                try:
                    os.rename(self.path, grave)  # only one contender renames a given lock file
                except FileNotFoundError:
                    pass
                else:
                    grave.unlink(missing_ok=True)
                continue
            except OSError as exc:
                raise refused(exc, self.path) from exc
            with os.fdopen(fd, "w") as handle:
                json.dump({"host": socket.gethostname(), "pid": os.getpid(), "token": self.token,
                           "since": time.time()}, handle)
            self.claimed = True
            self._thread = threading.Thread(target=self._beat, daemon=True)
            self._thread.start()
            return True
        return False

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_EVERY):
            try:
                os.utime(self.path)
            except OSError:
                return

    def release(self) -> None:
        self._stop.set()
        if self.claimed:
            try:
                owner = read_owner(self.path)
                if isinstance(owner, LockOwner) and owner.token == self.token:
                    self.path.unlink()
            except (OSError, UserError):
                pass
            self.claimed = False

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
