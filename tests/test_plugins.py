"""Plugin discovery through real installed entry points, guarded loading, strict mode, blocking, collisions."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from conftest import TINY, result_files, run_subprocess

from fpt_bench.api.errors import PluginError, UserError
from fpt_bench.host.manager import Host
from fpt_bench.host.registry import Registry


def install_dist(site: Path, dist: str, version: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """Install a distribution the way pip lays it out: modules + ``<dist>-<version>.dist-info`` with
    METADATA and entry_points.txt. ``importlib.metadata`` discovers it on ``sys.path`` like any installed one."""
    site.mkdir(parents=True, exist_ok=True)
    for name, source in modules.items():
        (site / f"{name}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[fpt_bench]\n{lines}\n")


GOOD = """
    import torch
    from fpt_bench import hookimpl, Task, TaskSpec, Continuous, OutputSpec, Readout, Batch, SplitData, PaperHParams

    class Parity(Task):
        spec = TaskSpec(name="parity3", description="parity of 3 bits", input=Continuous(dim=1), max_len=3,
                        output=OutputSpec(n_classes=2), generated=True, paper=PaperHParams(steps=4))

        def sample(self, batch_size, generator, options):
            x = torch.randint(0, 2, (batch_size, 3), generator=generator, device=generator.device)
            return Batch(x.float()[..., None], x.sum(1) % 2)

        def load(self, split, options, data_dir):
            b = self.sample(16, torch.Generator().manual_seed(7 if split == "val" else 8), options)
            return SplitData(b.x, b.y)

    @hookimpl
    def fpt_bench_register_tasks(registry):
        registry.add(Parity())
"""


def plugins_json(site: Path, **env: str) -> tuple[int, list[dict], str]:
    proc = run_subprocess("plugins", "--json", env={"PYTHONPATH": str(site), **env})
    data = json.loads(proc.stdout) if proc.returncode in (0, 1) else []  # 1: a plugin failed (listed)
    return proc.returncode, data, proc.stderr


def test_installed_entry_point_is_discovered_and_runs(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_dist(site, "fpt-bench-parity", "0.3.1", {"parity": "parity_plugin"}, {"parity_plugin": GOOD})
    code, plugins, err = plugins_json(site)
    assert code == 0, err
    by_name = {p["name"]: p for p in plugins}
    assert by_name["parity"] == {
        "name": "parity", "distribution": "fpt-bench-parity", "version": "0.3.1", "status": "ok",
        "error": None, "registered": {"task": ["parity3"]}, "shared": {},
    }
    proc = run_subprocess("run", "--task", "parity3", "--backbone-args", TINY, "--profile", "smoke",
                          "--device", "cpu", "--output-dir", str(tmp_path / "out"), env={"PYTHONPATH": str(site)})
    assert proc.returncode == 0, proc.stderr
    [result] = result_files(tmp_path / "out")
    data = json.loads(result.read_text())
    assert data["status"] == "ok" and data["provenance"]["plugins"]["parity"] == "0.3.1"


def test_broken_plugin_is_listed_with_its_error_and_the_rest_work(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_dist(site, "fpt-bench-broken", "1.0", {"broken": "broken_plugin"},
                 {"broken_plugin": "import not_a_module_anywhere\n"})
    code, plugins, _ = plugins_json(site)
    assert code == 1  # `fpt-bench plugins` exits 1 when a plugin failed
    broken = next(p for p in plugins if p["name"] == "broken")
    assert broken["status"] == "error"
    assert "failed to import: ModuleNotFoundError: No module named 'not_a_module_anywhere'" in broken["error"]
    assert next(p for p in plugins if p["name"] == "bits")["status"] == "ok"
    proc = run_subprocess("run", "--task", "bit_xor", "--backbone-args", TINY, "--profile", "smoke", "--steps", "2",
                          "--device", "cpu", "--output-dir", str(tmp_path / "out"), env={"PYTHONPATH": str(site)})
    assert proc.returncode == 0
    assert "warning: plugin 'broken' is not loaded" in proc.stderr


def test_strict_mode_makes_a_broken_plugin_fatal(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_dist(site, "fpt-bench-broken", "1.0", {"broken": "broken_plugin"},
                 {"broken_plugin": "raise RuntimeError('boom at import')\n"})
    proc = run_subprocess("ls", "tasks", env={"PYTHONPATH": str(site), "FPT_BENCH_STRICT_PLUGINS": "1"})
    assert proc.returncode == 2
    assert "plugin 'broken' (fpt-bench-broken): failed to import: RuntimeError: boom at import" in proc.stderr
    assert "strict mode" in proc.stderr and "Traceback" not in proc.stderr


def test_register_hook_failure_rolls_back_that_plugin(tmp_path: Path) -> None:
    site = tmp_path / "site"
    source = GOOD.replace("registry.add(Parity())", "registry.add(Parity())\n        raise ValueError('late')")
    install_dist(site, "fpt-bench-late", "1.0", {"late": "late_plugin"}, {"late_plugin": source})
    code, plugins, _ = plugins_json(site)
    late = next(p for p in plugins if p["name"] == "late")
    assert late["status"] == "error" and "failed in fpt_bench_register_tasks: ValueError: late" in late["error"]
    assert late["registered"] == {}
    proc = run_subprocess("ls", "tasks", "--json", env={"PYTHONPATH": str(site)})
    assert "parity3" not in proc.stdout


def test_blocking_by_name(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_dist(site, "fpt-bench-parity", "0.3.1", {"parity": "parity_plugin"}, {"parity_plugin": GOOD})
    code, plugins, _ = plugins_json(site, FPT_BENCH_DISABLE_PLUGINS="parity,bits")
    by_name = {p["name"]: p for p in plugins}
    assert by_name["parity"]["status"] == "blocked" and by_name["bits"]["status"] == "blocked"
    env = {"PYTHONPATH": str(site), "FPT_BENCH_DISABLE_PLUGINS": "parity,bits"}
    proc = run_subprocess("ls", "tasks", "--json", env=env)
    rows = json.loads(proc.stdout)
    assert rows and not {r["origin"] for r in rows} & {"parity", "bits"}  # the other plugins' tasks stay
    assert not {r["name"] for r in rows} & {"parity3", "bit_xor", "bit_memory"}


def test_collision_with_a_builtin_keeps_both_and_the_builtin_its_name(tmp_path: Path) -> None:
    site = tmp_path / "site"
    source = GOOD.replace('name="parity3"', 'name="bit_xor"')
    install_dist(site, "fpt-bench-clash", "2.0", {"clash": "clash_plugin"}, {"clash_plugin": source})
    code, plugins, _ = plugins_json(site)
    clash = next(p for p in plugins if p["name"] == "clash")
    assert code == 0 and clash["status"] == "ok"
    assert clash["shared"] == {"task": {"bit_xor": ["bits:bit_xor", "clash:bit_xor"]}}
    proc = run_subprocess("ls", "tasks", "--json", env={"PYTHONPATH": str(site), "FPT_BENCH_STRICT_PLUGINS": "1"})
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["bit_xor"]["origin"] == "bits"  # the built-in is not replaced
    assert rows["clash:bit_xor"]["origin"] == "clash"  # and the plugin's task is there, qualified


def test_misspelled_hook_is_an_error(tmp_path: Path) -> None:
    site = tmp_path / "site"
    source = GOOD.replace("def fpt_bench_register_tasks", "def fpt_bench_register_task")
    install_dist(site, "fpt-bench-typo", "1.0", {"typo": "typo_plugin"}, {"typo_plugin": source})
    code, plugins, _ = plugins_json(site)
    typo = next(p for p in plugins if p["name"] == "typo")
    assert typo["status"] == "error"
    assert "implements unknown hook(s) fpt_bench_register_task" in typo["error"]


def test_registry_shared_names_and_did_you_mean_in_process() -> None:
    registry: Registry[object] = Registry("task")
    a, b = object(), object()
    registry.as_origin("a").add(a, name="mnist")
    registry.as_origin("b").add(b, name="mnist")
    assert registry.names() == ["a:mnist", "b:mnist"]
    assert registry.get("a:mnist") is a and registry.get("b:mnist") is b
    with pytest.raises(UserError, match=r"task 'mnist' is ambiguous: plugins a, b each register one; "
                                        r"choose a:mnist or b:mnist"):
        registry.get("mnist")
    with pytest.raises(PluginError, match="plugin 'a' registered the task 'mnist' twice"):
        registry.as_origin("a").add(object(), name="mnist")
    with pytest.raises(PluginError, match="may not contain ':'"):
        registry.as_origin("a").add(object(), name="x:y")
    assert registry.unknown_message("mnsit") == ("unknown task 'mnsit'; did you mean 'b:mnist' or 'a:mnist'? "
                                                 "(known: a:mnist, b:mnist)")


def test_hook_implementation_may_accept_a_subset_of_arguments() -> None:
    from fpt_bench import hookimpl

    seen = []

    class Listener:
        @hookimpl
        def fpt_bench_cell_finished(self, result):  # takes only one of (cell, result)
            seen.append(result)

    host = Host(strict=True, disabled=set())
    host.register(Listener(), "listener")
    host.emit("fpt_bench_cell_finished", cell="c", result="r")
    assert seen == ["r"]
