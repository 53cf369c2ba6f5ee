"""Executors: cell locks, exactly-once cells across processes, local workers, Ray (with a worker killed) and
data-parallel cells under torchrun."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import result_files

from fpt_bench.cells.locks import CellLock, is_stale, lock_path
from fpt_bench.results.store import read_result

TINY1 = "weights=random,n_layers=1,n_embd=16,n_head=2"
FAST = ["--task", "bit_xor", "--backbone-args", TINY1, "--profile", "smoke", "--steps", "2", "--device", "cpu",
        "--task-args", "n_val=16,n_test=16", "--no-progress"]


def fpt(*args: str) -> list[str]:
    return [sys.executable, "-m", "fpt_bench.cli", *args]


def seeds(n: int) -> str:
    return ",".join(str(i) for i in range(n))


def ran_by(output: str) -> set[str]:
    """Cells a process actually ran, from its report lines (seed numbers)."""
    return set(re.findall(r"\] ok\s+.* seed (\d+) /", output))


# ------------------------------------------------------------------------------------------------ locks
def test_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    result = tmp_path / "cell.json"
    first, second = CellLock(result), CellLock(result)
    assert first.acquire()
    assert not second.acquire()
    owner = json.loads(lock_path(result).read_text())
    assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
    first.release()
    assert not lock_path(result).exists()
    assert second.acquire()
    second.release()


def test_lock_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    result = tmp_path / "cell.json"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock_path(result).write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid, "token": "x"}))
    assert is_stale(lock_path(result))
    lock = CellLock(result)
    assert lock.acquire()
    assert json.loads(lock_path(result).read_text())["pid"] == os.getpid()
    lock.release()


def test_lock_of_a_silent_remote_owner_goes_stale(tmp_path: Path) -> None:
    result = tmp_path / "cell.json"
    path = lock_path(result)
    path.write_text(json.dumps({"host": "another-host", "pid": 1, "token": "x"}))
    assert not is_stale(path)  # a live heartbeat from elsewhere is respected
    old = time.time() - 3600
    os.utime(path, (old, old))
    assert is_stale(path)


# ------------------------------------------------------------------------------------- local processes
def test_two_processes_on_the_same_grid_split_the_work(tmp_path: Path) -> None:
    out = tmp_path / "out"
    cmd = fpt("run", *FAST, "--seeds", seeds(8), "--output-dir", str(out))
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    a, b = ran_by(outputs[0]), ran_by(outputs[1])
    assert a.isdisjoint(b), f"cells run twice: {a & b}"
    assert a | b == {str(i) for i in range(8)}
    files = result_files(out)
    assert len(files) == 8 and all(read_result(f).status == "ok" for f in files)
    assert not list(out.rglob("*.lock"))


def test_local_worker_processes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(fpt("run", *FAST, "--seeds", seeds(4), "--workers", "2", "--output-dir", str(out)),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert ran_by(proc.stdout) == {"0", "1", "2", "3"}
    assert len(result_files(out)) == 4


# ------------------------------------------------------------------------------------------------- Ray
ray = pytest.importorskip("ray", reason="the ray extra is not installed")
RAY_ENV = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"}


def ray_cell_workers() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().startswith(b"ray::_remote_cell"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def test_ray_sweep_of_40_cells_survives_a_killed_worker(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen(
        fpt("run", *FAST, "--seeds", seeds(40), "--executor", "ray", "--cpus-per-cell", "1",
            "--output-dir", str(out)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=RAY_ENV,
    )
    killed = None
    deadline = time.monotonic() + 400
    while killed is None and proc.poll() is None and time.monotonic() < deadline:
        workers = ray_cell_workers()
        if workers and len(result_files(out)) >= 3:
            killed = workers[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    assert killed is not None, "no Ray worker was caught running a cell"
    files = result_files(out)
    assert len(files) == 40
    assert sorted(read_result(f).cell.seed for f in files) == list(range(40))
    assert all(read_result(f).status == "ok" for f in files)
    # the killed worker may have written its cell's result just before dying: Ray's retry then finds it finished
    assert "40 ok" in stdout or ("39 ok" in stdout and "1 skipped" in stdout and "finished elsewhere" in stdout)
    assert not list(out.rglob("*.lock"))


# --------------------------------------------------------------------------------------------- torchrun
def test_torchrun_two_gloo_processes_match_one_process(tmp_path: Path) -> None:
    args = ["run", "--task", "bit_xor", "--backbone-args", "weights=random,n_layers=2,n_embd=32,n_head=2,dropout=0",
            "--input-dropout", "0", "--profile", "smoke", "--steps", "6", "--eval-every", "3", "--batch-size", "8",
            "--device", "cpu", "--no-progress"]
    single = subprocess.run(fpt(*args, "--output-dir", str(tmp_path / "one")), capture_output=True, text=True,
                            timeout=600)
    assert single.returncode == 0, single.stderr
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
         "-m", "fpt_bench.cli", *args, "--output-dir", str(tmp_path / "two")],
        capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    [one], [two] = result_files(tmp_path / "one"), result_files(tmp_path / "two")
    a, b = read_result(one), read_result(two)
    assert a.provenance.config_hash == b.provenance.config_hash
    for p, q in zip(a.metrics.curve, b.metrics.curve, strict=True):
        assert p.train_loss == pytest.approx(q.train_loss, rel=1e-4)
        assert p.val_accuracy == pytest.approx(q.val_accuracy, abs=1e-6)
    assert a.metrics.test_accuracy == pytest.approx(b.metrics.test_accuracy, abs=1e-6)
