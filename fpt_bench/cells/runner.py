"""Running one cell: build the components, train, and write its result file (the only writer of results)."""

from __future__ import annotations

import datetime as dt
import platform
import subprocess
import sys
import time
import traceback
from functools import cache
from pathlib import Path

import torch

from fpt_bench import __version__
from fpt_bench.api.cell import CellConfig
from fpt_bench.api.errors import ResultWriteError, UserError
from fpt_bench.api.model import FPTModel
from fpt_bench.api.seeding import derive_seed, seed_everything
from fpt_bench.cells import contract_check
from fpt_bench.cells.context import RunContext
from fpt_bench.cells.profiles import task_options as task_options_for
from fpt_bench.cells.sizes import check_cell_fits
from fpt_bench.infra.failures import bad_path_message, is_out_of_memory
from fpt_bench.infra.progress import Progress
from fpt_bench.results.schema import CellInfo, CellResult, Metrics, Parameters, PrecisionAuto, Provenance, Timing
from fpt_bench.results.store import checkpoint_path, selected_params_path, write_result
from fpt_bench.training import distributed
from fpt_bench.training import precision_auto as precision_choice
from fpt_bench.training.batches import TrainingData
from fpt_bench.training.determinism import deterministic_algorithms
from fpt_bench.training.flops import measure_peak_flops
from fpt_bench.training.loop import Trainer


@cache
def git_hash() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _transformers_version() -> str | None:
    try:
        import transformers

        return transformers.__version__
    except ImportError:
        return None


def run_cell(cell: CellConfig, result_file: Path, ctx: RunContext) -> CellResult:
    """Run ``cell`` and write its result to ``result_file``. Never raises for a cell's own failure: a user
    error or a bug inside the cell becomes a ``failed`` result (the sweep goes on)."""
    t0 = time.perf_counter()
    device = torch.device(ctx.device)
    host = ctx.host
    task = host.tasks.get(cell.task)
    task_options = task_options_for(task, cell.task_args, cell.profile)
    spec = task.resolve_spec(task_options)
    choice = precision_choice.static(cell.hparams.precision, device)  # auto on a CPU: decided once the model exists
    precision = eval_precision = choice.train if choice is not None else "fp32"
    seeds = seed_everything(cell.seed)
    info = CellInfo(
        task=cell.task, task_version=spec.version, task_args=cell.task_args,
        protocol=spec.protocol, backbone=cell.backbone,
        backbone_args=cell.backbone_args, policy=cell.policy, policy_args=cell.policy_args, seed=cell.seed,
        profile=cell.profile, hparams=cell.hparams.recorded(),
    )
    data_info: dict[str, object] = {}
    backbone_info: dict[str, object] = {}
    parameters = None
    saved_backbone: str | None = None
    host.emit("fpt_bench_cell_started", cell=cell, result_path=result_file)
    try:
        hp = cell.hparams
        if spec.generated:
            train_split = None
            data_info["train"] = {"generator": "on device", "seed": seeds["data"]}
        else:
            task.prepare(ctx.data_dir, False, task_options)
            train_split = task.load("train", task_options, ctx.data_dir).head(hp.train_examples).to(device)
            data_info["train"] = train_split.info
        val = task.load(spec.val_split, task_options, ctx.data_dir).head(hp.val_examples).to(device)
        tests = {s: task.load(s, task_options, ctx.data_dir).head(hp.test_examples).to(device)
                 for s in spec.test_splits}
        data_info["val"] = val.info
        data_info.update({s: t.info for s, t in tests.items()})
        _require_examples(cell.task, {"train": train_split, spec.val_split: val, **tests})

        torch.manual_seed(derive_seed(cell.seed, "model"))
        backbone_plugin = host.backbones.get(cell.backbone)
        module = backbone_plugin.build(backbone_plugin.options(cell.backbone_args), spec.max_len)
        backbone_info = module.provenance()
        if ctx.save_backbone and not module.architecture().get("kind"):  # checked before training, not after
            raise UserError(f"--save-backbone: backbone {cell.backbone!r} cannot be saved for reloading: its "
                            f"module's architecture() does not describe it (a kind and what rebuilds it; "
                            f"docs/api.md, 'Saving and reloading a backbone'); run without --save-backbone")
        model = FPTModel(spec, module, input_dropout=hp.input_dropout)
        policy = host.policies.get(cell.policy)
        contract_check.apply_policy(host, cell, model, policy)  # policy.apply, with the plugin contract around it
        check_cell_fits(model, spec, hp, device, train_split,  # sizes beyond the device: refused before any step
                        max([len(val), *map(len, tests.values())]))
        model.to(device)
        parameters = Parameters(**model.parameter_counts(spec.max_len))
        choice = precision_choice.for_cell(hp, device, model, spec.max_len)
        precision, eval_precision = choice.train, choice.eval

        data = TrainingData(task, task_options, train_split, seeds["data"], hp.batch_size, device)
        contract_check.check_run(host, cell, model, data, {spec.val_split: val, **tests}, precision)
        progress = Progress(label=cell.task, enabled=ctx.progress)
        trainer = Trainer(
            cell=cell, model=model, train=data, val=val, tests=tests, device=device, precision=precision,
            checkpoint=checkpoint_path(result_file), progress=progress,
            on_eval=lambda step, metrics: host.emit("fpt_bench_cell_evaluated", cell=cell, step=step,
                                                    metrics=metrics), eval_precision=eval_precision,
        )
        with deterministic_algorithms(ctx.deterministic):
            outcome = trainer.run()
        if ctx.keep_checkpoints:
            trainer.save_selected(selected_params_path(result_file))
        status, error, error_kind = outcome.status, outcome.error, None
        if ctx.save_backbone and status == "ok":
            saved_backbone = _save_backbone(model, result_file, cell, outcome)
        metrics = Metrics(curve=outcome.curve, **outcome.metrics)
    except UserError as exc:  # a PluginContractError is the plugin's (error_kind "plugin")
        status, error, outcome, error_kind = "failed", str(exc), None, getattr(exc, "error_kind", "user")
        metrics = _empty_metrics()
    except Exception as exc:  # noqa: BLE001 - a bug in one cell must not end the sweep
        status, outcome, metrics = "failed", None, _empty_metrics()
        if is_out_of_memory(exc):  # not a bug: the sizes asked for more than the device holds
            error_kind = "user"
            error = (f"out of memory ({(str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]}); choose a "
                     "smaller backbone, --batch-size or --eval-batch-size")
        elif (path_problem := bad_path_message(exc)) is not None:  # checkpoint:~nobody/x, a NUL byte
            error_kind, error = "user", path_problem
        else:
            error_kind = "internal"
            error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=-8)}"
            print(f"fpt-bench: cell {cell.label()} raised:\n{traceback.format_exc()}", file=sys.stderr)
    wall = time.perf_counter() - t0
    threads = outcome.threads if outcome is not None and outcome.threads else torch.get_num_threads()
    result = CellResult(
        cell=info, status=status, error=error, error_kind=error_kind, metrics=metrics, parameters=parameters,
        timing=_timing(outcome, wall, device, precision), provenance=Provenance(
            harness_version=__version__, plugins=host.versions(), components=contract_check.components(host, cell),
            python=platform.python_version(),
            torch=torch.__version__, transformers=_transformers_version(),
            platform=platform.platform(), git_hash=git_hash(), device=_device_name(device, threads),
            precision=precision, eval_precision=eval_precision, precision_auto=_precision_auto(cell, choice),
            config_hash=cell.config_hash(), seeds=seeds, data=_jsonable(data_info), backbone=_jsonable(backbone_info),
            saved_backbone=saved_backbone,
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), deterministic=ctx.deterministic,
            speed=outcome.speed if outcome is not None else None, threads=threads,
        ),
    )
    if distributed.is_main():  # under torchrun, rank 0 alone writes
        try:
            write_result(result_file, result)
        except OSError as exc:
            previous = "the previous result there is intact" if result_file.exists() else "no result was written"
            kept = checkpoint_path(result_file)
            resume = f"; its checkpoint {kept} is kept, so a rerun resumes" if kept.exists() else ""
            raise ResultWriteError(
                f"could not write the result of {cell.label()} to {result_file}: {exc.strerror or exc} "
                f"({previous}{resume}). Free some space (or make the folder writable) and run the same command "
                f"again") from None
        if status != "failed" and not ctx.keep_checkpoints:
            checkpoint_path(result_file).unlink(missing_ok=True)
        host.emit("fpt_bench_cell_finished", cell=cell, result=result)
    return result


def _require_examples(task: str, splits: dict[str, object]) -> None:
    """An empty split would be scored 0.0 (or divide by zero): the cell fails with a user error instead."""
    for name, split in splits.items():
        if split is not None and len(split) == 0:  # type: ignore[arg-type]
            raise UserError(f"task {task!r}: the {name!r} split has no examples; check the task's data files "
                            f"(`fpt-bench data status {task}`) and its options")


def _save_backbone(model: FPTModel, result_file: Path, cell: CellConfig, outcome) -> str:  # type: ignore[no-untyped-def]
    """Save the trained backbone (the parameters selected by validation) next to the result; returns its file
    name, relative to the result's folder."""
    from fpt_bench.api.backbone_checkpoint import backbone_path, save_backbone

    path = backbone_path(result_file)
    save_backbone(model, path, cell.backbone, {
        "task": cell.task, "task_args": cell.task_args, "backbone_args": cell.backbone_args, "policy": cell.policy,
        "policy_args": cell.policy_args, "seed": cell.seed, "profile": cell.profile,
        "config_hash": cell.config_hash(), "step": outcome.metrics.get("best_step"), "steps": outcome.steps,
        "result": result_file.name,
    })
    return path.name


def _precision_auto(cell: CellConfig, choice: precision_choice.Choice | None) -> PrecisionAuto | None:
    if cell.hparams.precision != "auto" or choice is None:
        return None
    return PrecisionAuto(**choice.record())


def _empty_metrics() -> Metrics:
    return Metrics(test_accuracy=None, test_accuracy_final=None, val_accuracy=None, val_accuracy_final=None,
                   best_step=None, train_loss=None)


def _timing(outcome, wall: float, device: torch.device, precision: str) -> Timing:  # type: ignore[no-untyped-def]
    if outcome is None:
        return Timing(wall_seconds=wall, train_seconds=0, eval_seconds=0, steps=0, steps_per_second=0,
                      samples_per_second=0, tokens_per_second=0)
    train = max(outcome.train_seconds, 1e-9)
    flops: dict[str, object] = {}
    if outcome.train_flops and outcome.train_seconds > 0:
        achieved = outcome.train_flops / train
        peak = measure_peak_flops(device, precision)
        flops = {"model_flops": outcome.train_flops, "model_flops_per_second": achieved,
                 "peak_flops_per_second": peak, "peak_dtype": "bfloat16" if precision == "bf16" else "float32",
                 "mfu": achieved / peak if peak > 0 else None}
    return Timing(
        wall_seconds=wall, train_seconds=outcome.train_seconds, eval_seconds=outcome.eval_seconds,
        steps=outcome.steps, steps_per_second=outcome.steps / train if outcome.steps else 0.0,
        samples_per_second=outcome.train_samples / train, tokens_per_second=outcome.train_tokens / train,
        eval_samples_per_second=outcome.eval_samples / outcome.eval_seconds if outcome.eval_seconds else None,
        resumed_from_step=outcome.resumed_from_step, micro_batch_size=outcome.micro_batch,
        oom_backoffs=outcome.oom_backoffs,
        feature_cache_seconds=outcome.speed.feature_cache_seconds if outcome.speed else None,
        **flops,  # type: ignore[arg-type]
    )


def _device_name(device: torch.device, threads: int) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.processor() or platform.machine()}, {threads} threads)"


def _jsonable(value: object) -> object:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
