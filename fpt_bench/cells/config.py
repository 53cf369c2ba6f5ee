"""Run configuration: what ``fpt-bench run`` accepts, from a TOML file and the command line, expanded into cells.

Each setting is declared once, as a field of ``RunOptions`` (how cells run) or ``RunConfig`` (which cells); the
command-line flags are generated from these models (``fpt_bench.cli.flags``), and a config file uses the same keys.
"""

from __future__ import annotations

import itertools
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator

from fpt_bench.api.cell import CellConfig
from fpt_bench.api.errors import CorruptFileError, UserError, did_you_mean
from fpt_bench.api.hparams import HParamOverrides
from fpt_bench.api.options import Flag, Strict, brief_validation_error
from fpt_bench.cells.profiles import check_profile, default_profile, resolve_hparams
from fpt_bench.host.manager import Host
from fpt_bench.infra.safe_read import read_bytes

MAX_CONFIG_BYTES = 1 << 20  # a run config is a few lines


class RunOptions(Strict):
    """How cells run: where, with what executor, what is kept (``RunContext`` carries them to every cell)."""

    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:N (default auto)")
    output_dir: Path = Field(default=Path("results"), description="where result files go (default results/)")
    data_dir: Path | None = Field(default=None, description="where task data lives (default $FPT_BENCH_DATA or "
                                                            "the user cache)")
    overwrite: Literal["missing", "never", "always"] = Field(
        default="missing", description="rerun finished cells? missing (default): only failed or absent ones")
    executor: str = Field(default="local", description="how cells are scheduled: local (default), ray, ... "
                                                       "(`fpt-bench ls executors`)")
    executor_args: Annotated[dict[str, Any], Flag(hidden=True)] = Field(
        default={}, description="the executor's options (its flags, e.g. --workers; a [executor_args] table in a "
                                "config file)")
    keep_checkpoints: bool = Field(default=False, description="keep checkpoints of finished cells")
    save_backbone: bool = Field(
        default=False, description="save each finished cell's trained backbone next to its result (safetensors); "
                                   "another cell loads it with --backbone-args weights=result:RESULT_JSON")
    deterministic: bool = Field(default=False, description="deterministic algorithms (CUDA kernels that sum in a "
                                                           "fixed order; slower); recorded in each result")
    progress: bool | None = Field(default=None, description="show per-step progress (default: on a terminal a bar, "
                                                            "otherwise a log line every 30 s)")
    log: Annotated[list[str], Flag(repeat=True, metavar="KIND=TARGET")] = Field(
        default=[], description="log run events: jsonl=FILE, csv=FILE, tensorboard=DIR (built-in), or a plugin's "
                                "kind (repeatable)")


class RunConfig(RunOptions):
    """Everything ``fpt-bench run`` accepts; a TOML config file uses the same keys."""

    tasks: Annotated[list[str], Flag("--task", repeat=True, metavar="NAME")] = Field(
        default=[], description="a task (repeatable); with --suite, that task's cells of the suite")
    all_tasks: Annotated[bool, Flag("--all")] = Field(default=False, description="every registered task")
    suite: str | None = Field(default=None, description="a named grid of cells (`fpt-bench ls suites`)")
    task_args: Annotated[dict[str, Any], Flag(kv=True)] = Field(default={}, description="task options")
    backbone: str = Field(default="gpt2", description="backbone (default gpt2, pretrained base)")
    backbone_args: Annotated[dict[str, Any], Flag(kv=True)] = Field(
        default={}, description="backbone options, e.g. weights=random,n_layers=2")
    policy: str = Field(default="fpt", description="freeze policy (default fpt)")
    policy_args: Annotated[dict[str, Any], Flag(kv=True)] = Field(default={}, description="freeze policy options")
    seeds: Annotated[list[int], Flag(metavar="S,S,...")] = Field(default=[0], description="cell seeds (default 0)")
    profile: str | None = Field(default=None, description="smoke | quick | paper (default: paper on CUDA, quick "
                                                          "otherwise)")
    hparams: HParamOverrides = Field(default_factory=HParamOverrides,
                                     description="training overrides (win over the profile)")
    sweep: Annotated[dict[str, list[Any]], Flag(repeat=True, metavar="KEY=V1,V2,...")] = Field(
        default={}, description="a grid dimension: one cell per value of a training setting, e.g. --sweep "
                                "lr=1e-4,3e-4,1e-3 (repeatable; the leaderboard selects by validation accuracy)")
    required_plugins: Annotated[list[str], Flag(hidden=True)] = Field(
        default=[], description="plugins (with versions) that must be installed before anything runs")

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("give at least one seed")
        if len(set(v)) != len(v):
            raise ValueError("seeds repeat")
        return v

    @field_validator("sweep")
    @classmethod
    def _sweep(cls, sweep: dict[str, list[Any]]) -> dict[str, list[Any]]:
        checked: dict[str, list[Any]] = {}
        for key, values in sweep.items():
            if key not in HParamOverrides.model_fields:
                known = ", ".join(HParamOverrides.model_fields)
                hint = did_you_mean(key, HParamOverrides.model_fields)
                raise ValueError(f"{key!r} is not a training setting{hint} (one of: {known})")
            if not isinstance(values, list) or len(values) < 2:
                flag = "--" + key.replace("_", "-")
                raise ValueError(f"{key}: give at least two values to sweep (one value: set it with {flag})")
            parsed = []
            for value in values:
                try:
                    parsed.append(getattr(HParamOverrides(**{key: value}), key))
                except ValidationError as exc:
                    raise ValueError(f"{key}={value!r}: {brief_validation_error(exc)}") from None
            if len({repr(v) for v in parsed}) != len(parsed):
                raise ValueError(f"{key}: the values repeat")
            checked[key] = parsed
        return checked


def load_config_file(path: Path) -> dict[str, Any]:
    if not Path(path).exists():
        raise UserError(f"config file {path} does not exist")
    try:
        return tomllib.loads(read_bytes(Path(path), MAX_CONFIG_BYTES, "config file").decode("utf-8"))
    except CorruptFileError as exc:  # a folder, a fifo, a device, too large
        raise UserError(f"config file {path} cannot be read: {str(exc).removeprefix(f'{path}: ')}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:  # TOML is UTF-8 text
        raise UserError(f"config file {path} is not valid TOML: {exc}") from None
    except RecursionError:
        raise UserError(f"config file {path} is not valid TOML: nested too deeply") from None
    except ValueError as exc:  # an integer of more than 4,300 digits
        raise UserError(f"config file {path} is not valid TOML: {str(exc)[:200]}") from None
    except OSError as exc:  # a folder, no permission
        raise UserError(f"config file {path} cannot be read: {exc.strerror or exc}") from None


def build_run_config(file_values: dict[str, Any], cli_values: dict[str, Any], source: str = "") -> RunConfig:
    """Merge a config file's values with command-line values (the command line wins, table by table for the
    ``hparams``, ``sweep`` and ``executor_args`` tables)."""
    where = f" in {source}" if source else ""
    merged = dict(file_values)
    for table in ("hparams", "sweep", "executor_args"):
        from_file = merged.get(table, {}) or {}
        if not isinstance(from_file, dict):
            raise UserError(f"bad run configuration{where}: {table} must be a table (key = value pairs), "
                            f"not {type(from_file).__name__}")
        merged[table] = {**from_file, **(cli_values.get(table) or {})}
    merged.update({k: v for k, v in cli_values.items() if k not in ("hparams", "sweep", "executor_args")})
    for key, value in merged["hparams"].items():
        if isinstance(value, list):
            raise UserError(f"bad run configuration{where}: hparams.{key} takes one value; to run one cell per value "
                            f"write `[sweep] {key} = [...]` in the file or --sweep {key}=A,B on the command line")
    try:
        return RunConfig(**merged)
    except ValidationError as exc:
        raise UserError(f"bad run configuration{where}: {brief_validation_error(exc, RunConfig)}") from None


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"--device {device}: CUDA is not available here; use --device cpu (or auto)")
        if ":" in device:
            index = device.split(":", 1)[1]
            if not index.isdigit() or int(index) >= torch.cuda.device_count():
                raise UserError(f"--device {device}: there are {torch.cuda.device_count()} CUDA device(s)")
        return device
    if device != "cpu":
        raise UserError(f"--device {device!r}: use auto, cpu, cuda or cuda:N")
    return device


def _grid(config: RunConfig, host: Host) -> list[dict[str, Any]]:
    """The (task, backbone, policy) combinations of a run, with a suite cell's own overrides and row label."""
    if config.all_tasks and (config.suite or config.tasks):
        other = f"--suite {config.suite}" if config.suite else "--task"
        raise UserError(f"--all and {other} both choose the tasks: --all runs every registered task, --suite NAME "
                        f"a suite's cells (--task narrows it), --task NAME the tasks named; give one")
    if config.suite:
        suite = host.suites.get(config.suite)
        in_suite = {c.task for c in suite.cells}
        unknown = [t for t in config.tasks if t not in in_suite]
        if unknown:
            raise UserError(f"--task {', '.join(unknown)}: not a task of suite {config.suite!r} "
                            f"(its tasks: {', '.join(sorted(in_suite))})")
        return [
            {"task": c.task, "task_args": {**c.task_args, **config.task_args}, "backbone": c.backbone,
             "backbone_args": {**c.backbone_args, **config.backbone_args}, "policy": c.policy,
             "policy_args": {**c.policy_args, **config.policy_args}, "hparams": c.hparams, "label": c.row}
            for c in suite.cells if not config.tasks or c.task in config.tasks  # --task narrows a suite
        ]
    tasks = host.tasks.names() if config.all_tasks else config.tasks
    if not tasks:
        raise UserError("nothing to run: give --task NAME (repeatable), --all or --suite NAME")
    return [{"task": t, "task_args": config.task_args, "backbone": config.backbone,
             "backbone_args": config.backbone_args, "policy": config.policy, "policy_args": config.policy_args}
            for t in tasks]


def expand_cells(config: RunConfig, host: Host, device: str,
                 unavailable: list[str] | None = None) -> list[CellConfig]:
    """The cells of a run, validated against the registries before anything runs.

    With a suite and a list for ``unavailable``, a suite cell whose plugin is not installed (or whose options it
    refuses) is reported there as ``"unavailable: <reason>"`` and skipped instead of ending the run. The
    ``--task-args``/``--backbone-args``/``--policy-args`` given with a suite are merged onto every cell; ``--task``
    keeps the suite's cells of those tasks. Each ``sweep`` dimension multiplies the cells.
    """
    profile = config.profile or default_profile(device)
    check_profile(profile)  # before the cells: a misspelt profile is the error to report
    user = config.hparams.model_dump(exclude_none=True)
    points = [dict(zip(config.sweep, values, strict=True)) for values in itertools.product(*config.sweep.values())]
    cells = []
    said: set[str] = set()
    for entry in _grid(config, host):
        try:
            for kind in ("task", "backbone", "policy"):  # the name a cell records: bare unless another plugin shares it
                entry[kind] = host.registries[kind].canonical(entry[kind])
            task = host.tasks.get(entry["task"])
            task.options(entry["task_args"])
            backbone = host.backbones.get(entry["backbone"])
            reason = backbone.availability(backbone.options(entry["backbone_args"]))
            host.policies.get(entry["policy"]).options(entry["policy_args"])
            if reason is not None:
                raise UserError(reason)
        except UserError as exc:
            if unavailable is None or not config.suite:
                raise
            # a reason shared by several cells (weights not installed) is said in full once
            shown = "(the reason above)" if str(exc) in said else str(exc)
            said.add(str(exc))
            unavailable.append(f"{entry['label']} / {entry['task']}: unavailable: {shown}")
            continue
        suite_cell = entry["hparams"].model_dump(exclude_none=True) if entry.get("hparams") is not None else {}
        for point in points:
            hparams = resolve_hparams(task.spec, profile, HParamOverrides(**{**suite_cell, **user, **point}))
            for seed in config.seeds:
                cells.append(CellConfig(
                    task=entry["task"], task_args=entry["task_args"], backbone=entry["backbone"],
                    backbone_args=entry["backbone_args"], policy=entry["policy"],
                    policy_args=entry["policy_args"], seed=seed, profile=profile, hparams=hparams,
                ))
    unique = {cell.config_hash(): cell for cell in reversed(cells)}  # a cell named twice runs once
    return [cell for cell in cells if unique.get(cell.config_hash()) is cell]


def parse_kv(text: str, flag: str) -> dict[str, Any]:
    """``a=1,b=x`` -> {"a": 1, "b": "x"} (ints, floats and true/false are converted)."""
    out: dict[str, Any] = {}
    if not text:
        return out
    for part in text.split(","):
        if "=" not in part:
            raise UserError(f"{flag}: expected key=value pairs separated by commas, got {part!r}")
        key, value = part.split("=", 1)
        out[key.strip()] = convert(value.strip())
    return out


def convert(value: str) -> Any:
    """A command-line string as the value it spells: true/false, an int, a float, else the string."""
    lowered = value.lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value
