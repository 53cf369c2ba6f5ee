"""Run configuration: command-line flags and/or a TOML file, expanded into cells."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from fpt_bench.api.errors import UserError
from fpt_bench.api.specs import CellConfig, HParamOverrides, Strict
from fpt_bench.api.task import brief_validation_error
from fpt_bench.cells.profiles import check_profile, default_profile, resolve_hparams
from fpt_bench.host.manager import Host


class RunConfig(Strict):
    """Everything ``fpt-bench run`` accepts; a TOML config file uses the same keys."""

    tasks: list[str] = []
    all_tasks: bool = False
    suite: str | None = None
    task_args: dict[str, Any] = {}
    backbone: str = "gpt2"
    backbone_args: dict[str, Any] = {}
    policy: str = "fpt"
    policy_args: dict[str, Any] = {}
    seeds: list[int] = [0]
    profile: str | None = None
    device: str = "auto"
    output_dir: Path = Path("results")
    data_dir: Path | None = None
    overwrite: Literal["missing", "never", "always"] = "missing"
    executor: str = "local"
    workers: int = Field(default=1, gt=0)
    ray_address: str | None = None
    gpus_per_cell: float | None = Field(default=None, ge=0)
    cpus_per_cell: float = Field(default=1.0, gt=0)
    hparams: HParamOverrides = HParamOverrides()
    lr_sweep: list[float] = []  # several learning rates: one cell per rate (a grid dimension)
    required_plugins: list[str] = []
    progress: bool | None = None
    save_backbone: bool = False
    deterministic: bool = False  # deterministic algorithms (CUDA); recorded in each result's provenance

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("give at least one seed")
        if len(set(v)) != len(v):
            raise ValueError("seeds repeat")
        return v

    @field_validator("lr_sweep")
    @classmethod
    def _lrs(cls, v: list[float]) -> list[float]:
        if any(lr <= 0 for lr in v) or len(set(v)) != len(v):
            raise ValueError("learning rates must be positive and distinct")
        return v


def load_config_file(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise UserError(f"config file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:  # TOML is UTF-8 text
        raise UserError(f"config file {path} is not valid TOML: {exc}") from None
    except RecursionError:
        raise UserError(f"config file {path} is not valid TOML: nested too deeply") from None
    except OSError as exc:  # a folder, no permission
        raise UserError(f"config file {path} cannot be read: {exc.strerror or exc}") from None


def build_run_config(file_values: dict[str, Any], cli_values: dict[str, Any], source: str = "") -> RunConfig:
    """Merge a config file's values with command-line values (the command line wins)."""
    where = f" in {source}" if source else ""
    merged = dict(file_values)
    hp = merged.pop("hparams", {}) or {}
    if not isinstance(hp, dict):
        raise UserError(f"bad run configuration{where}: hparams must be a table (key = value pairs), "
                        f"not {type(hp).__name__}")
    hp = dict(hp)
    cli = dict(cli_values)
    hp.update(cli.pop("hparams", {}) or {})
    merged.update(cli)
    if isinstance(hp.get("lr"), list):  # `lr = [1e-4, 1e-3]` in a config file, or `--lr 1e-4,1e-3`
        lrs = hp.pop("lr")
        if len(lrs) == 1:
            hp["lr"] = lrs[0]
        else:
            merged["lr_sweep"] = lrs
    merged["hparams"] = hp
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


def expand_cells(config: RunConfig, host: Host, device: str,
                 unavailable: list[str] | None = None) -> list[CellConfig]:
    """The cells of a run, validated against the registries before anything runs.

    With a suite and a list for ``unavailable``, a suite cell whose plugin is not installed (or whose options it
    refuses) is reported there as ``"unavailable: <reason>"`` and skipped instead of ending the run. The
    ``--task-args``/``--backbone-args``/``--policy-args`` given with a suite are merged onto every cell; ``--task``
    keeps the suite's cells of those tasks.
    """
    profile = config.profile or default_profile(device)
    check_profile(profile)  # before the cells: a misspelt profile is the error to report
    grid: list[dict[str, Any]] = []
    if config.suite:
        suite = host.suites.get(config.suite)
        in_suite = {c.task for c in suite.cells}
        unknown = [t for t in config.tasks if t not in in_suite]
        if unknown:
            raise UserError(f"--task {', '.join(unknown)}: not a task of suite {config.suite!r} "
                            f"(its tasks: {', '.join(sorted(in_suite))})")
        grid = [
            {"task": c.task, "task_args": {**c.task_args, **config.task_args}, "backbone": c.backbone,
             "backbone_args": {**c.backbone_args, **config.backbone_args}, "policy": c.policy,
             "policy_args": {**c.policy_args, **config.policy_args}, "hparams": c.hparams, "label": c.row}
            for c in suite.cells if not config.tasks or c.task in config.tasks  # --task narrows a suite
        ]
    else:
        tasks = host.tasks.names() if config.all_tasks else config.tasks
        if not tasks:
            raise UserError("nothing to run: give --task NAME (repeatable), --all or --suite NAME")
        grid = [
            {"task": t, "task_args": config.task_args, "backbone": config.backbone,
             "backbone_args": config.backbone_args, "policy": config.policy, "policy_args": config.policy_args}
            for t in tasks
        ]
    cells = []
    said: set[str] = set()
    for entry in grid:
        try:
            task = host.tasks.get(entry["task"])
            task.options(entry["task_args"])
            backbone = host.backbones.get(entry["backbone"])
            reason = backbone_availability(backbone, backbone.options(entry["backbone_args"]))
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
        overrides = config.hparams
        if entry.get("hparams") is not None:  # the suite cell's overrides, then the user's
            merged = {**entry["hparams"].model_dump(exclude_none=True), **config.hparams.model_dump(exclude_none=True)}
            overrides = HParamOverrides(**merged)
        for lr in config.lr_sweep or [None]:
            swept = overrides if lr is None else overrides.model_copy(update={"lr": lr})
            hparams = resolve_hparams(task.spec, profile, swept)
            for seed in config.seeds:
                cells.append(CellConfig(
                    task=entry["task"], task_args=entry["task_args"], backbone=entry["backbone"],
                    backbone_args=entry["backbone_args"], policy=entry["policy"],
                    policy_args=entry["policy_args"], seed=seed, profile=profile, hparams=hparams,
                ))
    unique = {cell.config_hash(): cell for cell in reversed(cells)}  # a cell named twice runs once
    return [cell for cell in cells if unique.get(cell.config_hash()) is cell]


def backbone_availability(backbone: Any, options: Any) -> str | None:
    """Why a backbone cannot build with these options here (its weights are not installed and cannot be
    fetched), asked of the plugin (``Backbone.availability``); None when it can."""
    ask = getattr(backbone, "availability", None)
    return ask(options) if callable(ask) else None


def parse_kv(text: str, flag: str) -> dict[str, Any]:
    """``a=1,b=x`` -> {"a": 1, "b": "x"} (ints, floats and true/false are converted)."""
    out: dict[str, Any] = {}
    if not text:
        return out
    for part in text.split(","):
        if "=" not in part:
            raise UserError(f"{flag}: expected key=value pairs separated by commas, got {part!r}")
        key, value = part.split("=", 1)
        out[key.strip()] = _convert(value.strip())
    return out


def _convert(value: str) -> Any:
    lowered = value.lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


