"""Is a plugin's registration light? ``fpt-bench ls``, ``plugins`` and ``run --help`` import every plugin's
entry-point module and call its registration hooks; a module that imports torch there makes every listing wait
for it (docs/writing-plugins.md, section 9). ``check-plugin`` reports what importing and registering a plugin
imports, measured in a fresh interpreter (in this one, torch is long loaded)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points

from fpt_bench.host.manager import GROUP

HEAVY = ("torch", "transformers", "timm", "torchvision", "numpy")

# import the module, call its registration hooks with a registry that takes anything, list what got imported
PROBE = """
import importlib, json, sys
HEAVY = json.loads(sys.argv[2])
class Sink:
    def add(self, *args, **kwargs):
        pass
module = importlib.import_module(sys.argv[1])
for name in dir(module):
    if name.startswith("fpt_bench_register_"):
        try:
            getattr(module, name)(registry=Sink())
        except Exception:
            pass
print(json.dumps([m for m in HEAVY if m in sys.modules]))
"""


def entry_module(plugin: str, distribution: str | None) -> str | None:
    """The module the ``fpt_bench`` entry point ``plugin`` (of ``distribution``) names."""
    for ep in entry_points(group=GROUP):
        owner = ep.dist.name if ep.dist is not None else None
        if ep.name == plugin and (distribution is None or owner == distribution):
            return ep.module
    return None


def heavy_imports(module: str, timeout: float = 120.0) -> list[str] | None:
    """The heavy libraries (``HEAVY``) that importing ``module`` and calling its registration hooks imports, in a
    fresh interpreter; None when that could not be measured (the import failed: the checks report why)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    try:
        done = subprocess.run([sys.executable, "-c", PROBE, module, json.dumps(HEAVY)], capture_output=True,
                              text=True, timeout=timeout, env=env, check=False)
        found = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        return None
    return found if isinstance(found, list) else None


def note(plugin: str, heavy: list[str] | None) -> str:
    """The line ``check-plugin`` prints about it."""
    if heavy is None:
        return f"registration of {plugin}: not measured (importing it failed; see the checks above)"
    if not heavy:
        return f"registration of {plugin}: light (imports none of {', '.join(HEAVY)})"
    return (f"note: importing and registering {plugin} imports {', '.join(heavy)}, so `fpt-bench ls`, `plugins` "
            f"and `run --help` wait for it (torch alone takes seconds); docs/writing-plugins.md, section 9, says "
            f"how to import it only when a cell runs")
