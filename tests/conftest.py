"""Shared fixtures: tiny backbones, an in-process CLI runner and a subprocess one."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

TINY = "weights=random,n_layers=2,n_embd=32,n_head=2"


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _precision_cache(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """precision=auto's calibration cache of each test: its own file, never the user's cache."""
    path = tmp_path_factory.mktemp("precision") / "precision.json"
    monkeypatch.setenv("FPT_BENCH_PRECISION_CACHE", str(path))
    return path


def run_cli(*args: str, capsys: pytest.CaptureFixture[str] | None = None) -> tuple[int, str, str]:
    """Run ``fpt-bench ARGS`` in this process; return (exit code, stdout, stderr)."""
    from fpt_bench.cli import main

    code = main(list(args))
    if capsys is None:
        return code, "", ""
    out = capsys.readouterr()
    return code, out.out, out.err


PLUGIN_SWITCHES = ("FPT_BENCH_STRICT_PLUGINS", "FPT_BENCH_DISABLE_PLUGINS")


def run_subprocess(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    # plugin switches come from the test alone (tox sets strict mode for the suite's own process)
    full_env = {k: v for k, v in os.environ.items() if k not in PLUGIN_SWITCHES}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "fpt_bench.cli", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


def result_files(root: Path) -> list[Path]:
    return sorted(p for p in Path(root).rglob("*.json"))


def load_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The reliability tests' figures (kills survived, fuzz cases per parser, ...), when any of them ran."""
    support = sys.modules.get("reliability_support")
    if support is None or not support.FIGURES:
        return
    terminalreporter.write_sep("-", "reliability figures")
    for line in support.summary_lines():
        terminalreporter.write_line(line)
    support.write_report()


def write_tar(path: Path, entries: list[tarfile.TarInfo]) -> Path:
    """A tar archive of ``entries`` (regular files hold b"evil"; links and folders as given), for archive tests."""
    with tarfile.open(path, "w") as tar:
        for info in entries:
            blob = b"evil"
            if info.isfile():
                info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob) if info.isfile() else None)
    return path
