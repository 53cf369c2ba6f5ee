"""Helpers for the reliability tests (``tests/test_reliability_*.py``).

- :func:`run_child` runs ``fpt-bench ARGS`` in a child process forked from a server that imported torch and the
  harness once (multiprocessing's forkserver), with a :class:`Fault` planned in it: a real SIGKILL the child
  sends itself at a chosen point (during a training step, or before, during or after a checkpoint or result
  write). Planting the kill inside the child makes the points exact and the loop reproducible; nothing in the
  harness knows about it (``atomic_write``/``os.replace``/``loss_fn`` are wrapped in the child only).
- :class:`Reader` validates every checkpoint and result file it sees while the kills happen.
- :data:`FIGURES` collects the numbers the tests report; ``conftest.py`` prints them in pytest's terminal
  summary (and writes them as JSON to ``$FPT_BENCH_RELIABILITY_REPORT`` when set).
"""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FIGURES: dict[str, Counter[str]] = defaultdict(Counter)


def tally(group: str, key: str, n: int = 1) -> None:
    FIGURES[group][key] += n


def summary_lines() -> list[str]:
    lines = []
    for group in sorted(FIGURES):
        items = ", ".join(f"{k} {v}" for k, v in sorted(FIGURES[group].items()))
        lines.append(f"{group}: {items}")
    return lines


def write_report() -> None:
    target = os.environ.get("FPT_BENCH_RELIABILITY_REPORT")
    if target and FIGURES:
        Path(target).write_text(json.dumps({g: dict(c) for g, c in FIGURES.items()}, indent=2, sort_keys=True))


# ------------------------------------------------------------------------------------------ fault injection
PHASES = ("mid-write", "before-rename", "after-rename")


@dataclass(frozen=True)
class Fault:
    """Where the child kills itself: ``step`` at the ``at``-th training loss of this attempt (after the forward
    pass, before backward); ``checkpoint`` / ``result`` at the ``at``-th write of that kind, in ``phase``:
    half the bytes written and synced (``mid-write``), all written and synced but not renamed
    (``before-rename``), or renamed into place (``after-rename``)."""

    kind: str
    at: int = 1
    phase: str = ""

    def label(self) -> str:
        return f"{self.kind} {self.phase}".strip()


def _die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _kind(path: Path) -> str | None:
    if path.name.startswith("."):
        return None
    return {".ckpt": "checkpoint", ".json": "result"}.get(path.suffix)


def install(fault: Fault) -> None:
    """Plant ``fault`` in this process (the child)."""
    import fpt_bench.results.store as results
    import fpt_bench.training.loop as train

    if fault.kind == "step":
        real_loss = train.loss_fn
        calls = [0]

        def loss_fn(logits: Any, y: Any, *rest: Any) -> Any:
            calls[0] += 1
            if calls[0] == fault.at:
                _die()
            return real_loss(logits, y, *rest)

        train.loss_fn = loss_fn
        return
    real_write = results.atomic_write
    real_replace = os.replace
    seen: Counter[str] = Counter()

    def atomic_write(path: Path, write: Any) -> None:
        path = Path(path)
        kind = _kind(path)
        if kind != fault.kind:
            return real_write(path, write)
        seen[kind] += 1
        if seen[kind] != fault.at:
            return real_write(path, write)
        if fault.phase == "mid-write":
            def half(handle: Any) -> None:
                buffer = io.BytesIO()
                write(buffer)
                data = buffer.getvalue()
                handle.write(data[: len(data) // 2])
                handle.flush()
                os.fsync(handle.fileno())
                _die()

            return real_write(path, half)
        if fault.phase == "before-rename":
            def replace(src: Any, dst: Any) -> None:
                if Path(dst) == path:
                    _die()
                real_replace(src, dst)

            os.replace = replace
            return real_write(path, write)
        real_write(path, write)
        _die()

    results.atomic_write = atomic_write
    train.atomic_write = atomic_write


def _child(argv: list[str], fault: Fault | None, log: str) -> None:
    import torch

    torch.set_num_threads(1)  # two cores, shared: one thread per child is fastest and the same in every child
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    if fault is not None:
        install(fault)
    from fpt_bench.cli import main

    code = main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


_CONTEXT: Any = None


def _context() -> Any:
    """The forkserver context, its server started with the harness imported (``reliability_preload``)."""
    global _CONTEXT
    if _CONTEXT is None:
        from multiprocessing import forkserver

        context = mp.get_context("forkserver")
        context.set_forkserver_preload(["reliability_support", "reliability_preload"])
        # Python 3.11's forkserver ignores the parent's sys.path while preloading: say where these modules are
        before = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(Path(__file__).parent), before) if p)
        try:
            forkserver.ensure_running()
        finally:
            if before is None:
                del os.environ["PYTHONPATH"]
            else:
                os.environ["PYTHONPATH"] = before
        _CONTEXT = context
    return _CONTEXT


def run_child(argv: list[str], fault: Fault | None, log: Path, timeout: float = 300) -> int:
    """Run ``fpt-bench argv`` in a forked child with ``fault`` planted; return its exit code (-9: killed)."""
    process = _context().Process(target=_child, args=(argv, fault, str(log)))
    process.start()
    process.join(timeout)
    if process.exitcode is None:
        process.kill()
        process.join()
        raise TimeoutError(f"fpt-bench {' '.join(argv)} did not finish in {timeout}s (see {log})")
    return int(process.exitcode)


def checkpoint_step(path: Path) -> int:
    """The step a checkpoint holds (0 when there is none, or none that loads)."""
    import torch

    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["step"])
    except Exception:  # noqa: BLE001 - absent or unreadable: the run starts over (the Reader reports partial files)
        return 0


# ------------------------------------------------------------------------------------------------ reader
class Reader(threading.Thread):
    """Scans ``root`` until stopped; every result and checkpoint it finds must read and validate completely.

    ``partial`` lists files that did not (must stay empty); ``lost`` lists results that disappeared after being
    seen (must stay empty: a finished result is never removed, only replaced atomically)."""

    def __init__(self, root: Path) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.versions = 0  # distinct file versions validated
        self.partial: list[str] = []
        self.lost: list[str] = []
        self.temporaries: set[str] = set()
        self._stop_event = threading.Event()
        self._checked: set[tuple[str, int, int]] = set()
        self._results: set[Path] = set()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.scan()
            time.sleep(0.01)
        self.scan()

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def scan(self) -> None:
        for path in self._results:
            if not path.exists():
                self.lost.append(str(path))
        for path in sorted(self.root.rglob("*")):
            if path.name.startswith("."):
                self.temporaries.add(path.name)
                continue
            kind = _kind(path)
            if kind is None:
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            version = (str(path), stat.st_ino, stat.st_mtime_ns)
            if version in self._checked:
                continue
            problem = self._check(path, kind)
            if problem and path.exists():
                self.partial.append(f"{path}: {problem}")
            elif not problem:
                self._checked.add(version)
                self.versions += 1
                if kind == "result":
                    self._results.add(path)

    @staticmethod
    def _check(path: Path, kind: str) -> str:
        import torch

        from fpt_bench.api.errors import CorruptFileError
        from fpt_bench.results.store import read_result

        try:
            if kind == "result":
                result = read_result(path)
                return "" if result.status == "ok" else f"status {result.status}"
            state = torch.load(path, map_location="cpu", weights_only=True)
            return "" if {"step", "params", "optimizer", "config_hash"} <= set(state) else "keys missing"
        except CorruptFileError as exc:
            return str(exc)
        except Exception as exc:  # noqa: BLE001 - a partial checkpoint shows up as any error
            return f"{type(exc).__name__}: {exc}"


@contextlib.contextmanager
def within(seconds: float, what: str = "still running") -> Iterator[None]:
    """Fail instead of hanging: a TimeoutError (SIGALRM) after ``seconds``."""
    def hung(*_: object) -> None:
        raise TimeoutError(f"{what} after {seconds}s (a hang)")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
