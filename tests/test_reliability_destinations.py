"""Unwritable destinations (issue 18, class 8): every command that writes, pointed at a place that refuses, ends in
one message naming the path and the problem, exit code 2, no traceback, and leaves nothing behind.

The places: a file where a folder belongs, a path under a file, a read-only file system (EROFS raised by the
operating-system calls that create files and folders, as a read-only mount would), and a folder this user really
cannot write to (a ``chmod 555`` folder; as root, where permissions do not stop writes, sysfs).
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import run_cli
from reliability_support import tally

REPO = Path(__file__).resolve().parents[1]
PUBLISHED = sorted((REPO / "leaderboard" / "results" / "bit_xor").rglob("*.json"))
TINY = "weights=random,n_layers=1,n_embd=16,n_head=2"
RUN = ["run", "--task", "bit_xor", "--backbone-args", TINY, "--profile", "smoke", "--steps", "2", "--device", "cpu",
       "--task-args", "n_val=16,n_test=16", "--no-progress"]


def _results(tmp: Path) -> Path:
    folder = tmp / "results"
    target = folder / PUBLISHED[0].relative_to(REPO / "leaderboard" / "results")
    target.parent.mkdir(parents=True)
    shutil.copyfile(PUBLISHED[0], target)
    return folder


def _mnist_copy(tmp: Path) -> Path:
    (tmp / "copy").mkdir()
    (tmp / "copy" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"x" * 64)
    return tmp / "copy"


# command -> argv for a destination D (a folder unless the name says file)
COMMANDS: dict[str, Callable[[Path, Path], list[str]]] = {
    "run --output-dir": lambda d, tmp: [*RUN, "--output-dir", str(d)],
    "schema --output": lambda d, tmp: ["schema", "--output", str(d / "schema.json")],
    "data import": lambda d, tmp: ["data", "import", "mnist", str(_mnist_copy(tmp)), "--data-dir", str(d),
                                   "--no-verify"],
    "data generate": lambda d, tmp: ["data", "generate", "listops", "--out", str(d), "--sizes",
                                     "train=2,val=2,test=2"],
    "new-plugin --dir": lambda d, tmp: ["new-plugin", "parity", "--dir", str(d)],
    "leaderboard --output": lambda d, tmp: ["leaderboard", str(_results(tmp)), "--output", str(d / "table.md")],
    "leaderboard --plots": lambda d, tmp: ["leaderboard", str(_results(tmp)), "--plots", str(d)],
    "leaderboard --publish": lambda d, tmp: ["leaderboard", str(_results(tmp)), "--publish", str(d)],
    "leaderboard --add": lambda d, tmp: ["leaderboard", "--add", str(next(_results(tmp).rglob("*.json"))),
                                         "--publish", str(d)],
}


class ReadOnly:
    """EROFS from every call that creates a file or folder under ``root`` (what a read-only mount answers)."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = str(root)
        real_open, real_mkdir = os.open, os.mkdir

        def refuse(path: object) -> None:
            if str(os.path.abspath(os.fspath(path))).startswith(self.root):  # type: ignore[arg-type]
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))  # type: ignore[arg-type]

        def open_(path: object, flags: int, *args: object, **kwargs: object) -> int:
            if flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR):
                refuse(path)
            return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

        def mkdir(path: object, *args: object, **kwargs: object) -> None:
            refuse(path)
            real_mkdir(path, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(os, "open", open_)
        monkeypatch.setattr(os, "mkdir", mkdir)


@pytest.fixture
def not_writable(tmp_path: Path) -> Iterator[Path]:
    """A folder this process really cannot create anything in."""
    if os.geteuid() != 0:
        folder = tmp_path / "locked"
        folder.mkdir()
        folder.chmod(0o555)
        yield folder / "sub"
        folder.chmod(0o755)
        return
    folder = Path("/sys") / f"fpt-bench-test-{uuid.uuid4().hex[:8]}"  # sysfs: not even root creates files there
    try:
        folder.mkdir()
    except PermissionError:
        yield folder
        return
    folder.rmdir()
    raise AssertionError("/sys let root create a folder: find another unwritable place for this test")


KINDS = {  # destination kind -> what the message must say
    "a file": "is a file, not a folder",
    "under a file": "is a file, not a folder",
    "read-only": "read-only",
    "not writable": "permission denied",
}


def _inventory(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_an_unwritable_destination_is_one_message(command: str, kind: str, tmp_path: Path, not_writable: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "work"
    work.mkdir()
    blocker = work / "afile"
    blocker.write_text("a file")
    destination = {"a file": blocker, "under a file": blocker / "sub" / "deeper", "read-only": work / "ro" / "sub",
                   "not writable": not_writable}[kind]
    argv = COMMANDS[command](destination, work)
    before = _inventory(work)
    if kind == "read-only":
        (work / "ro").mkdir()
        before = _inventory(work)
        ReadOnly(work / "ro", monkeypatch)
    code, _, err = run_cli(*argv, capsys=capsys)
    assert code == 2, err
    assert "Traceback" not in err
    message = [line for line in err.splitlines() if line.startswith("fpt-bench: error:")]
    assert len(message) == 1, err
    assert KINDS[kind] in message[0], message[0]
    named = blocker if kind in ("a file", "under a file") else destination
    assert str(named) in message[0] or str(destination) in message[0], message[0]
    assert _inventory(work) == before  # nothing written, no temporary file left
    assert blocker.read_text() == "a file"
    tally("hostile inputs handled", "unwritable destinations", 1)


def test_a_cell_whose_folder_is_blocked_fails_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The output folder is writable, but a file sits where one task's results go: that cell fails with the
    message, the other task's cell runs."""
    out = tmp_path / "r"
    out.mkdir()
    (out / "bit_memory").write_text("in the way")
    code, _, err = run_cli(*RUN, "--task", "bit_memory", "--output-dir", str(out), capsys=capsys)
    assert code == 2 and "Traceback" not in err
    assert f"{out / 'bit_memory'} is a file, not a folder" in err
    assert len(list((out / "bit_xor").rglob("*.json"))) == 1
    tally("hostile inputs handled", "unwritable destinations", 1)


def test_an_os_error_outside_the_write_helpers_is_one_message(monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """The command line's last line of defence: an OS error that names a path (a plugin writing a file itself)."""
    from fpt_bench.cli import app

    def refused(args: object) -> int:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), "/srv/shared/out.csv")

    monkeypatch.setitem(app.COMMANDS, "schema", refused)
    code, _, err = run_cli("schema", capsys=capsys)
    assert code == 2 and "Traceback" not in err
    assert err.strip() == ("fpt-bench: error: /srv/shared/out.csv: permission denied (this user may not write "
                           "there); choose a folder you can write to")


def test_a_destination_error_keeps_the_os_error() -> None:
    """Code that handles a full disk by errno keeps working: the error is a UserError and still the OSError."""
    from fpt_bench import UserError
    from fpt_bench.infra.destination import DestinationError, writing_to

    with pytest.raises(DestinationError) as caught, writing_to("/x/y.json"):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert isinstance(caught.value, UserError) and isinstance(caught.value, OSError)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == "/x/y.json"
    assert str(caught.value).startswith("cannot write /x/y.json: No space left on device")
