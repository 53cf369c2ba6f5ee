"""Signals (issue 18, class 11), with real processes and real signals.

- Ctrl-C, SIGTERM or SIGHUP while fpt-bench starts (planted at the moment Python imports torch) is one line and
  exit code 128 + the signal's number, never a traceback;
- SIGTERM and SIGHUP during a cell stop it the way Ctrl-C does: the lock is released, the checkpoint kept, the
  message says how to resume, and the rerun resumes from the checkpoint; a SIGHUP that was ignored (``nohup``)
  stays ignored;
- with ``--workers 2``, Ctrl-C to the terminal's process group (reaching a busy and an idle worker) and SIGTERM to
  the main process alone (passed on to the workers) end every process, without a traceback from any of them;
- ``data import``: a SIGTERM removes its staging folder; the folders of imports killed outright (SIGKILL) are
  removed by the next import, the folders of live imports are not.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from reliability_support import tally

from fpt_bench.cells.locks import lock_path
from fpt_bench.results.store import checkpoint_path

TINY = "weights=random,n_layers=1,n_embd=16,n_head=2"
RUN = ["run", "--task", "bit_xor", "--backbone", "gpt2", "--backbone-args", TINY, "--profile", "smoke",
       "--device", "cpu", "--task-args", "n_val=16,n_test=16", "--no-progress", "--eval-every", "1000"]

# a child that plants the signal at the moment Python starts importing torch, then runs the command line
AT_TORCH_IMPORT = """
import os, signal, sys
class Trap:
    def find_spec(self, name, path=None, target=None):
        if name == "torch":
            sys.meta_path.remove(self)
            os.kill(os.getpid(), getattr(signal, sys.argv[1]))
        return None
sys.meta_path.insert(0, Trap())
from fpt_bench.cli import main
sys.exit(main(sys.argv[2:]))
"""

# a child whose data import signals itself while it copies a file into its staging folder
DURING_IMPORT_COPY = """
import os, shutil, signal, sys
real = shutil.copyfile
def copyfile(src, dst, *a, **k):
    real(src, dst, *a, **k)
    os.kill(os.getpid(), getattr(signal, sys.argv[1]))
shutil.copyfile = copyfile
from fpt_bench.cli import main
sys.exit(main(sys.argv[2:]))
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FPT_BENCH_STRICT_PLUGINS", "FPT_BENCH_DISABLE_PLUGINS")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
    return env


def _start(args: list[str], code: str | None = None, signum: str = "", ignore_hup: bool = False,
           cwd: Path | None = None) -> subprocess.Popen[str]:
    argv = [sys.executable, "-c", code, signum, *args] if code else [sys.executable, "-m", "fpt_bench.cli", *args]

    def prepare() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # as from a shell: a job started with & would ignore Ctrl-C
        if ignore_hup:
            signal.signal(signal.SIGHUP, signal.SIG_IGN)  # what nohup does

    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
                            start_new_session=True, preexec_fn=prepare, cwd=cwd)


def _wait_for(condition, process: subprocess.Popen[str], timeout: float = 240) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            out, err = process.communicate()
            raise AssertionError(f"the run ended before the signal (code {process.returncode}):\n{out}\n{err}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("timed out waiting for the run to get there")
        time.sleep(0.05)


def _live_members(pgid: int) -> list[str]:
    """Processes of the group ``pgid`` that still run (zombies waiting to be reaped do not count)."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(entry.name)
    return alive


def _no_process_left(pgid: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while _live_members(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _finish(process: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


# --------------------------------------------------------------------------------------------- start-up
@pytest.mark.parametrize(("name", "code"), [("SIGINT", 130), ("SIGTERM", 143), ("SIGHUP", 129)])
def test_a_signal_while_torch_is_imported_is_one_line(tmp_path: Path, name: str, code: int) -> None:
    process = _start([*RUN, "--output-dir", str(tmp_path / "r")], AT_TORCH_IMPORT, name)
    rc, out, err = _finish(process)
    assert rc == code, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fpt-bench: "), err
    assert ("interrupted" if name == "SIGINT" else f"stopped by {name}") in lines[0]
    assert "cell(s) on" not in out  # it was start-up: nothing ran
    tally("signals handled", "at start-up (torch import)", 1)


# ------------------------------------------------------------------------------------------- one process
@pytest.mark.parametrize(("name", "code"), [("SIGTERM", 143), ("SIGHUP", 129)])
def test_sigterm_and_sighup_stop_a_cell_like_ctrl_c(tmp_path: Path, name: str, code: int) -> None:
    out_dir = tmp_path / "r"
    args = [*RUN, "--output-dir", str(out_dir), "--steps", "400", "--checkpoint-every", "5"]
    process = _start(args)
    ckpt = lambda: next(iter(out_dir.rglob("*.ckpt")), None)  # noqa: E731
    _wait_for(lambda: ckpt() is not None and ckpt().stat().st_size > 0, process)  # type: ignore[union-attr]
    result = ckpt().with_suffix(".json")  # type: ignore[union-attr]
    assert lock_path(result).exists()  # mid-cell: claimed
    process.send_signal(getattr(signal, name))
    rc, _, err = _finish(process)
    assert rc == code, err
    assert "Traceback" not in err
    assert f"stopped by {name}" in err and "run the same command again to resume" in err
    assert not lock_path(result).exists()  # released: another host need not wait for it to go stale
    assert checkpoint_path(result).exists() and not result.exists()
    assert _no_process_left(process.pid)
    rerun = _start(args)
    rc, _, err = _finish(rerun, timeout=300)
    assert rc == 0, err
    resumed = json.loads(result.read_text())
    assert resumed["status"] == "ok" and resumed["timing"]["resumed_from_step"] >= 5  # the checkpoint was used
    tally("signals handled", f"{name} during a cell (lock released, checkpoint resumed)", 1)


def test_an_ignored_sighup_stays_ignored(tmp_path: Path) -> None:
    out_dir = tmp_path / "r"
    process = _start([*RUN, "--output-dir", str(out_dir), "--steps", "60", "--checkpoint-every", "5"],
                     ignore_hup=True)
    _wait_for(lambda: any(out_dir.rglob("*.ckpt")), process)
    process.send_signal(signal.SIGHUP)  # under nohup: the run goes on to the end
    rc, _, err = _finish(process, timeout=300)
    assert rc == 0, err
    assert len(list(out_dir.rglob("*.json"))) == 1
    tally("signals handled", "SIGHUP under nohup (ignored)", 1)


# ------------------------------------------------------------------------------------------------ workers
@pytest.mark.parametrize("how", ["Ctrl-C to the process group", "SIGTERM to the main process"])
def test_workers_stop_without_a_traceback(tmp_path: Path, how: str) -> None:
    """Two workers, one busy with a long cell and one idle after a short one: the signal ends them all."""
    out_dir = tmp_path / "r"
    process = _start([*RUN, "--output-dir", str(out_dir), "--sweep", "steps=2,800", "--checkpoint-every", "5",
                      "--workers", "2"])
    _wait_for(lambda: len(list(out_dir.rglob("*.json"))) == 1 and any(out_dir.rglob("*.ckpt")), process)
    ckpt = next(out_dir.rglob("*.ckpt"))
    if how.startswith("Ctrl-C"):
        os.killpg(process.pid, signal.SIGINT)
        code = 130
    else:
        process.send_signal(signal.SIGTERM)
        code = 143
    rc, _, err = _finish(process)
    assert rc == code, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert err.strip().splitlines()[-1].startswith("fpt-bench: ")
    assert not lock_path(ckpt.with_suffix(".json")).exists() and ckpt.exists()
    assert not ckpt.with_suffix(".json").exists()
    assert _no_process_left(process.pid), "a worker outlived the run"
    tally("signals handled", f"--workers 2: {how}", 1)


# ------------------------------------------------------------------------------------------- data import
def _mnist_copy(tmp_path: Path) -> Path:
    source = tmp_path / "copy"
    source.mkdir()
    (source / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not really mnist" * 100)
    return source


def _staging(data: Path) -> list[str]:
    return sorted(p.name for p in data.glob(".import-*")) if data.exists() else []


@pytest.mark.parametrize(("name", "code"), [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_stopped_import_removes_its_staging_folder(tmp_path: Path, name: str, code: int) -> None:
    data = tmp_path / "data"
    process = _start(["data", "import", "mnist", str(_mnist_copy(tmp_path)), "--data-dir", str(data),
                      "--no-verify"], DURING_IMPORT_COPY, name)
    rc, _, err = _finish(process)
    assert rc == code and "Traceback" not in err, err
    assert _staging(data) == []
    assert not (data / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").exists()  # stopped before it counted
    tally("signals handled", f"{name} during data import (staging removed)", 1)


def test_the_next_import_removes_what_killed_imports_left(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fpt_bench.cli import main
    from fpt_bench.datastore.staging import STALE_AFTER, _host

    data = tmp_path / "data"
    source = _mnist_copy(tmp_path)
    process = _start(["data", "import", "mnist", str(source), "--data-dir", str(data), "--no-verify"],
                     DURING_IMPORT_COPY, "SIGKILL")
    rc, _, _ = _finish(process)
    assert rc == -signal.SIGKILL
    killed = _staging(data)
    assert len(killed) == 1  # SIGKILL cannot be handled: its folder stays, named after its dead owner
    assert killed[0].startswith(f".import-{_host()}-{process.pid}-")
    old = data / ".import-abc123"  # an older fpt-bench's, untouched for two days
    old.mkdir()
    (old / "placed-x").write_bytes(b"x")
    os.utime(old, (time.time() - STALE_AFTER - 3600,) * 2)
    elsewhere = data / ".import-otherhost-12345-live"  # another host's, still changing: a live import
    elsewhere.mkdir()
    mine = data / f".import-{_host()}-{os.getpid()}-live"  # a live process on this host
    mine.mkdir()
    assert main(["data", "import", "mnist", str(source), "--data-dir", str(data), "--no-verify"]) == 2  # 1 of 4
    assert _staging(data) == sorted([elsewhere.name, mine.name])
    assert (data / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").exists()
    capsys.readouterr()
    tally("signals handled", "staging folders of killed imports removed", 2)
