"""The per-component checks of ``fpt-bench check-plugin`` (see ``fpt_bench/conformance/check.py``)."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import ValidationError

from fpt_bench.api.backbone import BackboneSpec
from fpt_bench.api.errors import DataMissingError, UserError
from fpt_bench.api.model import FPTModel
from fpt_bench.api.options import brief_validation_error
from fpt_bench.api.seeding import generator
from fpt_bench.api.specs import ExecutorSpec, PolicySpec, TaskSpec
from fpt_bench.api.suites import SuiteSpec
from fpt_bench.api.task import Batch
from fpt_bench.cells.profiles import task_options
from fpt_bench.conformance.contracts import (
    ContractError,
    check_causal,
    check_examples,
    check_forward,
    check_layers,
    check_module,
    check_padding,
    check_roles,
    check_split,
    check_trainable,
    check_used_numel,
    same_tensors,
)
from fpt_bench.conformance.harness import PROBE_LEN, PROBE_TASK, Conformance, Report, Skip
from fpt_bench.results.schema import primary_value

SEED = 1234


def _named(spec: Any, kind: type, name: str) -> None:
    if not isinstance(spec, kind):
        raise ContractError(f"spec is {type(spec).__name__}, not fpt_bench.{kind.__name__}")
    if spec.name != name.rsplit(":", 1)[-1]:
        raise ContractError(f"registered as {name!r} but spec.name is {spec.name!r}")


def _score(result: Any) -> str:
    """The smoke cell's test score in the task's primary metric ("test accuracy 0.5", "test mse 0.0312")."""
    value = primary_value(result.metrics)
    return f"test {result.metrics.metric} {'none' if value is None else format(value, '.3g')}"


def _same_metrics(a: Any, b: Any) -> None:
    keys = {"test_accuracy", "val_accuracy", "test_score", "val_score", "test_metrics", "curve"}
    if a.metrics.model_dump(include=keys) != b.metrics.model_dump(include=keys):
        raise ContractError(f"two runs of the same cell and seed differ: {_score(a)} vs {_score(b)}")


# ------------------------------------------------------------------------------------------ tasks
def check_task(run: Conformance, report: Report, name: str, task: Any) -> None:
    comp = f"task {name}"
    with report.check(comp, "spec and options") as c:
        _named(task.spec, TaskSpec, name)
        options = task_options(task, run.args["task"], "smoke")  # as its smoke cells see them (profile_options)
        spec = task.resolve_spec(options)
        _named(spec, TaskSpec, name)
        out = spec.output
        c.detail = (f"{spec.input.kind} input, max_len {spec.max_len}, {out.objective.describe(out)}, "
                    f"{'generated' if spec.generated else 'data files'}")
    if not c.ok:
        return
    sample = _check_task_data(run, report, comp, task, spec, options)
    if sample is None:
        for check in ("augment", "forward", "smoke cell", "determinism per seed"):
            report.skip(comp, check, "no examples to try (see the data checks)")
        return
    with report.check(comp, "augment") as c:
        x = sample.x
        a = task.augment(x.clone(), generator(SEED), options)
        b = task.augment(x.clone(), generator(SEED), options)
        if not isinstance(a, torch.Tensor) or a.shape != x.shape or a.dtype != x.dtype or a.device != x.device:
            raise ContractError("augment must return a tensor of the batch's shape, dtype and device")
        same_tensors(a, b, "augment")
        c.detail = "keeps shape, dtype and device; same seed, same result"
    backbone = run.default_backbone()
    with report.check(comp, "forward") as c:
        if backbone is None:
            raise Skip("no backbone with smoke_args is installed")
        torch.manual_seed(SEED)
        model = FPTModel(spec, run.tiny_backbone(backbone, False, spec.max_len)).eval()
        lengths = None if sample.lengths is None else sample.lengths[:4]
        x = sample.x[:4] if lengths is None else sample.x[:4, : int(lengths.max())]  # as a batch is padded
        with torch.no_grad():
            logits = model(x, lengths)
        expected = (x.shape[0], spec.output.n_predictions, spec.output.width)
        if tuple(logits.shape) != expected:
            raise ContractError(f"logits {tuple(logits.shape)}, expected {expected}")
        c.detail = f"{backbone} (smoke size): logits {expected}"
    policy = run.default_policy()
    cell = None
    with report.check(comp, "smoke cell") as c:
        if backbone is None or policy is None:
            raise Skip("no backbone with smoke_args or no policy is installed")
        if report.failed_in(comp):
            raise Skip("a check above failed")
        args = run.backbone_args(backbone, False)
        cell = run.smoke_cell(name, backbone, policy, task_args=run.args["task"], backbone_args=args)
        c.detail = f"{run.steps} steps with {backbone} + {policy}: {_score(cell[2])}"
    with report.check(comp, "determinism per seed") as c:
        if cell is None:
            raise Skip("the smoke cell did not run")
        again = run.smoke_cell(name, backbone, policy, task_args=run.args["task"],  # type: ignore[arg-type]
                               backbone_args=run.backbone_args(backbone, False))  # type: ignore[arg-type]
        _same_metrics(cell[2], again[2])
        c.detail = "the same cell twice: identical learning curve and test metrics"


def _check_task_data(run: Conformance, report: Report, comp: str, task: Any, spec: TaskSpec,
                     options: Any) -> Batch | None:
    """The data checks; returns up to 8 examples as the model sees them (decoded), None when none could load."""
    sample: Batch | None = None
    if spec.generated:
        with report.check(comp, "sampled batches") as c:
            batch = task.sample(8, generator(SEED), options)
            c.detail = check_examples(spec, batch.x, batch.y, batch.lengths, "sample()")
            again = task.sample(8, generator(SEED), options)
            same_tensors((batch.x, batch.y, batch.lengths), (again.x, again.y, again.lengths), "sample()")
            if batch.x.device.type != "cpu":
                raise ContractError("sample() must draw on the generator's device (cpu here)")
            sample = batch
        data_dir = run.workdir / "no-data"
        splits = [spec.val_split, *spec.test_splits]
    else:
        with report.check(comp, "data-missing error") as c:
            c.detail = _check_data_missing(run, task, options)
        needs_files = c.detail != NO_FILES_NEEDED
        if run.data_dir is None and needs_files:
            report.skip(comp, "loaded splits", "give --data-dir with the task's data to check its splits")
            return None
        data_dir = run.data_dir if run.data_dir is not None else run.workdir / "empty-data"
        splits = ["train", spec.val_split, *spec.test_splits]
    with report.check(comp, "loaded splits") as c:
        if not spec.generated:
            task.prepare(data_dir, False, options)
        sizes = []
        for split in splits:
            data = task.load(split, options, data_dir)
            check_split(spec, data, f"load({split!r})")
            again = task.load(split, options, data_dir)
            same_tensors((data.x, data.y, data.lengths), (again.x, again.y, again.lengths), f"load({split!r})")
            sizes.append(f"{split} {len(data)}")
            sample = sample or data.batch(torch.arange(min(len(data), 8)))
        c.detail = ", ".join(sizes) + " examples; each matches the spec and loads the same twice"
    return sample


def _check_data_missing(run: Conformance, task: Any, options: Any) -> str:
    empty = run.workdir / "empty-data"
    empty.mkdir(exist_ok=True)
    for step, call in (("prepare", lambda: task.prepare(empty, False, options)),
                       ("load", lambda: task.load("train", options, empty))):
        try:
            call()
        except DataMissingError as exc:
            if not str(exc).strip():
                raise ContractError(f"{step}() raised DataMissingError without a message") from None
            return f"{step}(): {str(exc).strip().splitlines()[0]}"
        except Exception as exc:  # noqa: BLE001
            raise ContractError(f"with no data, {step}() raised {type(exc).__name__}: {exc}; raise "
                                "fpt_bench.DataMissingError naming the files and where they go") from None
    return NO_FILES_NEEDED


NO_FILES_NEEDED = "needs no data files (load works in an empty data directory)"


# -------------------------------------------------------------------------------------- backbones
BUILT_CHECKS = ("roles", "layers", "used_numel", "forward", "padding mask", "causal", "determinism per seed",
                "smoke cell")


def check_backbone(run: Conformance, report: Report, name: str, backbone: Any) -> None:
    comp = f"backbone {name}"
    module = None
    with report.check(comp, "spec and options") as c:
        _named(backbone.spec, BackboneSpec, name)
        args = run.backbone_args(name, True)
        backbone.options(args or {})
        c.detail = f"smoke args {args}" if args is not None else "no smoke_args: built with its defaults"
    if not c.ok:
        return
    args = run.backbone_args(name, True) or {}
    with report.check(comp, "build") as c:
        reason = run.unavailable(name, args)
        if reason is not None:
            raise Skip(f"cannot be built here with {args}: {reason}")
        torch.manual_seed(SEED)
        module = backbone.build(backbone.options(args), PROBE_LEN)
        c.detail = check_module(module, PROBE_LEN)
    if not c.ok:
        for check in BUILT_CHECKS:
            report.skip(comp, check, "build failed" if c.result.status == "fail" else "not built (see build)")
        return
    state = {k: v.detach().clone() for k, v in module.state_dict().items()}
    for check, fn in (("roles", check_roles), ("layers", check_layers),
                      ("used_numel", lambda m: check_used_numel(m, PROBE_LEN))):
        with report.check(comp, check) as c:
            c.detail = fn(module)
    out = None
    with report.check(comp, "forward") as c:
        out, c.detail = check_forward(module, PROBE_LEN)
    with report.check(comp, "padding mask") as c:
        c.detail = check_padding(module, PROBE_LEN)
    with report.check(comp, "causal") as c:
        c.detail = check_causal(module, PROBE_LEN)
    with report.check(comp, "determinism per seed") as c:
        torch.manual_seed(SEED)
        twin = backbone.build(backbone.options(args), PROBE_LEN)
        twin_state = twin.state_dict()
        if set(twin_state) != set(state) or any(not torch.equal(state[k], twin_state[k]) for k in state):
            raise ContractError("two builds after torch.manual_seed(same seed) have different weights")
        if out is not None:
            same_tensors(out, check_forward(twin, PROBE_LEN)[0], "forward in eval mode")
        c.detail = "same seed: same weights and same hidden states"
    task, policy = run.default_task(), run.default_policy()
    with report.check(comp, "smoke cell") as c:
        if task is None or policy is None:
            raise Skip("no built-in generated task or no policy is installed")
        if report.failed_in(comp):
            raise Skip("a check above failed")
        result = run.smoke_cell(task, name, policy, backbone_args=args)[2]
        c.detail = f"{run.steps} steps of {task} + {policy}: {_score(result)}"


# --------------------------------------------------------------------------------------- policies
def check_policy(run: Conformance, report: Report, name: str, policy: Any) -> None:
    comp = f"policy {name}"
    with report.check(comp, "spec and options") as c:
        _named(policy.spec, PolicySpec, name)
        options = policy.options(run.policy_args(name, True))
        roles = sorted(r.value for r in policy.spec.trainable_roles)
        c.detail = "trainable roles: " + (", ".join(roles) or "(none)")
    if not c.ok:
        return
    origin = run.host.policies.entry(name).origin
    registry = run.host.backbones
    own = {registry.canonical(f"{origin}:{b}") for b in run.host.plugins[origin].registered.get("backbone", [])}
    backbones = [b for b in registry.names() if run._builtin("backbone", b) or b in own]
    for backbone in backbones:
        with report.check(comp, f"on {backbone}") as c:
            c.detail = _apply_twice(run, policy, options, backbone, backbone in own)
    applied = {r.check.removeprefix("on ") for r in report.results if r.component == comp and r.status == "pass"}
    task, backbone = run.default_task(), run.default_backbone()
    if backbone not in applied:  # the policy refuses the default backbone: a smoke cell on one it applies to
        backbone = next((b for b in backbones if b in applied and run.backbone_args(b, False) is not None), backbone)
    with report.check(comp, "smoke cell") as c:
        if task is None or backbone is None:
            raise Skip("no built-in generated task or no backbone with smoke_args is installed")
        if report.failed_in(comp):
            raise Skip("a check above failed")
        result = run.smoke_cell(task, backbone, name, backbone_args=run.backbone_args(backbone, False),
                                policy_args=run.policy_args(name, True))[2]
        c.detail = f"{run.steps} steps of {task} on {backbone}: {_score(result)}"


def _apply_twice(run: Conformance, policy: Any, options: Any, backbone: str, own: bool) -> str:
    models = []
    for _ in range(2):
        torch.manual_seed(SEED)
        model = FPTModel(PROBE_TASK, run.tiny_backbone(backbone, own, PROBE_LEN))
        try:
            policy.apply(model, options)
        except UserError as exc:  # the policy's own clear refusal (LoRA on a backbone without projections)
            raise Skip(f"does not apply to {backbone}: {str(exc).strip().splitlines()[0]}") from None
        model.parameter_roles()  # raises if the policy added parameters without a role
        models.append(model)
    a, b = ({n for n, p in m.named_parameters() if p.requires_grad} for m in models)
    if a != b:
        raise ContractError("applied twice to identical models, it trains different parameters")
    same_tensors(tuple(models[0].state_dict().values()), tuple(models[1].state_dict().values()), "apply()")
    return check_trainable(models[0], PROBE_LEN)


# ---------------------------------------------------------------------------- suites, executors, events
def check_suite(run: Conformance, report: Report, name: str, suite: Any) -> None:
    comp = f"suite {name}"
    with report.check(comp, "cells") as c:
        if not isinstance(suite, SuiteSpec):
            raise ContractError(f"registered a {type(suite).__name__}, not an fpt_bench.SuiteSpec")
        try:  # the suite's own rules (reference rows and columns, thresholds), exactly as a SuiteSpec checks them
            SuiteSpec.model_validate(suite.model_dump())
        except ValidationError as exc:
            reasons = [str(e["ctx"]["error"]) if e["type"] == "value_error" else brief_validation_error(exc)
                       for e in exc.errors()]
            raise ContractError("SuiteSpec refuses it: " + "; ".join(dict.fromkeys(reasons))) from None
        origin = run.host.suites.entry(name).origin
        for cell in suite.cells:
            for kind, args in (("task", cell.task_args), ("backbone", cell.backbone_args),
                               ("policy", cell.policy_args)):
                registry = run.host.registries[kind]
                registry.get(registry.canonical(getattr(cell, kind), prefer=origin)).options(args)
        c.detail = (f"{len(suite.cells)} cell(s) in {len(suite.rows())} row(s) x {len(suite.columns())} column(s); "
                    "every task, backbone and policy registered, every option valid")


def check_executor(run: Conformance, report: Report, name: str, executor: Any) -> None:
    with report.check(f"executor {name}", "spec and run") as c:
        _named(executor.spec, ExecutorSpec, name)
        if not callable(getattr(executor, "run", None)):
            raise ContractError("an executor needs a run(cells, ctx, report) method")
        c.detail = executor.spec.description


def check_events(run: Conformance, report: Report, plugin: str) -> None:
    comp = f"plugin {plugin}"
    with report.check(comp, "run-event hooks") as c:
        if run.last_cell is None:
            task, backbone, policy = run.default_task(), run.default_backbone(), run.default_policy()
            if task is None or backbone is None or policy is None:
                raise Skip("no smoke-size task, backbone and policy to run a cell with")
            run.smoke_cell(task, backbone, policy, backbone_args=run.backbone_args(backbone, False))
        cell, path, result = run.last_cell  # type: ignore[misc]
        curve = result.metrics.curve[-1]
        metrics = {"val_accuracy": curve.val_accuracy, "train_loss": curve.train_loss}
        values = {"cell": cell, "result_path": path, "step": curve.step, "metrics": metrics, "result": result}
        called = []
        for impl in run.event_impls(plugin):
            try:
                impl.function(**{arg: values[arg] for arg in impl.argnames})
            except Exception as exc:  # noqa: BLE001
                raise ContractError(f"{impl.function.__name__} raised {type(exc).__name__}: {exc}") from None
            called.append(impl.function.__name__.removeprefix("fpt_bench_"))
        c.detail = "called without error: " + ", ".join(called)
