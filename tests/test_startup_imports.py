"""Answering without the model libraries: `--help`, `--version`, listing and `plugins` load every built-in plugin's
registrations but never torch, transformers, timm, torchvision or numpy (docs/writing-plugins.md, "Keep registration
light"). Each command runs in a fresh interpreter, since one test's imports would hide another's."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "timm", "torchvision", "numpy")
PROBE = """
import json, sys
from fpt_bench.cli import main
argv = json.loads(sys.argv[1])
try:
    code = main(argv)
except SystemExit as exc:  # argparse's --help exits
    code = exc.code
print(json.dumps({"code": code, "heavy": [m for m in HEAVY if m in sys.modules]}))
""".replace("HEAVY", repr(HEAVY))

COMMANDS = [
    ["--help"],
    ["--version"],
    ["run", "--help"],
    ["plugins"],
    ["ls", "tasks", "--options"],
    ["ls", "backbones", "--options"],
    ["ls", "policies", "--options"],
    ["ls", "suites"],
    ["ls", "executors", "--json"],
    ["ls", "profiles"],
    ["ls", "cells", "--suite", "offline", "--profile", "smoke"],
    ["schema"],
]


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_the_command_line_answers_without_the_model_libraries(argv: list[str], tmp_path) -> None:
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv)], capture_output=True, text=True,
                          cwd=tmp_path, check=False, timeout=120)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"code": 0, "heavy": []}, done.stderr[-2000:]


def test_the_probe_sees_an_import_of_torch(tmp_path) -> None:
    """The check above can fail: a command that builds a backbone imports torch, and the probe reports it."""
    probe = PROBE.replace("code = main(argv)", "code = main(argv); import fpt_bench.api.backbone_module")
    done = subprocess.run([sys.executable, "-c", probe, json.dumps(["--version"])], capture_output=True, text=True,
                          cwd=tmp_path, check=False, timeout=120)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["code"] == 0 and "torch" in report["heavy"]


def test_check_plugin_reports_what_registering_a_plugin_imports(tmp_path, monkeypatch) -> None:
    """check-plugin's note (fpt_bench.conformance.imports): a module whose hook imports numpy is reported, a light
    one is not, and a module that cannot be imported is not measured."""
    from fpt_bench.conformance.imports import entry_module, heavy_imports, note

    (tmp_path / "light_plugin.py").write_text("def fpt_bench_register_tasks(registry):\n    registry.add(1)\n")
    (tmp_path / "heavy_plugin.py").write_text(
        "def fpt_bench_register_tasks(registry):\n    import numpy\n    registry.add(numpy.zeros(1))\n")
    (tmp_path / "broken_plugin.py").write_text("raise ImportError('no')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert heavy_imports("light_plugin") == []
    assert heavy_imports("heavy_plugin") == ["numpy"]
    assert heavy_imports("broken_plugin") is None
    assert note("p", ["torch"]).startswith("note: importing and registering p imports torch, so `fpt-bench ls`")
    assert note("p", []) == "registration of p: light (imports none of torch, transformers, timm, torchvision, numpy)"
    assert entry_module("bits", "fpt-bench") == "fpt_bench_plugins.tasks.bits"
    assert entry_module("bits", "someone-else") is None


def test_check_plugin_says_a_built_in_registers_light(capsys) -> None:
    from fpt_bench.cli import main

    assert main(["check-plugin", "policies"]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("registration of policies: light (imports none of torch, transformers, timm, "
                                 "torchvision, numpy)")
