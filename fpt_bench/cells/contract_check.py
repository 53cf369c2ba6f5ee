"""The plugin contract at run time: before a cell trains, its components are checked with the same rules (and the
same words) as ``fpt-bench check-plugin`` (``fpt_bench.conformance.contracts``), on what this cell will use:

- the task: the first training batch and the first batch of each evaluation split against the task's spec
  (shapes, dtypes, token and label ranges, length at most ``max_len``), every label of the evaluation splits, and
  the lengths of every example;
- the backbone: its declared sizes, a role for every parameter, and its output width on the first batch it sees;
- the freeze policy: something trains, and a gradient reaches some of it.

A broken rule fails the cell with ``error_kind: plugin`` and one message naming the plugin, its distribution, the
component and the rule. The checks cost one training batch's data (the one step 1 uses, whose shuffle is kept) and
no forward pass of their own: the output width is checked on the backbone's first call (under ``compile``, on the
first 16 positions of one example). ``benchmarks/contract_check_cost.py`` measures the share of a smoke cell.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from fpt_bench.api.cell import CellConfig
from fpt_bench.api.errors import UserError
from fpt_bench.api.model import FPTModel
from fpt_bench.api.task import SplitData
from fpt_bench.conformance.contracts import (
    ContractError,
    check_examples,
    check_hidden,
    check_module,
    check_roles,
    check_split,
    check_trainable,
)
from fpt_bench.training.precision import autocast


class PluginContractError(UserError):
    """A component broke the plugin contract during a run (the cell fails with ``error_kind: plugin``)."""

    error_kind = "plugin"


def components(host: Any, cell: CellConfig) -> dict[str, str]:
    """The qualified names (``PLUGIN:NAME``) of the cell's task, backbone and policy, for its result."""
    return {kind: host.registries[kind].qualified(getattr(cell, kind)) for kind in ("task", "backbone", "policy")}


def _guard(host: Any, kind: str, name: str, check: Callable[[], object]) -> None:
    try:
        check()
    except ContractError as exc:
        origin = host.registries[kind].entry(name).origin
        info = host.plugins.get(origin)
        dist = f"{info.distribution} {info.version or ''}".strip() if info and info.distribution else "no distribution"
        raise PluginContractError(
            f"{kind} {name!r} of plugin {origin!r} ({dist}) breaks the plugin contract: {exc} "
            f"(`fpt-bench check-plugin {origin}` checks the same rules)") from None


def apply_policy(host: Any, cell: CellConfig, model: FPTModel, policy: Any) -> None:
    """Apply the cell's freeze policy between two checks: the backbone's sizes and roles before (a policy reads
    the roles), and after it that something trains and a gradient reaches some of it."""
    spec = model.task
    _guard(host, "backbone", cell.backbone, lambda: (check_module(model.backbone, spec.max_len),
                                                     check_roles(model.backbone)))
    policy.apply(model, policy.options(cell.policy_args))
    _guard(host, "policy", cell.policy, lambda: check_trainable(model, spec.max_len))


def check_run(host: Any, cell: CellConfig, model: FPTModel, train: Any, evaluation: dict[str, SplitData],
              precision: str = "fp32") -> None:
    """Before the first step: the task's data against its spec and the backbone's output width (see the module
    docstring). ``train``: the cell's TrainingData; ``evaluation``: its validation and test splits, on the device;
    ``precision``: the cell's training precision (``fp32`` or ``bf16``)."""
    _guard(host, "task", cell.task, lambda: _check_data(model.task, train, evaluation))
    if cell.hparams.compile:  # a hook removed after its first call would make torch.compile compile again
        _guard(host, "backbone", cell.backbone, lambda: _check_width(model, evaluation, precision))
    else:
        watch_width(host, cell, model)


def watch_width(host: Any, cell: CellConfig, model: FPTModel) -> None:
    """Check the backbone's output width on its first call (the first training step's batch, or whichever forward
    comes first), before any parameter changes: a forward hook that removes itself, so the check costs no forward
    pass of its own."""

    def first_call(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        handle.remove()
        embeds = args[0] if args else kwargs.get("embeds")
        if isinstance(embeds, torch.Tensor):
            _guard(host, "backbone", cell.backbone, lambda: check_hidden(module, embeds, output))

    handle = model.backbone.register_forward_hook(first_call, with_kwargs=True)


def _check_data(spec: Any, train: Any, evaluation: dict[str, SplitData]) -> None:
    first = train.batch(0)
    what = "sample()" if train.split is None else "load('train')"
    check_examples(spec, first.x, first.y, first.lengths, f"{what}, the first training batch")
    for name, split in evaluation.items():
        check_split(spec, split, f"load({name!r})")


WIDTH_PROBE = 16  # positions of the example the backbone's output width is checked on


def _check_width(model: FPTModel, evaluation: dict[str, SplitData], precision: str) -> None:
    """The backbone's hidden states on the first ``WIDTH_PROBE`` positions of one real example have the width it
    declares (under torch.compile, where ``watch_width``'s hook cannot be used)."""
    module = model.backbone
    split = next(iter(evaluation.values()))
    one = split.batch(torch.arange(1, device=split.x.device))
    x = one.x[:, :WIDTH_PROBE]
    device = x.device
    mask = None if one.lengths is None else torch.ones(x.shape[:2], dtype=torch.long, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.no_grad(), \
                autocast(device, precision):
            embeds = model.input(x)
            check_hidden(module, embeds, module(embeds, mask))
    finally:
        model.train(was_training)
