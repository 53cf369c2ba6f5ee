'''``fpt-bench new-plugin NAME``: write a ready-to-install plugin project with one task that runs.

The project is ``fpt-bench-NAME/`` (distribution ``fpt-bench-NAME``, import package ``fpt_bench_NAME``, entry
point and task ``NAME``) with a pyproject, a README, a generated task and a test that checks the plugin is
listed by ``fpt-bench plugins`` and passes ``fpt-bench check-plugin``.
'''

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from fpt_bench import PLUGIN_API, __version__
from fpt_bench.api.errors import UserError
from fpt_bench.host.manager import Host

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


PYPROJECT = '''\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.1.0"
description = "An fpt-bench plugin adding the task {entry!r}."
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["fpt-bench>={version}", "torch>=2.4", "pydantic>=2.6"]

[project.optional-dependencies]
test = ["pytest>=8"]

# fpt-bench finds plugins through this entry-point group: name = module with @hookimpl functions.
[project.entry-points.fpt_bench]
{entry} = "{package}"

[tool.setuptools.packages.find]
where = ["src"]
'''

INIT = '''\
"""{dist}: registers its components with fpt-bench (plugin API {api_major}.x)."""

from __future__ import annotations

from fpt_bench import hookimpl

from {package}.task import Majority

__version__ = "0.1.0"


@hookimpl
def fpt_bench_register_tasks(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(Majority())


# More hooks (see fpt-bench's docs/hooks.md): fpt_bench_register_backbones, fpt_bench_register_policies,
# fpt_bench_register_suites, fpt_bench_cell_finished (a logger), ...
'''

TASK = '''\
"""The task {entry!r}: a skeleton that runs. Replace the spec and ``sample`` with your own task.

Majority: ``n_bits`` random bits, one per token; predict whether most of them are 1. Training batches are drawn
on the device from the cell's seed; the validation and test sets are fixed (seeded) so cells are comparable.
"""

from __future__ import annotations

from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field

from fpt_bench import Batch, Continuous, HParamOverrides, OutputSpec, PaperHParams, SplitData, Task, TaskSpec

VAL_SEED, TEST_SEED = 1001, 2002


class MajorityOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a typo in --task-args is an error, not a silent default
    n_bits: int = Field(default=9, gt=0, description="bits per example (odd: no ties)")
    n_val: int = Field(default=500, gt=0)
    n_test: int = Field(default=1000, gt=0)


class Majority(Task):
    spec = TaskSpec(
        name="{entry}",
        description="Is the majority of 9 random bits 1? (a skeleton task: replace me)",
        input=Continuous(dim=1),  # each token is a vector of 1 float; Tokens(vocab_size=...) for token ids
        max_len=9,
        output=OutputSpec(n_classes=2),  # one prediction of 2 classes, read at the last position
        generated=True,
        paper=PaperHParams(lr=1e-3, batch_size=32, steps=2000),
        profiles={{"quick": HParamOverrides(steps=200)}},
    )
    Options = MajorityOptions

    def resolve_spec(self, options: MajorityOptions) -> TaskSpec:  # type: ignore[override]
        return self.spec.model_copy(update={{"max_len": options.n_bits}})

    def sample(  # type: ignore[override]
        self, batch_size: int, generator: torch.Generator, options: MajorityOptions
    ) -> Batch:
        bits = torch.randint(0, 2, (batch_size, options.n_bits), generator=generator, device=generator.device)
        y = (bits.sum(dim=1) * 2 > options.n_bits).long()
        return Batch(x=bits.float().unsqueeze(-1), y=y)

    def load(self, split: str, options: MajorityOptions, data_dir: Path) -> SplitData:  # type: ignore[override]
        seed, n = (VAL_SEED, options.n_val) if split == "val" else (TEST_SEED, options.n_test)
        batch = self.sample(n, torch.Generator().manual_seed(seed), options)
        return SplitData(batch.x, batch.y, info={{"generator_seed": seed, "examples": n}})
'''

TEST = '''\
"""fpt-bench finds this plugin and it keeps fpt-bench's contracts. Run: pip install -e . && pytest"""

import json

from fpt_bench.cli import main  # the `fpt-bench` command, in this process

PLUGIN = "{entry}"


def test_plugin_is_listed(capsys):
    assert main(["plugins", "--json"]) == 0
    plugins = {{p["name"]: p for p in json.loads(capsys.readouterr().out)}}
    assert PLUGIN in plugins, "the plugin is not installed: run `pip install -e .`"
    assert plugins[PLUGIN]["status"] == "ok", plugins[PLUGIN]["error"]
    assert "{entry}" in plugins[PLUGIN]["registered"]["task"]


def test_passes_check_plugin(capsys):
    code = main(["check-plugin", PLUGIN])
    assert code == 0, capsys.readouterr().out
'''

README = '''\
# {dist}

An [fpt-bench](https://github.com/) plugin adding the task `{entry}`.

```bash
pip install -e .                  # fpt-bench must be installed in the same environment
fpt-bench plugins                 # '{entry}' is listed with status ok
fpt-bench check-plugin {entry}    # the conformance table; exit code 0 when every check passes
fpt-bench run --task {entry} --profile smoke --backbone-args weights=random,n_layers=2,n_embd=32,n_head=2
pytest                            # the same checks as a test
```

Next: replace the skeleton in `src/{package}/task.py` with your task, and see fpt-bench's
`docs/writing-plugins.md` to add backbones, freeze policies or loggers and to publish the package.
'''

GITIGNORE = "__pycache__/\n*.egg-info/\nbuild/\ndist/\nresults/\n"


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
    if root.exists() and any(root.iterdir()):
        raise UserError(f"{root} already exists and is not empty; choose another --dir or name")
    values = {"dist": names.dist, "entry": names.entry, "package": names.package, "version": __version__,
              "api_major": PLUGIN_API.split(".")[0]}
    files = {
        "pyproject.toml": PYPROJECT, "README.md": README, ".gitignore": GITIGNORE,
        f"src/{names.package}/__init__.py": INIT, f"src/{names.package}/task.py": TASK,
        "tests/test_plugin.py": TEST,
    }
    for relative, template in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(**values), encoding="utf-8")
    return root, names
