"""``fpt-bench attention RESULT``: attention maps of a trained cell on one input (the paper's Figures 4-5).

The trained cell is rebuilt from its result: the cell config gives the task, backbone and policy (through the
registries), the frozen weights come from the backbone's own source (for ``weights=random`` the same seeded
initialisation the run used), and the trained parameters from the file written next to the result by
``fpt-bench run --keep-checkpoints`` (``<result>.params.pt``: the parameters selected by validation).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fpt_bench.api.errors import UserError
from fpt_bench.api.model import FPTModel
from fpt_bench.api.seeding import derive_seed, seed_everything
from fpt_bench.api.task import Batch
from fpt_bench.cells.profiles import task_options
from fpt_bench.infra.safe_read import open_regular
from fpt_bench.leaderboard.validate import cell_config, check_result_file
from fpt_bench.results.schema import CellResult
from fpt_bench.results.store import checkpoint_path, selected_params_path
from fpt_bench.training.resume_check import tensor_problems


@dataclass
class Rebuilt:
    model: FPTModel
    result: CellResult
    task: Any
    options: Any
    params_file: Path
    step: int | None


def load_trained(result_file: Path, host: Any) -> Rebuilt:
    """The model of a finished cell with its trained parameters, in eval mode on the CPU."""
    result_file = Path(result_file)
    result = check_result_file(result_file)
    params_file = selected_params_path(result_file)
    if not params_file.exists():
        params_file = checkpoint_path(result_file)  # a periodic checkpoint of an interrupted or older run
    if not params_file.exists():
        raise UserError(f"{result_file}: no trained parameters next to it ({selected_params_path(result_file)}); "
                        f"rerun the cell with `fpt-bench run ... --keep-checkpoints --overwrite always`")
    try:
        with open_regular(params_file, "parameter file") as handle:  # a fifo would block torch.load
            state = torch.load(handle, map_location="cpu", weights_only=True)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise UserError(f"{params_file}: not a readable parameter file ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or state.get("config_hash") != result.provenance.config_hash:
        raise UserError(f"{params_file}: belongs to another cell (its config hash differs from {result_file}'s)")
    cell = cell_config(result)
    task = host.tasks.get(cell.task)
    options = task_options(task, cell.task_args, cell.profile)
    spec = task.resolve_spec(options)
    seed_everything(cell.seed)
    torch.manual_seed(derive_seed(cell.seed, "model"))  # as the runner does: the same random init
    backbone = host.backbones.get(cell.backbone)
    module = backbone.build(backbone.options(cell.backbone_args), spec.max_len)
    model = FPTModel(spec, module)
    policy = host.policies.get(cell.policy)
    policy.apply(model, policy.options(cell.policy_args))
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    params = state.get("params", {})
    if not isinstance(params, dict) or not all(isinstance(v, torch.Tensor) for v in params.values()):
        raise UserError(f"{params_file}: its 'params' are not a dict of tensors")
    if set(params) != set(trainable):
        raise UserError(f"{params_file}: its parameters do not fit the rebuilt model (missing "
                        f"{sorted(set(trainable) - set(params))[:3]}, unexpected "
                        f"{sorted(set(params) - set(trainable))[:3]})")
    problems = tensor_problems("params", params, trainable)  # shapes, dtypes, finite values
    if problems:
        raise UserError(f"{params_file}: its parameters do not fit the rebuilt model ({problems[0]})")
    named = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in params.items():
            named[name].copy_(value)
    model.eval()
    return Rebuilt(model, result, task, options, params_file, state.get("step"))


def load_example(rebuilt: Rebuilt, data_dir: Path, split: str | None, index: int) -> Batch:
    """Example ``index`` of ``split`` (default: the first test split) as a batch of one."""
    spec = rebuilt.task.resolve_spec(rebuilt.options)
    split = split or spec.test_splits[0]
    if not spec.generated:
        rebuilt.task.prepare(data_dir, False, rebuilt.options)
    data = rebuilt.task.load(split, rebuilt.options, data_dir)
    if not 0 <= index < len(data):
        raise UserError(f"--index {index}: split {split!r} has {len(data)} examples")
    return data.batch(torch.tensor([index]))


@torch.inference_mode()
def attention_maps(rebuilt: Rebuilt, x: torch.Tensor, lengths: torch.Tensor | None = None,
                   head: int | None = None) -> list[torch.Tensor]:
    """One (T, T) map per layer for a single input: a head's, or the mean over heads."""
    model = rebuilt.model
    embeds = model.input(x)
    mask = None
    if lengths is not None:
        mask = (torch.arange(embeds.shape[1])[None, :] < lengths[:, None]).long()
    module = model.backbone
    if hasattr(module, "attentions"):  # a backbone may expose its maps itself
        layers = module.attentions(embeds, mask)
    else:
        hf = getattr(module, "model", None)
        if hf is None or not hasattr(hf, "set_attn_implementation"):
            raise UserError(f"backbone {rebuilt.result.cell.backbone!r} does not expose attention maps (give its "
                            f"module an `attentions(embeds, mask)` method)")
        hf.set_attn_implementation("eager")  # SDPA does not return the weights
        out = hf(inputs_embeds=embeds, attention_mask=mask, output_attentions=True)
        layers = out.attentions
    if not layers:
        raise UserError(f"backbone {rebuilt.result.cell.backbone!r} returned no attention maps")
    maps = []
    for a in layers:
        if head is not None and not 0 <= head < a.shape[1]:
            raise UserError(f"--head {head}: the backbone has {a.shape[1]} heads")
        maps.append((a[0].mean(0) if head is None else a[0, head]).float().cpu())
    return maps
