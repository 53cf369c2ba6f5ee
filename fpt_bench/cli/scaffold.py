'''``fpt-bench new-plugin NAME``: write a ready-to-install plugin project with one task that runs.

The project is ``fpt-bench-NAME/`` (distribution ``fpt-bench-NAME``, import package ``fpt_bench_NAME``, entry
point and task ``NAME``) with a pyproject, a README, a generated task and a test that checks the plugin is
listed by ``fpt-bench plugins`` and passes ``fpt-bench check-plugin``. The files are templates in
``templates/new-plugin/`` (package data; ``string.Template`` placeholders such as ``${entry}``).
'''

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from fpt_bench import PLUGIN_API, __version__
from fpt_bench.api.errors import UserError
from fpt_bench.host.manager import Host
from fpt_bench.infra.atomic import atomic_write
from fpt_bench.infra.destination import check_writable

NAME_RE = re.compile(r"^[a-z][a-z0-9]*([_-][a-z0-9]+)*$")


@dataclass(frozen=True)
class Names:
    entry: str  # entry-point name and task name: my_task
    dist: str  # distribution: fpt-bench-my-task
    package: str  # import package: fpt_bench_my_task

    @classmethod
    def of(cls, name: str) -> Names:
        bare = re.sub(r"^fpt[-_]bench[-_]", "", name.strip())
        if not NAME_RE.match(bare):
            raise UserError(f"plugin name {name!r}: use lowercase letters, digits, '-' or '_', starting with a "
                            "letter (e.g. `fpt-bench new-plugin parity`)")
        ident = bare.replace("-", "_")
        return cls(entry=ident, dist=f"fpt-bench-{ident.replace('_', '-')}", package=f"fpt_bench_{ident}")


def write_project(name: str, directory: Path, host: Host | None = None) -> tuple[Path, Names]:
    """Write the project for ``name`` under ``directory``; refuse names that installed plugins already use."""
    names = Names.of(name)
    if host is not None:
        if names.entry in host.plugins:
            raise UserError(f"a plugin named {names.entry!r} is already installed "
                            f"({host.plugins[names.entry].distribution}); choose another name")
        if names.entry in host.tasks:
            raise UserError(f"a task named {names.entry!r} is already registered; choose another name")
    root = Path(directory) / names.dist
    if root.exists() and not root.is_dir():
        raise UserError(f"{root} already exists and is not a folder; choose another --dir or name")
    if root.exists() and any(root.iterdir()):
        raise UserError(f"{root} already exists and is not empty; choose another --dir or name")
    check_writable(root.parent)  # a file on the way, a read-only disk: one message before anything is written
    values = {"dist": names.dist, "entry": names.entry, "entry_repr": repr(names.entry), "package": names.package,
              "version": __version__, "api_major": PLUGIN_API.split(".")[0]}
    files = {
        "pyproject.toml": "pyproject.toml", "README.md": "README.md", ".gitignore": "gitignore",
        f"src/{names.package}/__init__.py": "__init__.py", f"src/{names.package}/task.py": "task.py",
        "tests/test_plugin.py": "test_plugin.py",
    }
    templates = resources.files("fpt_bench.cli") / "templates" / "new-plugin"
    for relative, template in files.items():
        text = Template((templates / f"{template}.tmpl").read_text(encoding="utf-8")).substitute(values)
        atomic_write(root / relative, lambda handle, text=text: handle.write(text.encode("utf-8")))
    return root, names
