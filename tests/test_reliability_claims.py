"""Claims and flags that used to stop a sweep or do nothing (issue 18, classes 9 and 12):

9. a cell's lock file with content no fpt-bench wrote (a pid that is a string, null, huge or negative; a list;
   nothing; cut-off JSON) is judged by its heartbeat with a warning, never a traceback; a folder (or fifo) where
   a cell's lock, checkpoint or result belongs fails that cell with one message and the other cells run;
12. ``--log KIND=...`` with a kind no installed logger reads is a usage error with "did you mean"."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import sys
import time
from pathlib import Path

import pytest
from conftest import result_files, run_cli
from reliability_support import tally

from fpt_bench import UserError, hookimpl
from fpt_bench.cells import locks
from fpt_bench.cells.locks import PARTIAL_GRACE, STALE_AFTER, CellLock, is_stale, lock_path
from fpt_bench.host import manager
from fpt_bench.host.manager import Host

TINY = "weights=random,n_layers=1,n_embd=16,n_head=2"
RUN = ["run", "--task", "bit_xor", "--backbone-args", TINY, "--profile", "smoke", "--steps", "2", "--device",
       "cpu", "--task-args", "n_val=16,n_test=16", "--no-progress"]

GARBAGE = {  # lock content -> whether it is foreign JSON (judged by heartbeat) or partial (a short grace)
    "pid a string": ({"host": "h", "pid": "123", "token": "t"}, "foreign"),
    "pid null": ({"host": socket.gethostname(), "pid": None}, "foreign"),
    "pid huge": ({"host": socket.gethostname(), "pid": 2**70}, "foreign"),
    "pid negative": ({"host": socket.gethostname(), "pid": -1}, "foreign"),
    "pid a float": ({"host": socket.gethostname(), "pid": 1.5}, "foreign"),
    "host a number": ({"host": 5, "pid": 1}, "foreign"),
    "a list": ([1, 2, 3], "foreign"),
    "a string": ("locked", "foreign"),
    "empty": (None, "partial"),
    "cut-off JSON": ('{"host": "h", "pi', "partial"),
    "deeply nested": ("[" * 10000, "partial"),
    "too large": (" " * 100000, "foreign"),
}


def _write(path: Path, content: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("" if content is None else content if isinstance(content, str) else json.dumps(content))


@pytest.mark.parametrize("name", list(GARBAGE))
def test_lock_with_garbage_is_judged_by_its_heartbeat(tmp_path: Path, name: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    content, kind = GARBAGE[name]
    path = lock_path(tmp_path / "cell.json")
    _write(path, content)
    locks._warned.clear()
    assert is_stale(path) is False  # fresh: maybe a live writer of another version (or one still writing)
    limit = PARTIAL_GRACE if kind == "partial" else STALE_AFTER
    old = time.time() - limit - 5
    os.utime(path, (old, old))
    assert is_stale(path) is True  # no heartbeat for longer than the limit: taken over
    err = capsys.readouterr().err
    assert err.count(str(path)) == 1 and "taken over once it has had no heartbeat" in err  # warned once
    lock = CellLock(tmp_path / "cell.json")
    assert lock.acquire()  # the takeover works
    assert json.loads(path.read_text())["pid"] == os.getpid()
    lock.release()
    assert not path.exists()
    tally("hostile inputs handled", "lock files with garbage", 1)


def test_release_leaves_a_lock_that_became_garbage(tmp_path: Path) -> None:
    lock = CellLock(tmp_path / "cell.json")
    assert lock.acquire()
    lock.path.write_text("[1, 2]")  # replaced by something that is not our lock: not ours to remove
    lock.release()
    assert lock.path.read_text() == "[1, 2]"


@pytest.mark.parametrize("where", ["lock", "checkpoint", "result"])
def test_folder_where_a_cell_file_belongs_fails_that_cell_only(tmp_path: Path, where: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Seed 0's lock, checkpoint or result path is a folder: seed 0 fails with one message naming it, seed 1
    runs; exit code 2, no traceback. A second run says the same (nothing half-done is left)."""
    out = tmp_path / "out"
    assert run_cli(*RUN, "--output-dir", str(out), "--seeds", "0,1")[0] == 0
    zero, one = sorted(result_files(out), key=lambda p: "seed1" in p.name)
    zero.unlink()
    one.unlink()
    blocked = {"lock": zero.with_suffix(".lock"), "checkpoint": zero.with_suffix(".ckpt"), "result": zero}[where]
    blocked.mkdir()
    for summary in ("1 ok, 0 diverged, 1 failed, 0 skipped", "0 ok, 0 diverged, 1 failed, 1 skipped"):
        code, stdout, err = run_cli(*RUN, "--output-dir", str(out), "--seeds", "0,1", capsys=capsys)
        assert code == 2 and "Traceback" not in err + stdout, err
        assert f"{blocked} is a folder where the cell's {where} file belongs; remove it and run again" in err
        assert summary in stdout and one.is_file(), stdout
    assert blocked.is_dir()
    tally("hostile inputs handled", "folders where a cell's file belongs", 1)


# ------------------------------------------------------------------------------------------------ --log
def _host_with(monkeypatch: pytest.MonkeyPatch, *plugins: tuple[object, str]) -> None:
    host = Host(strict=True).load_entry_points()
    for plugin, name in plugins:
        host.register(plugin, name)
    monkeypatch.setattr(manager, "_HOST", host)


@pytest.mark.parametrize("flag, hint", [("jsnl=ev.jsonl", "did you mean 'jsonl'?"), ("cvs=x.csv", "did you mean"),
                                        ("tensorbord=runs", "did you mean 'tensorboard'?"),
                                        ("nothing=x", "loggers here: csv, jsonl, tensorboard")])
def test_unknown_log_kind_is_a_usage_error(tmp_path: Path, flag: str, hint: str, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's case (--log jsnl=... exited 0 and logged nothing) and its kin: exit 2 before any cell runs."""
    _host_with(monkeypatch)
    monkeypatch.delenv("FPT_BENCH_LOG_" + flag.split("=")[0].upper(), raising=False)
    code, _, err = run_cli(*RUN, "--output-dir", str(tmp_path), "--log", flag, capsys=capsys)
    assert code == 2 and f"--log {flag!r}: no installed logger reads" in err and hint in err, err
    assert "Traceback" not in err and not result_files(tmp_path)
    assert "FPT_BENCH_LOG_" + flag.split("=")[0].upper() not in os.environ
    tally("hostile inputs handled", "unknown --log kinds", 1)


def test_log_kinds_of_plugins_are_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A logger module that reads FPT_BENCH_LOG_<KIND> (the documented convention) or lists LOG_KINDS makes its
    kinds valid; the built-in kinds are valid in any case."""
    from fpt_bench.cli.logs import apply_log_flags

    source = tmp_path / "printer_logger.py"
    source.write_text("import os\nfrom fpt_bench import hookimpl\n\n\n@hookimpl\n"
                      "def fpt_bench_cell_evaluated(cell, step, metrics):\n"
                      "    if os.environ.get('FPT_BENCH_LOG_PRINTER'):\n        print(step, metrics)\n")
    spec = importlib.util.spec_from_file_location("printer_logger", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["printer_logger"] = module
    spec.loader.exec_module(module)

    class Declared:
        LOG_KINDS = ("Remote",)

        @hookimpl
        def fpt_bench_cell_finished(self, cell, result) -> None:  # type: ignore[no-untyped-def]
            pass

    _host_with(monkeypatch, (module, "printer"), (Declared(), "declared"))
    for var in ("FPT_BENCH_LOG_PRINTER", "FPT_BENCH_LOG_REMOTE", "FPT_BENCH_LOG_JSONL"):
        monkeypatch.setenv(var, "")  # recorded, so that what apply_log_flags sets is undone after the test (else
        monkeypatch.delenv(var)  # every later cell of the session logged to ev.jsonl in the working folder)
    apply_log_flags(["printer=1", "remote=http://x", "JSONL=ev.jsonl"])
    assert os.environ["FPT_BENCH_LOG_PRINTER"] == "1" and os.environ["FPT_BENCH_LOG_REMOTE"] == "http://x"
    assert os.environ["FPT_BENCH_LOG_JSONL"] == "ev.jsonl"
    with pytest.raises(UserError, match="did you mean 'printer'"):
        apply_log_flags(["printr=1"])
    sys.modules.pop("printer_logger", None)


@pytest.mark.parametrize("content", [{"host": "elsewhere", "pid": 1, "token": "t"}, "garbage"])
def test_a_lock_dated_in_the_future_does_not_hold_its_cell_forever(tmp_path: Path, content: object) -> None:
    path = lock_path(tmp_path / "cell.json")
    _write(path, content)
    ahead = time.time() + 60  # clock skew between hosts: still a live lock
    os.utime(path, (ahead, ahead))
    assert is_stale(path) is False
    ahead = time.time() + STALE_AFTER + 3600  # no heartbeat wrote that date: it would never age
    os.utime(path, (ahead, ahead))
    assert is_stale(path) is True
    tally("hostile inputs handled", "lock files with garbage", 1)
