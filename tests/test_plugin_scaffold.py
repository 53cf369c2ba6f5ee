# ruff: noqa: F811 - the fixtures imported from plugin_helpers are redefined as arguments
"""`fpt-bench new-plugin`: the project it writes installs with pip, and its own test (listed by `fpt-bench
plugins`, passes `check-plugin`) passes; bad or taken names are usage errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from plugin_helpers import pip_install, plugin_site  # noqa: F401 - fixtures

from fpt_bench.cli import main


def test_new_plugin_installs_and_its_own_tests_pass(plugin_site, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new-plugin", "majority-vote", "--dir", str(tmp_path)]) == 0
    assert "created" in capsys.readouterr().out
    project = tmp_path / "fpt-bench-majority-vote"
    files = sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file())
    assert files == [".gitignore", "README.md", "pyproject.toml", "src/fpt_bench_majority_vote/__init__.py",
                     "src/fpt_bench_majority_vote/task.py", "tests/test_plugin.py"]
    assert 'majority_vote = "fpt_bench_majority_vote"' in (project / "pyproject.toml").read_text()
    site = tmp_path / "site"
    pip_install(project, site)
    assert (site / "fpt_bench_majority_vote-0.1.0.dist-info" / "entry_points.txt").read_text().split() == [
        "[fpt_bench]", "majority_vote", "=", "fpt_bench_majority_vote"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=project,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout


def test_new_plugin_task_runs_in_this_process(plugin_site, tmp_path: Path) -> None:
    assert main(["new-plugin", "demo_task", "--dir", str(tmp_path)]) == 0
    sys.path.insert(0, str(tmp_path / "fpt-bench-demo-task" / "src"))
    try:
        from fpt_bench_demo_task.task import Majority
    finally:
        sys.path.pop(0)
        for name in [m for m in sys.modules if m.startswith("fpt_bench_demo_task")]:
            del sys.modules[name]
    task = Majority()
    assert task.spec.name == "demo_task"
    options = task.options({"n_bits": 5})
    import torch

    batch = task.sample(256, torch.Generator().manual_seed(0), options)
    assert batch.x.shape == (256, 5, 1) and task.resolve_spec(options).max_len == 5
    assert torch.equal(batch.y, (batch.x.squeeze(-1).sum(1) >= 3).long())


@pytest.mark.parametrize(("name", "message"), [
    ("Bad Name", "use lowercase letters"),
    ("bits", "a plugin named 'bits' is already installed (fpt-bench)"),
    ("bit_xor", "a task named 'bit_xor' is already registered"),
])
def test_new_plugin_refuses_bad_or_taken_names(name: str, message: str, plugin_site, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new-plugin", name, "--dir", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_new_plugin_never_overwrites(plugin_site, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new-plugin", "fpt-bench-again", "--dir", str(tmp_path)]) == 0  # the prefix is optional
    task = tmp_path / "fpt-bench-again" / "src" / "fpt_bench_again" / "task.py"
    task.write_text("# mine\n")
    assert main(["new-plugin", "again", "--dir", str(tmp_path)]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
    assert task.read_text() == "# mine\n"
