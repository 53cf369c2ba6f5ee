"""Helpers for the plugin tests: install plugin projects into throw-away site directories.

``pip_install`` goes through a real ``pip install`` (offline: ``--no-index --no-build-isolation``, so setuptools
must be installed); ``fake_dist`` writes a module and a ``.dist-info`` with ``entry_points.txt`` directly, which
is what pip would leave behind, in milliseconds. Either directory joins ``sys.path`` through the ``plugin_site``
fixture, and fpt-bench's process-wide plugin host is reset around each test.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fpt_bench.host import manager as plugins

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "fpt-bench-example-plugin"
TINY_GPT2 = "weights=random,n_layers=2,n_embd=32,n_head=2"
LOG_KINDS = ("JSONL", "CSV", "TENSORBOARD", "WANDB", "PRINT")


def temp_dir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def pip_install(project: Path, target: Path) -> None:
    """A real ``pip install`` of ``project`` into ``target`` (a copy is built, the source stays clean)."""
    build = temp_dir("fpt-bench-build-") / project.name
    shutil.copytree(project, build, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
           "--disable-pip-version-check", "--target", str(target), str(build)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"pip install {project} failed:\n{done.stdout}\n{done.stderr}"


@functools.cache
def example_site() -> Path:
    """The example plugin, pip-installed once per test session."""
    site = temp_dir("fpt-bench-example-site-")
    pip_install(EXAMPLE, site)
    return site


def fake_dist(site: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str],
              version: str = "0.1.0") -> Path:
    """Write ``modules`` (name -> source) and a ``.dist-info`` declaring ``entry_points`` into ``site``."""
    for name, source in modules.items():
        (site / f"{name}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[fpt_bench]\n{lines}")
    return site


@pytest.fixture
def plugin_site(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], None]]:
    """``plugin_site(path)`` puts an installed site directory on sys.path for this test only."""
    before = set(sys.modules)
    sites: list[Path] = []
    monkeypatch.setattr(plugins, "_HOST", None)
    logs = {f"FPT_BENCH_LOG_{kind}" for kind in LOG_KINDS} | {v for v in os.environ if v.startswith("FPT_BENCH_LOG_")}
    for var in logs:  # restored after the test, also when `--log` set them
        monkeypatch.delenv(var, raising=False)

    def use(site: Path) -> None:
        sites.append(site)
        monkeypatch.syspath_prepend(str(site))
        plugins._HOST = None

    yield use
    for name in set(sys.modules) - before:
        file = getattr(sys.modules[name], "__file__", None) or ""
        if any(file.startswith(str(s)) for s in sites):
            del sys.modules[name]


@pytest.fixture
def example(plugin_site: Callable[[Path], None]) -> Path:
    """The example plugin installed (with pip) and visible to fpt-bench in this test."""
    site = example_site()
    plugin_site(site)
    return site
