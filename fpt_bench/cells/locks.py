"""Cell claims: a lock file next to a cell's result, so two workers (or two users on a shared file system)
never run the same cell at once.

A lock records its owner (host, pid) and is refreshed by a heartbeat while the cell runs. It is stale when its
owner is a dead process on this host, or when its heartbeat is older than ``STALE_AFTER`` seconds (an owner on
another host that died); a stale lock is taken over: exactly one contender wins the takeover by renaming it.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path

STALE_AFTER = 300.0
HEARTBEAT_EVERY = 30.0


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
    try:
        owner = json.loads(path.read_text())
        age = (now or time.time()) - path.stat().st_mtime
    except FileNotFoundError:
        return False  # gone: not stale, simply free
    except (OSError, ValueError):
        return True  # unreadable or half-written by a dead writer
    if owner.get("host") == socket.gethostname() and not _pid_alive(int(owner.get("pid", -1))):
        return True
    return age > STALE_AFTER


class CellLock:
    """``with CellLock(result_path) as claimed:`` — ``claimed`` is False when another live owner holds it."""

    def __init__(self, result: Path) -> None:
        self.path = lock_path(result)
        self.token = uuid.uuid4().hex
        self.claimed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
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
                if json.loads(self.path.read_text()).get("token") == self.token:
                    self.path.unlink()
            except (OSError, ValueError):
                pass
            self.claimed = False

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
